"""A drop-in green ``socket`` module.

``socket`` here is a subclass of the standard ``socket.socket``: the OS-level
socket is always non-blocking, and blocking behaviour -- including
``settimeout``/``setblocking`` semantics -- is emulated on the hub.  Every
blocking method first makes the real non-blocking call and only waits when it
would block (EAGAIN); then it parks on the hub until epoll reports the fd ready
and tries again.  Waiting first would cost a syscall per operation and could
hang on sockets that are already ready.

Name resolution (``getaddrinfo`` and friends, from ``_resolver``) runs in the
thread pool, so ``/etc/hosts``, search domains and nsswitch behave exactly as
without nettools; numeric addresses are handled inline without a thread.

Beyond the standard module's names (``__all__``), nettools uses a few of its
own: ``is_numeric_host``, ``deadline_after``/``time_left``/``timed_out`` (the
timeout arithmetic the green ``ssl`` module shares), ``nothing_new`` (whether
a read now could only fail with EAGAIN, for readers that wait first),
``connect_within`` (a connect bounded without touching the socket's timeout),
``family_of`` (a socket's family as a plain int, without the enum the
``family`` property builds on every read: per-connection code asks often), and
for eventlet's programs ``GreenSocket`` (the same class), ``socket(sock)``
taking an existing socket over, ``sock.fd`` and ``set_nonblocking``.
"""

from __future__ import annotations

import errno as _errno
import io as _io
import os as _os
import socket as _stdlib
import time as _time
from functools import partial as _partial
from socket import *  # noqa: F403 - a drop-in module re-exports everything
from typing import Any

from ..kernel.fdwait import READ as _READ
from ..kernel.hub import current_hub as _current_hub
from ..kernel.hub import get_hub as _get_hub
from ..kernel.hub import thread_hub as _thread_hub
from ._resolver import *  # noqa: F403 - the resolver's names are this module's
from ._resolver import RESOLVER_NAMES, getaddrinfo, is_numeric_host

__all__ = list(_stdlib.__all__)

# Left alone when patching: SocketType (in the stdlib the C base type, of which
# green sockets are instances too), and the stdlib's pure-Python helpers that
# make sockets (create_connection, create_server, socketpair, fromfd): they are
# built on the patched class and resolver, so they are green as they are, and
# they honour a later replacement of socket.socket (a subclass, a mock).
__patched__ = ["socket", *RESOLVER_NAMES]

_real_socket = _stdlib.socket  # the class we extend
_c = _stdlib._socket  # the C module: monkey-patching never replaces its functions
_ss = _c.socket  # the C type: its methods never block here
#: Buffers whose len() is their size in bytes (recv_into's short-read hint).
_BYTE_BUFFERS = (bytearray, memoryview)
_real_create_server = _stdlib.create_server
_monotonic = _time.monotonic
_getdefaulttimeout = _stdlib.getdefaulttimeout
_GLOBAL_DEFAULT_TIMEOUT = _stdlib._GLOBAL_DEFAULT_TIMEOUT
_AF_INET, _AF_INET6, _AF_UNIX = _stdlib.AF_INET, _stdlib.AF_INET6, _stdlib.AF_UNIX
_SOCK_NONBLOCK = getattr(_stdlib, "SOCK_NONBLOCK", 0)
_MSG_DONTWAIT = int(getattr(_stdlib, "MSG_DONTWAIT", 0))  # a plain int: IntFlag & is slow
#: The C type's own fields, plain ints: the ``family``/``type`` properties make
#: an enum member on every read (about 1.5 us each).
family_of: Any = _ss.family.__get__
_type_of = _ss.type.__get__

#: What a socket-level timeout raises (``socket.timeout`` is ``TimeoutError``).
timed_out = _partial(TimeoutError, "timed out")


def deadline_after(timeout: float | None) -> float | None:
    """The monotonic time a wait of ``timeout`` seconds ends (None: never)."""
    return None if timeout is None else _monotonic() + timeout


def time_left(deadline: float | None) -> float | None:
    """Seconds until ``deadline`` (None: no limit); ``timed_out()`` raised once it has passed."""
    if deadline is None:
        return None
    left = deadline - _monotonic()
    if left <= 0:
        raise timed_out()
    return left


def _dontwait(args: tuple, kwargs: dict, flags_at: int | None) -> bool:
    """True if the call's flags ask for MSG_DONTWAIT: EAGAIN is then the answer."""
    if flags_at is None:
        return False
    flags = args[flags_at] if len(args) > flags_at else kwargs.get("flags", 0)
    return isinstance(flags, int) and bool(flags & _MSG_DONTWAIT)


def _green(meth: Any, writing: bool, flags_at: int | None = None) -> Any:
    """Wrap a C socket method: try it; on EAGAIN wait on the hub and retry.

    ``flags_at`` is the position of the method's ``flags`` argument.
    """

    def method(self: socket, *args: Any, **kwargs: Any) -> Any:
        try:
            return meth(self, *args, **kwargs)
        except BlockingIOError:
            if self._timeout == 0.0 or _dontwait(args, kwargs, flags_at):
                raise
        return self._retry(meth, args, writing, kwargs)

    method.__name__ = meth.__name__
    method.__qualname__ = f"socket.{meth.__name__}"
    method.__doc__ = meth.__doc__
    return method


def nothing_new(st: Any) -> bool:
    """After a read that emptied the socket (a short read), given the hub's
    record of it (``st``, or None): True if epoll has seen no new data since (no
    recorded edge) nor a hang-up, so that a read now could only fail with
    EAGAIN -- and raising that costs more than waiting first.  Data or a FIN
    arriving from now on raises an edge the next poll reports: no wake-up is
    missed."""
    return st is not None and not (st.rready or st.hup) and st.reader is None


class socket(_real_socket):
    """A green ``socket.socket``: same API, blocking calls wait on the hub."""

    # As the standard socket's: no dict per socket (a server holds thousands).
    __slots__ = ("_timeout", "_drained", "_stream")

    def __init__(
        self, family: Any = -1, type: int = -1, proto: int = -1, fileno: int | None = None
    ) -> None:
        taken = None
        if isinstance(family, _real_socket):
            # eventlet's ``socket(sock)``: take ``sock`` over -- its fd, family,
            # type and timeout -- leaving it detached.
            taken = family
            family, type, proto = taken.family, taken.type, taken.proto
            timeout = taken.gettimeout()
            fileno = taken.detach()
        super().__init__(family, type, proto, fileno)
        if taken is not None:
            self._timeout: float | None = timeout
        elif type != -1 and type & _SOCK_NONBLOCK:
            self._timeout = 0.0
        else:
            self._timeout = _getdefaulttimeout()
        _ss.settimeout(self, 0.0)
        self._drained = False  # see recv()
        # Only a stream's short read means "nothing more queued": a datagram
        # socket returns one datagram per recv, however many wait behind it.
        self._stream = _type_of(self) == _stdlib.SOCK_STREAM
        # A new socket object means a new (or newly owned) file: whatever the hub
        # knew about this fd number belongs to an fd closed behind its back.
        _get_hub().notify_opened(_ss.fileno(self))

    @property
    def fd(self) -> socket:
        """eventlet's ``GreenSocket.fd``: the socket the OS calls go to -- here the
        green socket itself, a standard socket underneath."""
        return self

    # ---------------------------------------------------------- blocking mode

    def settimeout(self, value: float | None) -> None:
        """Like ``socket.settimeout``; the OS-level socket stays non-blocking."""
        if value is not None:
            if not isinstance(value, (int, float)):
                raise TypeError("Timeout value must be int, float or None")
            value = float(value)
            if value < 0.0:
                raise ValueError("Timeout value out of range")
        # As the stdlib's settimeout: a bad fd raises here (the OS-level socket
        # stays non-blocking; this only costs the call the stdlib makes too).
        _ss.setblocking(self, False)
        self._timeout = value

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        _ss.setblocking(self, False)  # see settimeout
        self._timeout = None if flag else 0.0

    def getblocking(self) -> bool:
        return self._timeout != 0.0

    @property
    def timeout(self) -> float | None:  # type: ignore[override]
        return self._timeout

    # ------------------------------------------------------------ waiting

    def _retry(self, meth: Any, args: tuple, writing: bool, kwargs: dict) -> Any:
        """Slow path after EAGAIN: wait for readiness, retry, within the timeout."""
        hub = _get_hub()
        wait = hub.wait_write if writing else hub.wait_read
        deadline = deadline_after(self._timeout)
        fd = _ss.fileno(self)
        while True:
            wait(fd, time_left(deadline), timed_out)
            try:
                return meth(self, *args, **kwargs)
            except BlockingIOError:
                pass

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Like ``socket.recv``; waits on the hub instead of blocking the thread."""
        timeout = self._timeout
        if flags or bufsize <= 0 or (timeout is not None and not timeout):
            return self._recv_special(bufsize, flags)
        # The hot path of every green stream (an echo round trip, a request): a
        # waiting socket asked for data without flags.  Every wait happens
        # outside an ``except`` block, so a parked reader holds no exception,
        # traceback or retry arguments (an idle connection's memory).
        hub = None
        deadline = None if timeout is None else _monotonic() + timeout
        if self._drained:
            # A socket the hub has no record of yet gets one now, whose
            # registration reports data that came meanwhile: no EAGAIN either.
            try:
                hub = _thread_hub.hub
            except AttributeError:
                hub = _get_hub()
            fd = _ss.fileno(self)
            st = hub.fds.get(fd)
            if st is None and fd >= 0:  # (closed: -1, and the recv below says EBADF)
                st = hub.record(fd)
            if nothing_new(st):
                hub.wait_read(fd, timeout, timed_out)
        while True:
            try:
                data = _ss.recv(self, bufsize)
            except BlockingIOError:
                data = None
            if data is not None:
                # (Plain compares: a compare's result stored is not specialised.)
                if 0 < len(data) < bufsize:
                    self._drained = self._stream
                else:
                    self._drained = False
                return data
            self._drained = False
            if hub is None:
                hub = _get_hub()
                fd = _ss.fileno(self)
            hub.wait_read(fd, time_left(deadline), timed_out)

    def _recv_special(self, bufsize: int, flags: int) -> bytes:
        """``recv`` with flags, on a non-blocking socket, or of no bytes."""
        if not bufsize and self._timeout != 0.0:
            self._wait_readable()  # as the standard socket: recv(0) waits for data
        self._drained = False
        try:
            return _ss.recv(self, bufsize, flags)
        except BlockingIOError:
            if self._timeout == 0.0 or (isinstance(flags, int) and flags & _MSG_DONTWAIT):
                raise
        return self._retry(_ss.recv, (bufsize, flags), False, {})

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """Like ``socket.recv_into``; waits on the hub instead of blocking the thread."""
        try:
            n = _ss.recv_into(self, buffer, nbytes, flags)
        except BlockingIOError:
            if self._timeout == 0.0 or (isinstance(flags, int) and flags & _MSG_DONTWAIT):
                raise
            n = None
        if n is None:  # the wait outside the except block: a parked reader holds no exception
            n = self._retry(_ss.recv_into, (buffer, nbytes, flags), False, {})
        if not n and not nbytes and self._timeout != 0.0 and not memoryview(buffer).nbytes:
            # As the standard socket: an empty read waits for data.
            self._wait_readable()
        # A short read emptied the socket (for wait_if_drained); the size asked
        # for is known cheaply only for these buffers (else: no hint).
        size = nbytes or (len(buffer) if type(buffer) in _BYTE_BUFFERS else 0)
        self._drained = not flags and 0 < n < size and self._stream
        return n

    def wait_if_drained(self) -> None:
        """Before a read: if the last read emptied the socket (a short read) and
        the hub has seen nothing arrive since, wait until it may be readable
        (within the timeout), so that the read does not first fail with EAGAIN --
        raising that costs more than the read.

        For a reader that expects to wait, such as a server between the requests
        of a keep-alive connection: ``recv_into`` itself reads at once, which is
        cheaper when the data is usually there already (a relay's stream).
        """
        if self._drained and self._timeout != 0.0:
            hub = _get_hub()
            fd = _ss.fileno(self)
            if nothing_new(hub.fds.get(fd)):
                hub.wait_read(fd, self._timeout, timed_out)

    def _wait_readable(self) -> None:
        """Wait, within the timeout, until a read would not block (a zero-length
        read returns at once even with nothing to read, so it cannot try first)."""
        _get_hub().wait_level(_ss.fileno(self), _READ, self._timeout, timed_out)

    recvfrom = _green(_ss.recvfrom, False, 1)
    recvfrom_into = _green(_ss.recvfrom_into, False, 2)
    send = _green(_ss.send, True, 1)
    if hasattr(_ss, "recvmsg"):
        recvmsg = _green(_ss.recvmsg, False, 2)
        recvmsg_into = _green(_ss.recvmsg_into, False, 2)
        sendmsg = _green(_ss.sendmsg, True, 2)
    _accept = _green(_ss._accept, False)
    _sendto = _green(_ss.sendto, True, 1)  # (data, flags, address) or (data, address)

    def sendto(self, data: Any, *args: Any) -> int:
        """``sendto(data[, flags], address)``; host names are resolved off the hub."""
        if len(args) not in (1, 2):
            return _ss.sendto(self, data, *args)  # the C method's own TypeError
        *flags, address = args
        return self._sendto(data, *flags, self._resolve(address))

    def sendall(self, data: Any, flags: int = 0) -> None:
        """Send all of ``data``; the timeout covers the whole call."""
        try:
            sent = _ss.send(self, data, flags)
        except BlockingIOError:
            if self._timeout == 0.0 or _dontwait((flags,), {}, 0):
                raise
            sent = 0
        if sent == len(data) and type(data) in (bytes, bytearray):
            return  # the usual case: one send took it all
        with memoryview(data) as view, view.cast("B") as remaining:
            total = len(remaining)
            if sent >= total:
                return
            hub = _get_hub()
            deadline = deadline_after(self._timeout)
            fd = _ss.fileno(self)
            while sent < total:
                try:
                    sent += _ss.send(self, remaining[sent:], flags)
                except BlockingIOError:
                    if self._timeout == 0.0 or _dontwait((flags,), {}, 0):
                        raise
                    hub.wait_write(fd, time_left(deadline), timed_out)

    def accept(self) -> tuple[socket, Any]:
        """Wait for a connection; returns a green socket and the peer address."""
        fd, addr = self._accept()
        sock = socket(family_of(self), _type_of(self), self.proto, fileno=fd)
        if _getdefaulttimeout() is None and self._timeout:
            sock._timeout = None  # blocking, as setblocking(True) (the fd is fresh)
        return sock, addr

    def connect(self, address: Any) -> None:
        """Connect, waiting on the hub for the handshake; honours the timeout."""
        connect_within(self, address, self._timeout)

    def _connect_unix_busy(self, address: Any, timeout: float | None) -> None:
        # A unix listener with a full backlog answers EAGAIN; back off and retry.
        from ..kernel.greenthread import sleep

        deadline = deadline_after(timeout)
        delay = 0.001
        while True:
            time_left(deadline)
            sleep(delay)
            delay = min(delay * 2, 0.1)
            try:
                _ss.connect(self, address)
                return
            except BlockingIOError as exc:
                if exc.errno != _errno.EAGAIN:
                    raise

    def connect_ex(self, address: Any) -> int:
        """Like ``connect`` but returns an errno (0 on success) instead of raising."""
        address = self._resolve(address)
        try:
            # This class's connect, not an override: SSLSocket.connect would
            # start over (and fail, as the connection is then established).
            socket.connect(self, address)
        except TimeoutError:
            return _errno.EAGAIN
        except OSError as exc:
            if exc.errno is None:
                raise
            return exc.errno
        return 0

    def bind(self, address: Any) -> None:
        _ss.bind(self, self._resolve(address))

    def _resolve(self, address: Any) -> Any:
        """Resolve a host name in an IP address tuple in the thread pool."""
        if family_of(self) not in (_AF_INET, _AF_INET6) or not isinstance(address, tuple):
            return address
        host = address[0]
        if is_numeric_host(host) or host == "<broadcast>":
            return address
        port = address[1] if len(address) > 1 else None
        if not isinstance(port, int) or not 0 <= port <= 0xFFFF:
            return address  # malformed: the C call raises what the stdlib raises
        infos = getaddrinfo(host, address[1], self.family, self.type, self.proto)
        resolved = infos[0][4]
        return resolved[:2] + address[2:] if len(address) > 2 else resolved

    # ------------------------------------------------------- file transfer

    def _sendfile_use_sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        self._check_sendfile_params(file, offset, count)
        try:
            fileno = file.fileno()
            fsize = _os.fstat(fileno).st_size
        except (AttributeError, _io.UnsupportedOperation, OSError) as err:
            raise _stdlib._GiveupOnSendfile(err) from None
        if not fsize:
            return 0
        if self._timeout == 0.0:
            raise ValueError("non-blocking sockets are not supported")
        blocksize = min(count or fsize, 2**30)
        hub = _get_hub()
        sockno = _ss.fileno(self)
        deadline = deadline_after(self._timeout)
        total_sent = 0
        try:
            while True:
                if count:
                    blocksize = count - total_sent
                    if blocksize <= 0:
                        break
                try:
                    sent = _os.sendfile(sockno, fileno, offset, blocksize)
                except BlockingIOError:
                    hub.wait_write(sockno, time_left(deadline), timed_out)
                    continue
                except OSError as err:
                    if total_sent == 0:
                        raise _stdlib._GiveupOnSendfile(err) from None
                    raise
                if sent == 0:
                    break
                offset += sent
                total_sent += sent
            return total_sent
        finally:
            if total_sent > 0 and hasattr(file, "seek"):
                file.seek(offset)

    # -------------------------------------------------------------- closing

    def _real_close(self, _ss: Any = _ss) -> None:
        fd = _ss.fileno(self)
        if fd >= 0:
            # Waiters on this fd get an error now instead of hanging forever.
            _get_hub().notify_close(fd)
        _ss.close(self)

    def detach(self) -> int:
        """Give up the fd (it stays open); the hub forgets it."""
        fd = _ss.fileno(self)
        if fd >= 0:
            _get_hub().notify_close(fd)
        return super().detach()

    def __del__(self, _ss: Any = _ss, _current_hub: Any = _current_hub) -> None:
        # Collected unclosed (say, a handler killed mid-handshake): the C
        # finaliser closes the fd, so the hub must forget it first, or a new
        # file under the same number would wait on a record nothing reports.
        # Only this thread's hub can be told; another's finds out by itself
        # (FdWaits.forget_stale, notify_opened).
        fd = _ss.fileno(self)
        if fd >= 0:
            hub = _current_hub()
            if hub is not None and fd in hub.fds:
                hub.notify_close(fd)
        _ss.__del__(self)  # the ResourceWarning, and the close


SocketType = socket


#: eventlet's green socket class, which is this module's: ``GreenSocket(family,
#: type, proto)`` makes a socket, ``GreenSocket(sock)`` takes one over.
GreenSocket = socket


def set_nonblocking(fd: Any) -> None:
    """Make ``fd`` (a socket, a file object or an fd number) non-blocking."""
    setblocking = getattr(fd, "setblocking", None)
    if setblocking is not None:
        setblocking(False)
    else:
        _os.set_blocking(fd if isinstance(fd, int) else fd.fileno(), False)


# ----------------------------------------------------------- module functions


def connect_within(sock: socket, address: Any, timeout: float | None) -> None:
    """``sock.connect(address)`` within ``timeout`` seconds (None: no limit; 0:
    do not wait), whatever ``sock``'s own timeout: a caller that bounds only
    the connect needs no ``settimeout`` before and after it."""
    address = sock._resolve(address)
    try:
        _ss.connect(sock, address)
        return
    except BlockingIOError as exc:
        if timeout == 0.0:
            raise
        if exc.errno == _errno.EAGAIN and family_of(sock) == _AF_UNIX:
            return sock._connect_unix_busy(address, timeout)
    except InterruptedError:
        pass
    fd = _ss.fileno(sock)
    _get_hub().wait_write(fd, timeout, timed_out)
    err = _ss.getsockopt(sock, _stdlib.SOL_SOCKET, _stdlib.SO_ERROR)
    if err:
        raise OSError(err, _os.strerror(err))


def socketpair(family: int = _AF_UNIX, type: int = _stdlib.SOCK_STREAM, proto: int = 0) -> tuple:
    """A connected pair of green sockets."""
    a, b = _c.socketpair(family, type, proto)
    return socket(family, type, proto, a.detach()), socket(family, type, proto, b.detach())


def fromfd(fd: int, family: int, type: int, proto: int = 0) -> socket:
    """A green socket on a duplicate of ``fd``."""
    return socket(family, type, proto, _os.dup(fd))


def create_connection(
    address: tuple,
    timeout: Any = _GLOBAL_DEFAULT_TIMEOUT,
    source_address: Any = None,
    *,
    all_errors: bool = False,
) -> socket:
    """Connect to ``(host, port)``, trying each resolved address in turn."""
    host, port = address
    errors = []
    for family, type_, proto, _canon, sockaddr in getaddrinfo(host, port, 0, _stdlib.SOCK_STREAM):
        sock = None
        try:
            sock = socket(family, type_, proto)
            if timeout is not _GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            errors.clear()
            return sock
        except OSError as exc:
            errors.append(exc)
            if sock is not None:
                sock.close()
    if not errors:
        raise OSError("getaddrinfo returns an empty list")
    try:
        if all_errors:
            raise ExceptionGroup("create_connection failed", errors)  # noqa: F405 - builtin on 3.11+
        raise errors[0]
    finally:
        errors = []


def create_server(
    address: tuple,
    *,
    family: int = _AF_INET,
    backlog: int | None = None,
    reuse_port: bool = False,
    dualstack_ipv6: bool = False,
) -> socket:
    """A green listening TCP socket bound to ``address`` (like ``socket.create_server``)."""
    host, port = address[0], address[1]
    if host and not is_numeric_host(host):
        host = getaddrinfo(host, port, family, _stdlib.SOCK_STREAM)[0][4][0]
    real = _real_create_server(
        (host, port) + tuple(address[2:]),
        family=family,
        backlog=backlog,
        reuse_port=reuse_port,
        dualstack_ipv6=dualstack_ipv6,
    )
    return socket(real.family, real.type, real.proto, real.detach())
