"""Any nettools server in a background OS thread with a hub of its own, so that
the test side can talk to it with unmodified blocking clients (stdlib sockets,
http.client, requests), exactly as real clients would."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import nettools
from nettools.kernel.hub import get_hub

LOCAL = "127.0.0.1"


class ServerThread:
    """``make(sock)`` -- a server with ``start``/``serve_forever``/``stop`` and an
    ``address`` -- served from a background thread for the ``with`` block, on
    a fresh listener at 127.0.0.1, port 0 (or the one ``listener()`` makes, in
    that thread so that its socket belongs to that hub)."""

    def __init__(
        self, make: Callable[[Any], Any], listener: Callable[[], Any] | None = None
    ) -> None:
        self.make = make
        self.listener = listener
        self.server: Any = None
        self.hub: Any = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.hub = get_hub()
            sock = self.listener() if self.listener is not None else nettools.listen((LOCAL, 0))
            self.server = self.make(sock)
            self.server.start()
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            self._ready.set()
        self.server.serve_forever()

    def __enter__(self) -> ServerThread:
        self.thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.thread.is_alive():
            self.stop(0)

    @property
    def port(self) -> int:
        return self.server.address[1]

    @property
    def url(self) -> str:
        return f"http://{LOCAL}:{self.port}"

    def call(self, fn: Callable[[], Any], timeout: float = 10) -> Any:
        """Run ``fn()`` in a new greenthread of the server's hub; return its result."""
        box: queue.Queue = queue.Queue()

        def run() -> None:
            try:
                box.put((True, fn()))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                box.put((False, exc))

        self.hub.run_callback_threadsafe(lambda: nettools.spawn(run))
        ok, value = box.get(timeout=timeout)
        if not ok:
            raise value
        return value

    def stop(self, timeout: float | None = 0, wait: bool = True) -> None:
        """``server.stop(timeout)`` in the server's thread; optionally wait for it."""
        done = threading.Event()

        def run() -> None:
            try:
                self.server.stop(timeout)
            finally:
                done.set()

        self.hub.run_callback_threadsafe(lambda: nettools.spawn(run))
        if wait:
            done.wait(30)
            self.thread.join(10)
