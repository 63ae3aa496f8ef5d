"""eventlet's ``wsgi.server()`` function as eventlet programs drive it: killed
from another greenthread, it closes idle keep-alive connections and lets a
request in flight finish before the kill goes on."""

from __future__ import annotations

import nettools
from nettools.kernel.greenthread import kill, spawn
from nettools.kernel.sync import Event
from nettools.kernel.timeout import Timeout
from nettools.web import wsgi


def _read_all(sock) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_killing_the_server_greenthread_closes_idle_and_drains_busy():
    entered, release = Event(), Event()

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/slow":
            entered.send()
            release.wait()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done " + environ["PATH_INFO"].encode()]

    listener = nettools.listen(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    gt = spawn(wsgi.server, listener, app, log_output=False)
    idle = nettools.connect(("127.0.0.1", port))
    idle.sendall(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
    assert idle.recv(4096).endswith(b"done /fast")  # answered, kept alive
    busy = nettools.connect(("127.0.0.1", port))
    busy.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    entered.wait()
    killer = spawn(kill, gt)
    with Timeout(10):
        assert _read_all(idle) == b""  # closed by the kill, not left waiting
        assert not gt.dead  # the server waits for the request in flight
        release.send()
        response = _read_all(busy)
        killer.wait()
    assert response.startswith(b"HTTP/1.1 200 OK") and response.endswith(b"done /slow")
    assert gt.dead
