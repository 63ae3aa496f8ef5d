"""eventlet's public names, as ``nettools.eventlet`` and the ``eventlet`` alias
serve them: each one exercised, not just looked up."""

from __future__ import annotations

import importlib
import os
import socket as stdlib_socket
import subprocess
import sys
import warnings

import pytest
from helpers.isolated import run_isolated
from helpers.paths import ROOT

import nettools.eventlet as eventlet
from nettools.eventlet import MODULES
from nettools.kernel.greenthread import sleep, spawn
from nettools.kernel.hub import get_hub

RUNNER = [sys.executable, "-m", "nettools.eventlet"]


# ------------------------------------------------------------ the module alias


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_eventlet_module_imports_through_the_alias(name):
    # A fresh interpreter per module would be slow: one script imports them all
    # below; here each mapped target exists.
    importlib.import_module(MODULES[name])


def test_import_eventlet_gives_nettools_modules():
    out = run_isolated(
        """
        import nettools.eventlet
        nettools.eventlet.install()
        import eventlet, eventlet.greenpool, eventlet.wsgi, eventlet.db_pool, eventlet.pools
        from eventlet import tpool, websocket, hubs, greenio, queue, timeout, semaphore
        from eventlet.green import socket, urllib2, httplib, BaseHTTPServer, SocketServer, Queue
        from eventlet.green.urllib import request, parse, error, response, robotparser
        from eventlet.green.http import client, server, cookiejar, cookies
        import nettools.kernel.pool, nettools.web.wsgi, nettools.dbpool
        assert eventlet.greenpool is nettools.kernel.pool
        assert eventlet.wsgi is nettools.web.wsgi
        assert eventlet.db_pool is nettools.dbpool
        assert urllib2 is request and httplib is client and BaseHTTPServer is server
        assert socket.socket is nettools.green.socket.socket
        assert eventlet.GreenPool is nettools.kernel.pool.GreenPool
        import eventlet.hubs.epolls, eventlet.support.greenlets
        # eventlet.green is a package of its own: nettools.green's modules, and a zmq
        import eventlet.green.select, eventlet.green.urllib.request, nettools.green.zmq
        from eventlet.green import zmq, select
        assert eventlet.green.select is select is nettools.green.select
        assert eventlet.green.urllib.request is request
        assert zmq.Context is nettools.green.zmq.Context and zmq.LockReleaseError
        assert nettools.green.zmq.__name__ == "nettools.green.zmq"  # untouched
        try:
            from eventlet.green import no_such_module
        except ImportError:
            pass
        else:
            raise AssertionError("imported a module that does not exist")
        print("OK")
        """
    )
    assert out.strip().endswith("OK")


# ----------------------------------------------------- python -m nettools.eventlet


def _run(args, tmp_path, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [*RUNNER, *args], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env, **kw
    )


def test_runner_runs_a_program_with_its_arguments_and_folder(tmp_path):
    prog_dir = tmp_path / "prog"
    prog_dir.mkdir()
    (prog_dir / "helper.py").write_text("VALUE = 'sibling'\n")
    (prog_dir / "main.py").write_text(
        "import sys, eventlet, helper\n"
        "from eventlet.green.urllib.request import urlopen\n"
        "pool = eventlet.GreenPool()\n"
        "print(__name__, sys.argv[1:], helper.VALUE, sum(pool.imap(abs, [-1, -2])))\n"
    )
    proc = _run(["prog/main.py", "a", "--b"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "__main__ ['a', '--b'] sibling 3"


def test_runner_runs_a_module_with_dash_m(tmp_path):
    (tmp_path / "mod.py").write_text("import eventlet\nprint('module', eventlet.__name__)\n")
    proc = _run(["-m", "mod"], tmp_path, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "module nettools.eventlet"


def test_runner_usage_errors_are_one_line_and_exit_2(tmp_path):
    missing = _run(["nope.py"], tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "nettools.eventlet: cannot open 'nope.py': No such file or directory"
    ]
    assert _run([], tmp_path).returncode == 2


# ------------------------------------------------------------- kernel names


def test_capped_semaphore_release_waits_at_the_cap():
    sem = eventlet.semaphore.CappedSemaphore(1, 1)
    assert sem.bounded()
    done = []
    releaser = spawn(lambda: done.append(sem.release()))
    sleep(0)
    assert not done  # at the cap: release waits for an acquire
    assert sem.acquire()
    releaser.wait()
    assert done and sem.bounded()
    with pytest.raises(ValueError):
        eventlet.semaphore.CappedSemaphore(2, 1)


def test_semaphore_non_blocking_with_a_timeout_is_a_value_error():
    with pytest.raises(ValueError):
        eventlet.Semaphore(1).acquire(blocking=False, timeout=1)


def test_queue_zero_is_a_channel():
    q = eventlet.Queue(0)
    order = []

    def putter():
        q.put("x")
        order.append("put returned")

    p = spawn(putter)
    sleep(0)
    assert not order  # no getter yet: put waits
    assert q.get() == "x"
    order.append("got")
    p.wait()
    assert order == ["got", "put returned"]  # the getter runs before the putter


def test_timeout_as_its_own_exception_and_is_timeout():
    with pytest.raises(eventlet.Timeout) as info, eventlet.Timeout(0.01, True):
        sleep(1)
    assert info.value.is_timeout and eventlet.is_timeout(info.value)
    assert eventlet.is_timeout(TimeoutError())
    assert not eventlet.is_timeout(ValueError())


def test_wrap_is_timeout_marks_errors():
    class Slow(Exception):
        pass

    marked = eventlet.wrap_is_timeout(Slow)
    assert eventlet.is_timeout(marked())
    maker = eventlet.wrap_is_timeout(lambda: OSError("late"))
    assert eventlet.is_timeout(maker())


def test_sleep_zero_from_a_hub_callback_does_nothing():
    # As in eventlet: a callback that yields just goes on; sleeping longer is refused.
    hub = get_hub()
    seen = []

    def callback():
        eventlet.sleep(0)
        seen.append("went on")
        try:
            eventlet.sleep(0.01)
        except RuntimeError as exc:
            seen.append(str(exc))

    hub.schedule(0, callback)
    sleep(0.01)
    assert seen[0] == "went on" and "inside the hub" in seen[1]


def test_hub_introspection_names():
    hub = eventlet.hubs.get_hub()
    assert hub is get_hub()
    a, b = stdlib_socket.socketpair()
    green = eventlet.greenio.GreenSocket(a)
    try:
        reader = spawn(green.recv, 10)
        sleep(0)
        readers = hub.get_readers()
        assert [(r.fileno, r.evtype) for r in readers] == [(green.fileno(), "read")]
        assert hub.get_writers() == []
        before = hub.get_timers_count()
        timer = hub.schedule(10, lambda: None)
        assert hub.get_timers_count() == before + 1
        timer.cancel()
        assert isinstance(hub.clock(), float)
        b.sendall(b"hi")
        assert reader.wait() == b"hi"
    finally:
        green.close()
        b.close()


def test_use_hub_takes_eventlet_hub_names():
    out = run_isolated(
        """
        import nettools.eventlet as eventlet
        for name in ("epolls", "poll", "selects", "zeromq", None):
            eventlet.hubs.use_hub(name)
            eventlet.sleep(0)
            print(type(eventlet.hubs.get_hub().poller).__name__)
        print("OK")
        """
    )
    lines = out.strip().splitlines()
    assert lines[-1] == "OK"
    assert lines[:4] == ["EpollPoller", "PollPoller", "PollPoller", "EpollPoller"]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [("EVENTLET_HUB", "poll", "PollPoller"), ("EVENTLET_THREADPOOL_SIZE", "3", "3")],
)
def test_eventlet_environment_variables_are_honoured(variable, value, expected):
    out = run_isolated(
        """
        import nettools.eventlet as eventlet
        from nettools.kernel import tpool
        import os
        if os.environ.get("EVENTLET_HUB"):
            print(type(eventlet.hubs.get_hub().poller).__name__)
        else:
            print(tpool.execute(tpool._configured_size))
        print("OK")
        """,
        env={variable: value, "NETTOOLS_HUB": "", "NETTOOLS_THREADPOOL_SIZE": ""},
    )
    assert out.strip().splitlines() == [expected, "OK"]


def test_tpool_proxy_autowraps_and_runs_in_threads():
    import threading

    main = threading.get_ident()

    class Conn:
        def cursor(self):
            return Cursor()

        def where(self):
            return threading.get_ident()

    class Cursor:
        def execute(self):
            return threading.get_ident()

    proxy = eventlet.tpool.Proxy(Conn(), autowrap_names=("cursor",))
    assert proxy.where() != main
    assert proxy.where(nonblocking=True) == main
    cur = proxy.cursor()
    assert isinstance(cur, eventlet.tpool.Proxy)
    assert cur.execute() != main
    by_type = eventlet.tpool.Proxy(Conn(), autowrap=(Cursor,))
    assert isinstance(by_type.cursor(), eventlet.tpool.Proxy)


def test_tpool_set_num_threads_and_killall():
    out = run_isolated(
        """
        import threading
        from nettools.eventlet import tpool
        tpool.set_num_threads(2)
        tpool.setup()
        assert tpool.execute(threading.get_ident) != threading.get_ident()
        tpool.killall()
        # Usable again after killall: a new pool starts on demand.
        assert tpool.execute(lambda: 42) == 42
        print("OK")
        """
    )
    assert out.strip().endswith("OK")


# --------------------------------------------------------- green and patcher


def test_green_urllib_fetches_without_blocking_the_hub(tmp_path):
    from nettools.eventlet import wsgi  # noqa: F401 - eventlet.wsgi is importable too
    from nettools.green.urllib.request import urlopen
    from nettools.web.wsgi import WSGIServer

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["served " + environ["PATH_INFO"]]  # a str body, as eventlet's apps do

    srv = WSGIServer(("127.0.0.1", 0), app, log_output=False).start()
    try:
        port = srv.address[1]
        pool = eventlet.GreenPool()
        bodies = list(pool.imap(lambda p: urlopen(f"http://127.0.0.1:{port}/{p}").read(), "ab"))
        assert bodies == [b"served /a", b"served /b"]
    finally:
        srv.stop(0)


def test_green_sockets_and_pipes():
    a, b = stdlib_socket.socketpair()
    green = eventlet.greenio.GreenSocket(a)
    assert a.fileno() == -1  # taken over
    eventlet.greenio.set_nonblocking(b)
    assert b.getblocking() is False
    b.sendall(b"x")
    assert green.recv(1) == b"x"
    eventlet.greenio.shutdown_safe(green)
    eventlet.greenio.shutdown_safe(green)  # twice: no error
    green.close()
    b.close()
    r, w = os.pipe()
    reader = eventlet.greenio.GreenPipe(r, "rb")
    got = spawn(reader.read, 3)
    sleep(0)
    os.write(w, b"abc")
    assert got.wait() == b"abc"
    reader.close()
    os.close(w)


def test_greendns_resolves_greenly_and_tells_addresses_from_names():
    from nettools.eventlet.support import greendns
    from nettools.green import socket as green_socket

    # the green socket module's resolution, the very functions
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "getnameinfo"):
        assert getattr(greendns, name) is getattr(green_socket, name)
    assert greendns.gethostbyname("127.0.0.1") == "127.0.0.1"
    assert greendns.is_ipv4_addr("192.0.2.1") and not greendns.is_ipv4_addr("192.0.2")
    assert not greendns.is_ipv4_addr("01.2.3.4") and not greendns.is_ipv4_addr(b"1.2.3.4")
    assert greendns.is_ipv6_addr("::1") and greendns.is_ipv6_addr("fe80::1%eth0")
    assert not greendns.is_ipv6_addr("192.0.2.1") and not greendns.is_ipv6_addr("::g")
    assert greendns.is_ip_addr("::1") and greendns.is_ip_addr("10.0.0.1")
    assert not greendns.is_ip_addr("localhost") and not greendns.is_ip_addr(None)


def test_green_zmq_queue_lock_serves_in_turn_and_lets_its_owner_in_again():
    from nettools.eventlet.green import zmq

    lock = zmq._QueueLock()
    order = []
    assert not lock
    with pytest.raises(zmq.LockReleaseError):
        lock.release()
    lock.acquire()
    lock.acquire()  # its owner again

    def taker(i):
        with lock:
            order.append(i)

    takers = [spawn(taker, i) for i in range(3)]
    sleep(0)
    lock.release()
    sleep(0)
    assert lock and order == []  # still held once
    lock.release()
    for t in takers:
        t.wait()
    assert order == [0, 1, 2] and not lock
    with pytest.raises(zmq.LockReleaseError):
        lock.release()


def test_green_zmq_blocked_thread_wakes_once_or_at_its_deadline():
    import time

    from nettools.eventlet.green import zmq

    blocked = zmq._BlockedThread()
    assert not blocked and blocked.wake() is False
    done = spawn(blocked.block)
    sleep(0)
    assert blocked
    with pytest.raises(RuntimeError):
        blocked.block()  # one greenthread at a time
    assert blocked.wake() is True and blocked.wake() is False
    done.wait()
    assert not blocked
    blocked.block(time.monotonic() + 0.01)  # nobody wakes it: the deadline does
    assert not blocked


def test_wrap_ssl_takes_eventlets_argument_order():
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("server.test")
    with cert.private_key_pem.tempfile() as key, cert.cert_chain_pems[0].tempfile() as crt:
        listener = eventlet.wrap_ssl(eventlet.listen(("127.0.0.1", 0)), key, crt, server_side=True)
    port = listener.getsockname()[1]

    def serve():
        conn, _ = listener.accept()
        conn.sendall(conn.recv(10).upper())
        conn.close()

    server = spawn(serve)
    from nettools.green import ssl as green_ssl

    client_ctx = green_ssl.create_default_context()  # green: the server runs meanwhile
    ca.configure_trust(client_ctx)
    raw = eventlet.connect(("127.0.0.1", port))
    tls = client_ctx.wrap_socket(raw, server_hostname="server.test")
    tls.sendall(b"hello")
    assert tls.recv(10) == b"HELLO"
    server.wait()
    tls.close()
    listener.close()


def test_green_ssl_wrap_socket_is_green():
    from nettools.green import ssl as green_ssl
    from nettools.green.socket import socket as green_socket_class

    a, b = stdlib_socket.socketpair()
    wrapped = green_ssl.wrap_socket(a, do_handshake_on_connect=False)
    assert isinstance(wrapped, green_socket_class)
    wrapped.close()
    b.close()


def test_patcher_already_patched_builtins_and_thread_names():
    out = run_isolated(
        """
        import warnings
        warnings.simplefilter("error")
        import nettools.eventlet as eventlet
        eventlet.monkey_patch(all=True, builtins=True, psycopg=True, MySQLdb=True)
        from nettools.patcher import already_patched
        print(sorted(k for k, v in already_patched.items() if v))
        import builtins, threading
        from nettools.green import builtins as green_builtins
        assert builtins.open is green_builtins.open
        # eventlet's era names: no DeprecationWarning (an error here)
        assert threading.currentThread() is threading.current_thread()
        assert threading.activeCount() == threading.active_count()
        print("OK")
        """
    )
    lines = out.strip().splitlines()
    assert lines[-1] == "OK"
    groups = eval(lines[0])  # noqa: S307 - our own script's printed list
    assert {"builtins", "os", "select", "socket", "thread", "time"} <= set(groups)


def test_monkey_patch_leaves_builtins_alone_unless_asked():
    out = run_isolated(
        """
        import builtins
        real = builtins.open
        import nettools.eventlet as eventlet
        eventlet.monkey_patch()
        from nettools.patcher import already_patched
        assert builtins.open is real and "builtins" not in already_patched
        print("OK")
        """
    )
    assert out.strip().endswith("OK")


def test_debug_hub_prevent_multiple_readers():
    from nettools.eventlet import debug

    debug.hub_prevent_multiple_readers(True)
    with pytest.raises(ValueError, match="one reader"):
        debug.hub_prevent_multiple_readers(False)


def test_current_thread_does_not_warn_in_green_threading():
    from nettools.green import threading as green_threading

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert green_threading.currentThread() is green_threading.current_thread()
