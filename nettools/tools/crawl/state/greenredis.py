"""redis-py on green sockets, without monkey-patching the process.

redis-py's synchronous client makes its sockets with the standard ``socket``
module, imported when redis-py is.  Unpatched, a command blocks the OS
thread, and with it every greenthread of the hub, for as long as Redis takes
to answer (a ``BLPOP``: its whole timeout).  Everything else in redis-py is
already fine under the hub: it reads and writes through the socket object's
methods (``recv_into``, ``sendall``, ``settimeout``), which a green socket has
with the same meaning and the same exceptions, and its plain connection
pool's locks are held only around list operations, never across a wait (its
``BlockingConnectionPool`` waits on a ``threading.Condition``: not that one).  So the
one thing to replace is where the socket is made: ``GreenConnection`` and
``GreenUnixConnection`` open a ``nettools.green.socket`` socket, and
``green_redis`` builds a client whose pool uses them.  The test suite checks
that a command waiting in Redis lets the other greenthreads run.

One more thing waits in the OS: ``redis.Redis(...)`` built from its own
arguments retries a failed command 3 times, sleeping between tries with
``time.sleep`` (exponential backoff, 1 s to 10 s) -- the whole hub would stop
while Redis restarts.  A pool built here gives its connections redis-py's
connection default, no retry; the callers try again with green sleeps
(``SharedCrawl`` keeps trying for its patience).

``redis`` is an optional dependency (``pip install nettools[redis]``): it is
imported when a Redis state is opened, not before.
"""

from __future__ import annotations

from typing import Any

from ....green import socket as gsocket

__all__ = ["green_redis", "RedisMissing"]


class RedisMissing(RuntimeError):
    """The ``redis`` client library is not installed."""


def _classes() -> tuple[type, type, Any]:
    try:
        import redis
        from redis.connection import Connection, UnixDomainSocketConnection
    except ImportError:
        raise RedisMissing("--state redis needs the redis client library: "
                           "pip install 'nettools[redis]'") from None  # fmt: skip

    class GreenConnection(Connection):
        """A TCP connection to Redis on a green socket."""

        def _connect(self) -> Any:
            sock = gsocket.create_connection((self.host, self.port),
                                             timeout=self.socket_connect_timeout)  # fmt: skip
            try:
                sock.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)
                if self.socket_keepalive:
                    sock.setsockopt(gsocket.SOL_SOCKET, gsocket.SO_KEEPALIVE, 1)
                sock.settimeout(self.socket_timeout)
            except BaseException:
                sock.close()
                raise
            return sock

    class GreenUnixConnection(UnixDomainSocketConnection):
        """A unix-socket connection to Redis on a green socket."""

        def _connect(self) -> Any:
            sock = gsocket.socket(gsocket.AF_UNIX, gsocket.SOCK_STREAM)
            try:
                sock.settimeout(self.socket_connect_timeout)
                sock.connect(self.path)
                sock.settimeout(self.socket_timeout)
            except BaseException:
                sock.close()
                raise
            return sock

    return GreenConnection, GreenUnixConnection, redis


def green_redis(
    *, host: str = "", port: int = 6379, path: str = "", db: int = 0,
    username: str | None = None, password: str | None = None, timeout: float = 30.0,
    max_connections: int = 64,
) -> Any:
    """A ``redis.Redis`` client whose connections are green: over TCP to
    ``host:port``, or the unix socket ``path``.  ``timeout`` bounds connecting
    and each answer."""
    tcp, unix, redis = _classes()
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # No retry of redis-py's own: it would sleep in the OS (see above).
    kwargs: dict[str, Any] = {"db": db, "username": username, "password": password,
                              "socket_timeout": timeout, "socket_connect_timeout": timeout,
                              "max_connections": max_connections,
                              "retry": Retry(NoBackoff(), 0)}  # fmt: skip
    # The plain pool: its blocking cousin waits for a free connection on a
    # threading.Condition, which would stop the hub.  The callers bound how
    # many commands are under way at once (``max_connections``).
    if path:
        pool = redis.ConnectionPool(connection_class=unix, path=path, **kwargs)
    else:
        pool = redis.ConnectionPool(connection_class=tcp, host=host, port=port,
                                    socket_keepalive=True, **kwargs)  # fmt: skip
    return redis.Redis(connection_pool=pool)
