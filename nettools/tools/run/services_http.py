"""The services of a run file that speak HTTP: ``wschat``, ``serve``, ``static``,
``feeds`` (``nettools feeds serve``).

Each is its tool started through its public API, with the settings of its
command and the same defaults -- except that every one listens where
``listen`` says (``wschat`` and ``serve`` take ``--host``/``--port`` on the
command line), by default on a free loopback port.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from ..chat.wschat import WSChatServer, WSChatStats
from ..feeds.service import FeedService, FeedStats
from ..plumbing.httpmetrics import RequestMetrics
from ..plumbing.service import Stats, listen_on, server_tls
from ..serve import ACCESS_LOG_FORMATS, ServeOptions, make_server, prepare_app
from ..static import StaticServer, StaticStats
from .options import (
    FLOOD_SETTINGS,
    SLOW_CLIENT_SETTINGS,
    TLS_SETTINGS,
    Kind,
    Setting,
    SettingError,
    boolean,
    check_tls,
    choice,
    drain_setting,
    duration,
    integer,
    listen_setting,
    log_target,
    path,
    paths,
    size,
    text,
    texts,
)
from .running import RUN_METRICS, Started, closing_on_error
from .services_tcp import BUS_SETTINGS, check_bus, open_bus

__all__ = ["WSCHAT", "SERVE", "STATIC", "FEEDS"]


def _tls(v: dict[str, Any]) -> Any:
    return server_tls(v["tls-cert"], v["tls-key"])


# ---------------------------------------------------------------- wschat


def _start_wschat(name: str, v: dict[str, Any]) -> Started:
    tls = _tls(v)
    bus = open_bus(v)
    stats = WSChatStats()
    sock = listen_on(v["listen"])
    access = logging.getLogger("nettools.wschat.access") if v["access-log"] else None
    return closing_on_error(sock.close, lambda: Started(stats, [sock], WSChatServer(
        sock, history=v["history"], max_message=v["max-message"], max_conns=v["max-conns"],
        rate=v["rate"], burst=v["burst"], queue_size=v["queue-size"],
        slow_timeout=v["slow-timeout"], send_buffer=v["send-buffer"],
        idle_timeout=v["idle-timeout"], ping_interval=v["ping-interval"],
        ping_timeout=v["ping-timeout"], origins=list(v["origin"]) or None, ssl_context=tls,
        access_log=access, stats=stats, bus=bus,
    ).start().stop))


def _check_wschat(v: dict[str, Any]) -> None:
    check_tls(v)
    check_bus(v)


WSCHAT = Kind(
    "wschat",
    {
        "listen": listen_setting(),
        "history": Setting(integer(0), 50),
        "max-conns": Setting(integer(1), 10_000),
        "max-message": Setting(integer(1), 2000),
        **FLOOD_SETTINGS,
        **SLOW_CLIENT_SETTINGS,
        "idle-timeout": Setting(duration, "off"),
        "ping-interval": Setting(duration, "20s"),
        "ping-timeout": Setting(duration, "20s"),
        "origin": Setting(texts, []),
        **TLS_SETTINGS,
        "access-log": Setting(boolean, False),
        "drain-timeout": drain_setting(),
        **BUS_SETTINGS,
    },
    _start_wschat,
    check=_check_wschat,
    summary="a chat in the browser, over websockets",
)


# ---------------------------------------------------------------- serve


class ServeCounts:
    """The counts of a WSGI server, read from it when asked."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.started = time.monotonic()

    def summary(self, service: str) -> dict[str, Any]:
        net = self.server.server
        return {"event": "stopped", "service": service, "connections": net.accepted,
                "active": len(net.connections), "errors": net.errors,
                "seconds": round(time.monotonic() - self.started, 3)}  # fmt: skip


def _start_serve(name: str, v: dict[str, Any]) -> Started:
    for directory in reversed([v["app-dir"], *v["pythonpath"]]):
        if directory not in sys.path:
            sys.path.insert(0, directory)
    opts = ServeOptions(
        spec=v["app"], max_conns=v["max-conns"], keepalive_timeout=v["keepalive-timeout"],
        drain_timeout=v["drain-timeout"], access_log=v["access-log"],
        access_log_format=v["access-log-format"] or "combined", tls_cert=v["tls-cert"],
        tls_key=v["tls-key"], patch=v["patch"],
    )  # fmt: skip
    app = prepare_app(opts)  # patching first (if asked), as nettools serve does
    sock = listen_on(v["listen"])
    # Requests are counted only for a run that serves /metrics.
    requests = Stats() if v.get(RUN_METRICS) else None
    return closing_on_error(sock.close, lambda: _serving(
        *make_server(opts, app, sock=sock, stats=requests), requests))


def _serving(server: Any, finish: Any, requests: Stats | None) -> Started:
    counts = ServeCounts(server)
    return Started(counts, [server.socket], server.stop, cleanup=[finish], metrics=requests)


SERVE = Kind(
    "serve",
    {
        "app": Setting(text, required=True),
        "app-dir": Setting(path, "."),
        "listen": listen_setting(),
        "max-conns": Setting(integer(1), 1024),
        **TLS_SETTINGS,
        "access-log": Setting(log_target),
        "access-log-format": Setting(choice(*ACCESS_LOG_FORMATS)),
        "keepalive-timeout": Setting(duration, "75s"),
        "patch": Setting(boolean, True),
        "pythonpath": Setting(paths, []),
        "drain-timeout": drain_setting(),
    },
    _start_serve,
    check=check_tls,
    unsupported={"workers": "one process runs every service of a run file; for worker "
                            "processes run nettools serve --workers N on its own"},
    summary="any WSGI application (MODULE:APP), in this process",
)


# ---------------------------------------------------------------- static


def _start_static(name: str, v: dict[str, Any]) -> Started:
    tls = _tls(v)
    stats = StaticStats()
    access = logging.getLogger("nettools.static.access") if v["access-log"] else None
    counted = RequestMetrics(stats, count_bytes=False).hook if v.get(RUN_METRICS) else None
    sock = listen_on(v["listen"])
    return closing_on_error(sock.close, lambda: Started(stats, [sock], StaticServer(
        sock, v["root"], index=v["index"], listing=v["listing"],
        follow_symlinks=v["follow-symlinks"], hidden=v["hidden"], max_conns=v["max-conns"],
        keepalive_timeout=v["keepalive-timeout"], revalidate=v["revalidate"] or 0.0,
        ssl_context=tls, access_log=access, stats=stats, on_request=counted,
    ).start().stop, extras=[{"root": v["root"]}]))


def _check_static(v: dict[str, Any]) -> None:
    if not os.path.isdir(v["root"]):
        raise SettingError("root", f"root: not a directory: {v['root']}")
    if "/" in v["index"]:
        raise SettingError("index", "index: a file name, not a path")
    check_tls(v)


STATIC = Kind(
    "static",
    {
        "root": Setting(path, required=True),
        "listen": listen_setting(),
        "index": Setting(text, "index.html"),
        "listing": Setting(boolean, True),
        "follow-symlinks": Setting(boolean, False),
        "hidden": Setting(boolean, False),
        "max-conns": Setting(integer(1), 1000),
        "keepalive-timeout": Setting(duration, "75s"),
        "revalidate": Setting(duration, "1s"),
        **TLS_SETTINGS,
        "access-log": Setting(boolean, False),
        "drain-timeout": drain_setting(),
    },
    _start_static,
    check=_check_static,
    summary="the files under a directory (nettools static)",
)


# ---------------------------------------------------------------- feeds


def _start_feeds(name: str, v: dict[str, Any]) -> Started:
    stats = FeedStats()
    app = FeedService.open(
        concurrency=v["concurrency"], max_urls=v["max-urls"], max_request=v["max-request"],
        max_feed=v["max-feed"], timeout=v["timeout"], deadline=v["deadline"],
        allow_private=v["allow-private"], cache=v["cache"], per_host=v["per-host"], stats=stats,
    )  # fmt: skip
    sock = listen_on(v["listen"])
    return closing_on_error(sock.close, lambda: Started(
        stats, [sock], app.start(sock, max_conns=v["max-conns"])))


def _check_feeds(v: dict[str, Any]) -> None:
    if v["max-request"] < 1:
        raise SettingError("max-request", "max-request must be at least 1 byte")


FEEDS = Kind(
    "feeds",
    {
        "listen": listen_setting(),
        "concurrency": Setting(integer(1), 64),
        "max-urls": Setting(integer(1), 100),
        "max-request": Setting(size, "64K"),
        "max-feed": Setting(size, "2M"),
        "timeout": Setting(duration, "20s"),
        "deadline": Setting(duration, "60s"),
        "allow-private": Setting(boolean, False),
        "cache": Setting(path),
        "per-host": Setting(integer(1), 4),
        "max-conns": Setting(integer(1), 1000),
        "drain-timeout": drain_setting(),
    },
    _start_feeds,
    check=_check_feeds,
    summary="feed titles over HTTP (nettools feeds serve)",
)
