"""Engine.IO's websocket transport on nettools' own websockets.

python-engineio (under python-socketio and Flask-SocketIO) runs its websocket
transport through a hook of its "threading" mode, ``_async['websocket']``:
engineio calls ``cls(handler, server)(environ, start_response)``, and the
handler then calls ``wait()``, ``send(message)`` and ``close()`` on it.  The
stock class is simple-websocket's, which takes the raw connection
(``environ['gunicorn.socket']``), parses frames with wsproto in a reader
thread of its own and hands each message over through an event.

``adopt_engineio()`` puts ``EngineIOWebSocket`` there instead when the
process is monkey-patched (``nettools serve`` patches, so engineio's threads
are greenthreads), and with it two cheaper equivalents of the mode's other
entries: ``BackgroundTask`` for ``_async['thread']`` (python-socketio starts
one per event received; a patched ``threading.Thread`` pays for thread
bookkeeping and a hand-off to start) and the hub's ``Queue`` for
``_async['queue']`` (each packet sent goes through one).

Under a nettools WSGI server the websocket handler then reads frames itself,
on ``nettools.web.websocket`` -- no reader thread, no hand-off per message --
with what simple-websocket offers: permessage-deflate when the client asks
for it, no subprotocol, no websocket-level pings (Engine.IO pings on its
own).  In addition a message larger than engineio's ``max_http_buffer_size``
fails the connection with 1009 before it is buffered, a graceful stop of the
server closes the connection with 1001, and a close that the peer leaves
unanswered is cut after ``CLOSE_TIMEOUT`` seconds.  Served by any other
server (no ``environ['nettools.takeover']``), the class hands the request to
the class it replaced.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

from greenlet import GreenletExit, getcurrent

from ..kernel.greenthread import GreenThread, spawn_n
from ..kernel.hub import get_hub
from ..kernel.queue import Queue
from ..kernel.timeout import Timeout
from ..patcher import is_monkey_patched
from .websocket import WebSocket, WebSocketClosed, WebSocketWSGI

__all__ = ["EngineIOWebSocket", "BackgroundTask", "adopt_engineio", "CLOSE_TIMEOUT"]

#: The module of engineio's "threading" mode, whose ``_async`` table holds the hook.
THREADING_DRIVER = "engineio.async_drivers.threading"
#: How long a close waits for the peer's answer before the connection is cut.
CLOSE_TIMEOUT = 5.0


class EngineIOWebSocket:
    """What engineio's ``_async['websocket']`` makes per websocket request; see the
    module docstring.  ``fallback`` is the class it replaced, for other servers."""

    fallback: Callable[..., Any] | None = None

    __slots__ = ("app", "server", "_kwargs", "_ws", "_cutoff")

    def __init__(self, handler: Callable[[Any], Any], server: Any, **kwargs: Any) -> None:
        self.app = handler
        self.server = server
        self._kwargs = kwargs  # the fallback's options (engineio's gevent mode passes some)
        self._ws: WebSocket | None = None
        self._cutoff: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if "nettools.takeover" not in environ and self.fallback is not None:
            return self.fallback(self.app, self.server, **self._kwargs)(environ, start_response)
        upgrade = WebSocketWSGI(
            self._serve,
            max_message_size=getattr(self.server, "max_http_buffer_size", None),
            ping_interval=None,
            close_timeout=CLOSE_TIMEOUT,
        )
        return upgrade(environ, start_response)

    def _serve(self, ws: WebSocket) -> None:
        self._ws = ws
        try:
            self.app(self)
        finally:
            if self._cutoff is not None:
                self._cutoff.cancel()

    # ------------------------------------------------------------ engineio's calls

    def wait(self) -> str | bytes | None:
        """The next message; None once the connection is closed."""
        return self._ws.wait()  # type: ignore[union-attr]

    def send(self, message: str | bytes) -> None:
        """Send one message; ``OSError`` once the connection is closed (engineio's
        writer stops on it)."""
        try:
            self._ws.send(message)  # type: ignore[union-attr]
        except WebSocketClosed as exc:
            raise OSError(exc.errno, str(exc)) from None

    def close(self) -> None:
        """Start the closing handshake.  engineio closes from its writer while the
        handler waits for messages: the handler then sees the peer's answer, and
        a peer that never answers is cut off after ``CLOSE_TIMEOUT`` seconds."""
        ws = self._ws
        if ws is None or ws.closed:
            return
        ws.close()
        if self._cutoff is None:  # cancelled when the handler returns
            self._cutoff = get_hub().schedule(CLOSE_TIMEOUT, ws.abort)


class BackgroundTask:
    """engineio's ``_async['thread']``: ``start_background_task`` makes one and
    starts it, and returns it to the application.  The part of ``threading.Thread``
    such a task is used through: ``start``, ``run``, ``join(timeout)``,
    ``is_alive``, ``name``, ``daemon`` (always True: green tasks never hold up
    the exit).  An exception escaping the target is logged."""

    __slots__ = ("_target", "_args", "_kwargs", "_gt", "name", "daemon")

    def __init__(
        self,
        target: Callable[..., Any] | None = None,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
        daemon: bool | None = True,
    ) -> None:
        self._target = target
        self._args = tuple(args)
        self._kwargs = kwargs or {}
        self._gt: GreenThread | None = None
        self.name = name or f"engineio-task-{getattr(target, '__name__', 'run')}"
        self.daemon = True

    def start(self) -> None:
        """Run ``run()`` in a greenthread of its own (from the hub's next turn)."""
        if self._gt is not None:
            raise RuntimeError("threads can only be started once")
        if type(self).run is BackgroundTask.run and self._target is not None:
            # The target itself: a frame less under every event handler (and in
            # the traceback a framework may keep of it).
            self._gt = spawn_n(self._target, *self._args, **self._kwargs)
        else:
            self._gt = spawn_n(self.run)

    def run(self) -> None:
        """Call the target (override it in a subclass, as with ``Thread``)."""
        if self._target is not None:
            self._target(*self._args, **self._kwargs)

    def is_alive(self) -> bool:
        """True from ``start()`` until the task has ended."""
        return self._gt is not None and not self._gt.dead

    def join(self, timeout: float | None = None) -> None:
        """Wait until the task has ended, or ``timeout`` seconds."""
        gt = self._gt
        if gt is None:
            raise RuntimeError("cannot join thread before it is started")
        if gt.greenlet is getcurrent():
            raise RuntimeError("cannot join current thread")
        if gt.dead:
            return
        with Timeout(timeout, False):
            try:
                gt.wait()
            except (Exception, GreenletExit):
                pass  # logged where it happened, as a thread's would be

    def __repr__(self) -> str:
        state = "started" if self.is_alive() else "stopped" if self._gt else "initial"
        return f"<BackgroundTask({self.name}, {state})>"


#: What ``adopt_engineio`` puts in the threading mode's ``_async`` table.
ADOPTED = {"websocket": EngineIOWebSocket, "thread": BackgroundTask, "queue": Queue}


def adopt_engineio() -> bool:
    """Serve engineio's websocket transport with ``EngineIOWebSocket`` (and its
    tasks and queues as greenthreads and hub queues) in this process, if
    engineio's threading mode is loaded and threads are green; True if it is
    (now or already)."""
    driver = sys.modules.get(THREADING_DRIVER)
    if driver is None or not is_monkey_patched("thread"):
        return False
    table = getattr(driver, "_async", None)
    if not isinstance(table, dict) or not ADOPTED.keys() <= table.keys():
        return False
    current = table["websocket"]
    if current is not EngineIOWebSocket:
        EngineIOWebSocket.fallback = current
    table.update(ADOPTED)
    return True
