"""A gunicorn worker serving on nettools: ``gunicorn -k nettools.gunicorn.Worker app:app``.

What ``-k eventlet`` and ``-k gevent`` are, on nettools' own WSGI server: each
worker process patches the standard library (``monkey_patch()``, so the
application's own clients, database drivers in tpool and sleeps are green),
then serves every listening socket gunicorn gave it with
``nettools.web.wsgi.WSGIServer``, one greenthread per connection.

gunicorn's settings that apply:

* ``worker_connections``: connections served at once per worker;
* ``keepalive``: seconds a keep-alive connection may idle (0: one request
  per connection);
* ``graceful_timeout``: on SIGTERM (or a restart), in-flight requests get this
  long, idle keep-alive connections are closed at once;
* ``timeout``: the worker tells the arbiter it is alive four times a second;
* ``max_requests`` (+ jitter): the worker restarts after that many requests;
* ``accesslog``: lines in nettools' access-log format (``log_format`` of
  ``nettools.web.wsgi``), to gunicorn's access logger; ``access_log_format``
  is not used (it formats gunicorn's own request objects);
* ``limit_request_line``, ``limit_request_field_size``,
  ``limit_request_fields``: nettools' request limits;
* ``certfile``/``keyfile`` (``is_ssl``): TLS, with gunicorn's SSL context.

Hooks that take gunicorn's own request objects (``pre_request``,
``post_request``) are not called: nettools does not parse with gunicorn.
"""

from __future__ import annotations

import os
from typing import Any

from gunicorn.workers.base import Worker as _BaseWorker

from . import patcher
from .green import socket as green_socket
from .kernel.greenthread import sleep, spawn
from .web.wsgi import WSGIServer

__all__ = ["Worker"]


class Worker(_BaseWorker):
    """gunicorn's worker class for nettools (``-k nettools.gunicorn.Worker``)."""

    servers: list[WSGIServer] = []

    def init_process(self) -> None:
        # Before the application is imported (the base class loads it), as the
        # eventlet and gevent workers do.
        patcher.monkey_patch()
        super().init_process()

    def run(self) -> None:
        app = self.wsgi
        if self.max_requests and self.max_requests < (1 << 62):
            app = self._counting(app)
        self.servers = servers = [self._serve(sock, app) for sock in self.sockets]
        ppid = self.ppid
        try:
            # SIGTERM only clears self.alive: look often, so a stop starts at once.
            while self.alive:
                self.notify()
                if os.getppid() != ppid:
                    self.log.info("Parent changed, shutting down: %s", self)
                    break
                sleep(0.25)
        finally:
            self.notify()
            stops = [spawn(srv.stop, self.cfg.graceful_timeout) for srv in servers]
            for stop in stops:
                stop.wait()

    def _serve(self, listener: Any, app: Any) -> WSGIServer:
        """A started server on a green copy of gunicorn's listening socket."""
        sock = green_socket.socket(fileno=os.dup(listener.fileno()))
        cfg = self.cfg
        access = None
        if cfg.accesslog:
            access = getattr(self.log, "access_log", None)
        server = WSGIServer(
            sock,
            app,
            max_size=cfg.worker_connections,
            keepalive=cfg.keepalive if cfg.keepalive > 0 else False,
            log=access,
            log_output=access is not None,
            url_length_limit=cfg.limit_request_line or 1 << 20,
            max_header_size=cfg.limit_request_field_size or 1 << 20,
            max_headers=cfg.limit_request_fields or 1 << 14,
            ssl_context=self._ssl_context() if cfg.is_ssl else None,
            environ={"SERVER_SOFTWARE": f"gunicorn (nettools worker) {self.cfg.proc_name}"},
            name="gunicorn",
        )
        return server.start()

    def _ssl_context(self) -> Any:
        from gunicorn.sock import ssl_context

        return ssl_context(self.cfg)

    def _counting(self, app: Any) -> Any:
        """``app``, with the worker stopping (to be replaced) after ``max_requests``."""
        worker = self
        served = 0

        def counted(environ: dict, start_response: Any) -> Any:
            nonlocal served
            served += 1
            if served >= worker.max_requests and worker.alive:
                worker.log.info("Autorestarting worker after current request.")
                worker.alive = False
                # No more connections for this process; those open finish.
                for srv in worker.servers:
                    srv.close()
            return app(environ, start_response)

        return counted
