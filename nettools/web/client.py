"""A green HTTP client: urllib3 running on nettools' green socket and ssl.

    from nettools.web.client import HttpClient

    with HttpClient() as client:
        resp = client.get("https://example.org/")
        print(resp.status, resp.final_url, len(resp.body), resp.truncated)

It needs no ``monkey_patch()``: the client uses a private copy of urllib3
(``import_patched``) whose socket, ssl, select, threading and queue are the
green modules, so it runs in plain processes and many greenthreads can share
one client.  HTTP is all urllib3's; this module adds what the tools share:

* one connection pool per host (keep-alive), at most ``per_host`` connections
  each -- a greenthread wanting more waits for one to come back;
* TLS verified against certifi's CA bundle (or ``ca_file``);
* redirects followed here, up to ``max_redirects``, each hop recorded and
  offered to ``redirect_check`` first; a loop is reported as soon as it closes;
* gzip/deflate decoded while streaming, the decoded body cut at ``max_body``
  (``Response.truncated``), so memory stays bounded even for compressed bombs;
* connect and read timeouts; ``HTTP(S)_PROXY``/``NO_PROXY`` from the environment;
* names resolved by the green ``getaddrinfo`` (a thread pool), and each address
  offered to ``allow_address`` before connecting to exactly that address, so a
  service can refuse private targets without a window between check and use.

HTTP error statuses come back as a ``Response``; every transport failure is a
``FetchError`` with a ``kind``.
"""

from __future__ import annotations

import codecs
import ipaddress
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import urljoin, urlsplit

from .._version import __version__
from ..green import socket as gsocket
from ..patcher import import_patched
from ..timeout import Timeout

__all__ = [
    "HttpClient",
    "Response",
    "FetchError",
    "DEFAULT_USER_AGENT",
    "is_public_address",
]

DEFAULT_USER_AGENT = f"nettools/{__version__} (+https://github.com/nettools/nettools)"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Bytes read per step while streaming a body.
CHUNK = 64 * 1024
#: A redirect's own body is read (and dropped) up to this much to keep the connection.
REDIRECT_BODY_LIMIT = 64 * 1024
FETCH_ERROR_KINDS = (
    "dns", "connect", "timeout", "tls", "protocol", "too-many-redirects", "refused-address",
    "other",
)  # fmt: skip


class FetchError(Exception):
    """A request that got no HTTP response: ``kind`` says why, ``url`` which one."""

    def __init__(self, url: str, kind: str, message: str) -> None:
        super().__init__(url, kind, message)
        self.url = url
        self.kind = kind if kind in FETCH_ERROR_KINDS else "other"
        self.message = _printable(" ".join(str(message).split()))

    def __str__(self) -> str:
        return f"{self.kind}: {_printable(self.url)}: {self.message}"


def _printable(text: str) -> str:
    """``text`` with control characters escaped, so it stays one harmless line."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


@dataclass
class Response:
    """A complete HTTP response (body already read, decoded and capped)."""

    url: str
    final_url: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    truncated: bool = False
    redirects: list[tuple[int, str]] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def content_type(self) -> str:
        """The mime type, lower case, without parameters ('' if none)."""
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()

    @property
    def charset(self) -> str | None:
        """The charset named by Content-Type, if any."""
        value = self.headers.get("Content-Type", "")
        if not value:
            return None
        msg = Message()
        msg["Content-Type"] = value
        cs = msg.get_param("charset")
        return cs.strip() if isinstance(cs, str) and cs.strip() else None

    def text(self) -> str:
        """The body decoded with the headers' charset, else UTF-8 (bad bytes replaced)."""
        encoding = "utf-8"
        cs = self.charset
        if cs:
            try:
                encoding = codecs.lookup(cs).name
            except LookupError:
                pass
        return self.body.decode(encoding, errors="replace")


def is_public_address(ip: str) -> bool:
    """True for a globally routable unicast address (not private, loopback,
    link-local, shared, reserved, multicast or unspecified)."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_global and not addr.is_multicast


# ------------------------------------------------------------------ urllib3

_urllib3: Any = None


def _green_urllib3() -> Any:
    """The private green copy of urllib3 (made once per process)."""
    global _urllib3
    if _urllib3 is None:
        # http.client and the email package must be imported the ordinary way
        # first: the copy then shares them (urllib3 makes its sockets itself)
        # instead of importing private copies of half the email package.
        import http.client  # noqa: F401

        _urllib3 = import_patched("urllib3")
    return _urllib3


def _connection_classes(u3: Any, allow_address: Callable[[str], bool] | None) -> dict[str, Any]:
    """Pool classes whose connections resolve, check and connect our way."""

    def new_conn(self: Any) -> Any:
        host = self._dns_host.strip("[]")
        # A proxy is the operator's choice; the target is checked in request().
        check = allow_address if not self.proxy else None
        return _open_socket(host, self.port, self.timeout, self.socket_options, check)

    http_conn = type("HTTPConnection", (u3.connection.HTTPConnection,), {"_new_conn": new_conn})
    https_conn = type("HTTPSConnection", (u3.connection.HTTPSConnection,), {"_new_conn": new_conn})
    return {
        "http": type("HTTPConnectionPool", (u3.HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type(
            "HTTPSConnectionPool", (u3.HTTPSConnectionPool,), {"ConnectionCls": https_conn}
        ),
    }


def _open_socket(
    host: str,
    port: int,
    timeout: Any,
    options: Any,
    allow_address: Callable[[str], bool] | None,
) -> Any:
    """Resolve ``host`` (green), check every address, connect to an allowed one."""
    try:
        infos = gsocket.getaddrinfo(host, port, 0, gsocket.SOCK_STREAM)
    except gsocket.gaierror as exc:
        raise FetchError("", "dns", f"cannot resolve {host}: {exc.strerror or exc}") from None
    except UnicodeError as exc:
        raise FetchError("", "dns", f"bad host name {host!r}: {exc}") from None
    if allow_address is not None:
        allowed = [info for info in infos if allow_address(info[4][0])]
        if not allowed:
            ips = ", ".join(sorted({info[4][0] for info in infos}))
            raise FetchError(
                "", "refused-address", f"{host} resolves to a non-public address ({ips})"
            )
        infos = allowed
    timeout = timeout if isinstance(timeout, (int, float)) else None
    last: BaseException | None = None
    for family, kind, proto, _canon, sockaddr in infos:
        sock = gsocket.socket(family, kind, proto)
        try:
            for opt in options or ():
                sock.setsockopt(*opt)
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    if isinstance(last, TimeoutError):
        raise FetchError("", "timeout", f"connect timed out after {_seconds(timeout)}")
    reason = getattr(last, "strerror", None) or str(last) or type(last).__name__
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    raise FetchError("", "connect", f"cannot connect to {where}: {reason.lower()}")


def _seconds(value: float | None) -> str:
    return "(no limit)" if value is None else f"{value:g}s"


def _describe(
    u3: Any, url: str, exc: BaseException, timeouts: tuple[float | None, float | None]
) -> FetchError:
    """One FetchError for whatever urllib3 raised."""
    e = u3.exceptions
    reason = exc
    # urllib3 wraps the real cause; look inside for the most telling one.
    for _ in range(4):
        inner = getattr(reason, "reason", None) or getattr(reason, "original_error", None)
        if inner is None or inner is reason or not isinstance(inner, BaseException):
            break
        if isinstance(inner, FetchError):
            return FetchError(url, inner.kind, inner.message)
        reason = inner
    text = str(reason) or type(reason).__name__
    if isinstance(exc, e.ReadTimeoutError) or isinstance(reason, TimeoutError):
        return FetchError(url, "timeout", f"read timed out after {_seconds(timeouts[1])}")
    if isinstance(exc, e.ConnectTimeoutError) and not isinstance(exc, e.NewConnectionError):
        return FetchError(url, "timeout", f"connect timed out after {_seconds(timeouts[0])}")
    if isinstance(exc, e.LocationParseError):
        return FetchError(url, "other", f"bad URL: {text}")
    if isinstance(exc, e.NameResolutionError):
        return FetchError(url, "dns", text)
    if isinstance(exc, e.SSLError) or "SSL" in type(reason).__name__:
        return FetchError(url, "tls", text)
    if isinstance(exc, (e.NewConnectionError, e.ProxyError)):
        return FetchError(url, "connect", text)
    if isinstance(exc, (e.ProtocolError, e.DecodeError, e.HTTPError)):
        return FetchError(url, "protocol", text)
    if isinstance(exc, TimeoutError):
        return FetchError(url, "timeout", f"timed out after {_seconds(timeouts[1])}")
    if isinstance(exc, OSError):
        return FetchError(url, "connect", text)
    return FetchError(url, "other", f"{type(exc).__name__}: {text}")


# ------------------------------------------------------------------ client


class HttpClient:
    """Concurrent HTTP(S) fetching for greenthreads; see the module docstring.

    ``allow_address(ip) -> bool`` (optional) vets every address a name
    resolves to before connecting (``is_public_address`` refuses private
    targets); refused hosts raise ``FetchError(kind='refused-address')``.
    ``max_hosts`` is how many per-host pools are kept (least recently used go).
    """

    def __init__(
        self,
        *,
        connect_timeout: float | None = 10.0,
        read_timeout: float | None = 30.0,
        max_body: int = 10 * 2**20,
        max_redirects: int = 10,
        per_host: int = 8,
        user_agent: str | None = None,
        verify: bool = True,
        ca_file: str | None = None,
        proxy_from_env: bool = True,
        allow_address: Callable[[str], bool] | None = None,
        max_hosts: int = 256,
    ) -> None:
        u3 = self._u3 = _green_urllib3()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_body = max_body
        self.max_redirects = max_redirects
        self.per_host = per_host
        self.user_agent = user_agent or DEFAULT_USER_AGENT
        self.allow_address = allow_address
        self._timeout = u3.Timeout(connect=connect_timeout, read=read_timeout)
        pool_kw: dict[str, Any] = {"maxsize": per_host, "block": True}
        if verify:
            if ca_file is None:
                import certifi

                ca_file = certifi.where()
            pool_kw.update(cert_reqs="CERT_REQUIRED", ca_certs=ca_file)
        else:
            pool_kw["cert_reqs"] = "CERT_NONE"
            u3.disable_warnings(u3.exceptions.InsecureRequestWarning)
        self._pool_kw = pool_kw
        self._max_hosts = max_hosts
        self._pool_classes = _connection_classes(u3, allow_address)
        self._direct = self._manager(u3.PoolManager)
        self._proxies: dict[str, str] = {}
        if proxy_from_env:
            self._proxies = urllib.request.getproxies_environment()
        self._proxy_managers: dict[str, Any] = {}

    def _manager(self, cls: Any, *args: Any, **kw: Any) -> Any:
        pm = cls(*args, num_pools=self._max_hosts, **kw, **self._pool_kw)
        pm.pool_classes_by_scheme = self._pool_classes
        return pm

    def _manager_for(self, url: str) -> tuple[Any, bool]:
        """The pool manager for ``url`` and whether it goes through a proxy."""
        if not self._proxies:
            return self._direct, False
        parts = urlsplit(url)
        proxy = self._proxies.get(parts.scheme) or self._proxies.get("all")
        if not proxy or urllib.request.proxy_bypass_environment(
            parts.hostname or "", self._proxies
        ):
            return self._direct, False
        if "://" not in proxy:
            proxy = "http://" + proxy
        pm = self._proxy_managers.get(proxy)
        if pm is None:
            pm = self._proxy_managers[proxy] = self._manager(self._u3.ProxyManager, proxy)
        return pm, True

    # ------------------------------------------------------------ requests

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        follow_redirects: bool = True,
        max_body: int | None = None,
        redirect_check: Callable[[str], None] | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Send one request, following redirects; returns the final ``Response``.

        HTTP statuses (4xx/5xx) come back as a Response; transport failures
        raise FetchError.  ``redirect_check(url)`` is called before following
        each redirect and may raise FetchError to stop there.  ``timeout``
        bounds the whole exchange (all hops and the body), on top of the
        connect and read timeouts that bound each step.
        """
        if timeout is None:
            return self._request(method, url, headers, body, follow_redirects, max_body,
                                 redirect_check)  # fmt: skip
        # A Timeout (a BaseException) cuts through urllib3's own error handling;
        # the cleanup in finally blocks puts the connection back.
        timer = Timeout(timeout)
        try:
            return self._request(method, url, headers, body, follow_redirects, max_body,
                                 redirect_check)  # fmt: skip
        except Timeout as exc:
            if exc is not timer:
                raise
            raise FetchError(url, "timeout", f"no complete response within {timeout:g}s") from None
        finally:
            timer.cancel()

    def _request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        body: bytes | None,
        follow_redirects: bool,
        max_body: int | None,
        redirect_check: Callable[[str], None] | None,
    ) -> Response:
        start = time.monotonic()
        method = method.upper()
        cap = self.max_body if max_body is None else max_body
        hdrs = self._u3.HTTPHeaderDict(
            {"User-Agent": self.user_agent, "Accept-Encoding": "gzip, deflate"}
        )
        for k, v in (headers or {}).items():
            hdrs[k] = v
        redirects: list[tuple[int, str]] = []
        seen = {(method, url)}
        current = url
        while True:
            self._check_url(current)
            raw = self._send(method, current, hdrs, body)
            location = raw.headers.get("Location")
            if not (follow_redirects and raw.status in REDIRECT_STATUSES and location):
                data, truncated = self._read_body(raw, cap, current)
                return Response(
                    url=url,
                    final_url=current,
                    status=raw.status,
                    headers=raw.headers,
                    body=data,
                    truncated=truncated,
                    redirects=redirects,
                    elapsed=time.monotonic() - start,
                )
            self._discard(raw)
            try:
                target = urljoin(current, location.strip())
                self._check_url(target)
            except (ValueError, FetchError) as exc:
                why = exc.message if isinstance(exc, FetchError) else str(exc)
                raise FetchError(url, "protocol", f"bad redirect to {location!r}: {why}") from None
            if len(redirects) >= self.max_redirects:
                raise FetchError(
                    url, "too-many-redirects", f"more than {self.max_redirects} redirects"
                )
            if redirect_check is not None:
                try:
                    redirect_check(target)
                except FetchError as exc:
                    raise FetchError(url, exc.kind, exc.message) from None
            redirects.append((raw.status, target))
            if (raw.status == 303 and method != "HEAD") or (
                raw.status in (301, 302) and method == "POST"
            ):
                method, body = "GET", None
                for name in ("Content-Type", "Content-Length"):
                    hdrs.pop(name, None)
            if urlsplit(target).netloc != urlsplit(current).netloc:
                # Credentials are for the host they were given to.
                for name in ("Authorization", "Cookie", "Proxy-Authorization"):
                    hdrs.pop(name, None)
            if (method, target) in seen:
                raise FetchError(url, "too-many-redirects", f"redirect loop at {target}")
            seen.add((method, target))
            current = target

    def get(self, url: str, **kw: Any) -> Response:
        """``request("GET", url, **kw)``."""
        return self.request("GET", url, **kw)

    def head(self, url: str, **kw: Any) -> Response:
        """``request("HEAD", url, **kw)``."""
        return self.request("HEAD", url, **kw)

    def _check_url(self, url: str) -> None:
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise FetchError(url, "other", f"bad URL: {exc}") from None
        if parts.scheme not in ("http", "https"):
            raise FetchError(url, "other", f"not an http(s) URL (scheme {parts.scheme!r})")
        try:
            host = parts.hostname
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise FetchError(url, "other", f"bad URL: {exc}") from None
        if not host:
            raise FetchError(url, "other", "URL has no host")

    def _send(self, method: str, url: str, hdrs: Any, body: bytes | None) -> Any:
        pm, proxied = self._manager_for(url)
        try:
            if proxied and self.allow_address is not None:
                self._check_target(url)
            return pm.urlopen(
                method,
                url,
                body=body,
                headers=hdrs,
                redirect=False,
                retries=False,
                preload_content=False,
                decode_content=True,
                timeout=self._timeout,
            )
        except FetchError as exc:
            raise FetchError(url, exc.kind, exc.message) from None
        except Exception as exc:  # anything urllib3 or the socket raised
            raise _describe(self._u3, url, exc, self._timeouts) from None

    def _check_target(self, url: str) -> None:
        """Through a proxy the proxy connects: vet the target's addresses ourselves."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            infos = gsocket.getaddrinfo(host, parts.port or 80, 0, gsocket.SOCK_STREAM)
        except gsocket.gaierror:
            return  # the proxy may know names we do not; it reports failures itself
        assert self.allow_address is not None
        if not any(self.allow_address(info[4][0]) for info in infos):
            raise FetchError(url, "refused-address", f"{host} resolves to a non-public address")

    @property
    def _timeouts(self) -> tuple[float | None, float | None]:
        return self.connect_timeout, self.read_timeout

    def _read_body(self, raw: Any, cap: int, url: str) -> tuple[bytes, bool]:
        """Read and decode the body as it streams in, stopping at ``cap`` bytes."""
        parts: list[bytes] = []
        size = 0
        truncated = False
        clean = False
        try:
            for chunk in self._chunks(raw):
                if size + len(chunk) > cap:
                    parts.append(chunk[: cap - size])
                    size = cap
                    truncated = True
                    break
                parts.append(chunk)
                size += len(chunk)
            clean = not truncated
        except FetchError:
            raise
        except Exception as exc:
            raise _describe(self._u3, url, exc, self._timeouts) from None
        finally:
            # Cut short (cap, error, or a Timeout from the caller): the rest is
            # still on the wire, so this connection cannot be reused.
            if not clean:
                raw.close()
            raw.release_conn()
        return b"".join(parts), truncated

    @staticmethod
    def _chunks(raw: Any) -> Iterator[bytes]:
        while True:
            chunk = raw.read(CHUNK, decode_content=True)
            if not chunk:
                return
            yield chunk

    def _discard(self, raw: Any) -> None:
        """Drop a redirect's body, keeping the connection if the body is small."""
        clean = False
        try:
            size = 0
            for chunk in self._chunks(raw):
                size += len(chunk)
                if size > REDIRECT_BODY_LIMIT:
                    break
            else:
                clean = True
        except Exception:
            pass
        finally:
            if not clean:
                raw.close()
            raw.release_conn()

    # ------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Close every pooled connection now (urllib3 alone would leave idle
        ones to the garbage collector)."""
        for pm in (self._direct, *self._proxy_managers.values()):
            for key in list(pm.pools.keys()):
                pool = pm.pools.get(key)
                if pool is not None:
                    pool.close()
            pm.clear()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
