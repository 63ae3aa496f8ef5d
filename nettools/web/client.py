"""A green HTTP client: libcurl driven by the nettools hub.

    from nettools.web.client import HttpClient

    with HttpClient() as client:
        resp = client.get("https://example.org/")
        print(resp.status, resp.final_url, len(resp.body), resp.truncated)

It needs no ``monkey_patch()``: transfers run on libcurl (through pycurl)
whose sockets and timer are driven by this thread's hub (``_curl.py``), so
many greenthreads share one client and a waiting greenthread blocks nothing.
HTTP is all libcurl's; this module adds what the tools share:

* at most ``per_host`` requests in flight to one host per client -- a
  greenthread wanting more waits for one to finish; connections are kept
  alive and reused (libcurl's connection cache, shared by the thread);
* TLS verified against certifi's CA bundle (or ``ca_file``);
* redirects followed here, up to ``max_redirects``, each hop recorded and
  offered to ``redirect_check`` first; a loop is reported as soon as it closes;
* gzip/deflate decoded while streaming, the decoded body cut at ``max_body``
  (``Response.truncated``), so memory stays bounded even for compressed bombs;
* connect and read (inactivity) timeouts; ``HTTP(S)_PROXY``/``NO_PROXY`` from
  the environment, read the way Python reads them;
* names resolved by libcurl's threaded resolver, and each address offered to
  ``allow_address`` in the moment libcurl opens a socket for it, so a service
  can refuse private targets without a window between check and use.

HTTP error statuses come back as a ``Response``; every transport failure is a
``FetchError`` with a ``kind``.  HTTP/1.1 is spoken (``http2=True`` offers h2
over TLS).
"""

from __future__ import annotations

import _socket
import codecs
import ipaddress
import os
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import pycurl

from .._version import __version__
from ..green import socket as gsocket
from ..kernel.hub import get_hub
from ..kernel.sync import Semaphore
from ..kernel.timeout import Timeout
from ._curl import Transfer, curl_loop, existing_loop

__all__ = [
    "HttpClient",
    "Response",
    "FetchError",
    "DEFAULT_USER_AGENT",
    "is_public_address",
]

DEFAULT_USER_AGENT = f"nettools/{__version__} (+https://github.com/nettools/nettools)"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: A redirect's own body is read (and dropped) up to this much to keep the connection.
REDIRECT_BODY_LIMIT = 64 * 1024
FETCH_ERROR_KINDS = (
    "dns", "connect", "timeout", "tls", "protocol", "too-many-redirects", "refused-address",
    "other",
)  # fmt: skip
ACCEPT_ENCODING = "gzip, deflate"


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


class Headers(Mapping[str, str]):
    """Response headers: a read-only mapping with case-insensitive names.

    A name that came more than once maps to its values joined by ", ".
    """

    __slots__ = ("_items",)

    def __init__(self, items: dict[str, tuple[str, str]] | None = None) -> None:
        self._items = items if items is not None else {}  # lower name -> (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


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


# ------------------------------------------------------------------ one exchange


class _ReadTimedOut(Exception):
    """Thrown into a waiting greenthread whose transfer went quiet too long."""


class _Handle(Transfer):
    """A pooled easy handle and the state of the exchange it is running.

    Its callbacks run inside libcurl calls, in the hub: they never wait.
    ``opensocket`` is where ``allow_address`` sees the exact address libcurl
    is about to connect to, for the first request and every redirect hop.
    """

    __slots__ = (
        "loop", "config", "dirty", "chunks", "size", "cap", "truncated", "discarding",
        "follow", "lines", "parsed", "lines_seen", "headers", "allow", "refused", "last",
        "started", "read_timer",
    )  # fmt: skip

    def __init__(self, loop: Any) -> None:
        super().__init__(pycurl.Curl())
        self.loop = loop
        self.config: Any = None
        self.dirty = False
        self.chunks: list[bytes] = []
        self.size = 0
        self.cap = 0
        self.truncated = False
        self.discarding = False
        self.follow = False
        self.lines: list[bytes] = []
        self.parsed = -1  # len(lines) when last parsed
        self.lines_seen = 0  # len(lines) at the last read-timeout check
        self.headers: dict[str, tuple[str, str]] = {}
        self.allow: Callable[[str], bool] | None = None
        self.refused: list[str] = []
        self.last = 0.0
        self.started = 0.0
        self.read_timer: Any = None

    def prepare(self, cap: int, follow: bool, allow: Callable[[str], bool] | None) -> None:
        self.chunks = []
        self.size = 0
        self.cap = cap
        self.truncated = self.discarding = False
        self.follow = follow
        self.lines.clear()
        self.parsed = -1
        self.lines_seen = 0
        self.allow = allow
        self.refused = []
        self.started = self.last = time.monotonic()

    def write(self, data: bytes) -> int | None:
        self.last = time.monotonic()
        if self.parsed < 0 and self.follow:  # the body starts: is it a redirect's?
            if self.parse() in REDIRECT_STATUSES and "location" in self.headers:
                self.discarding = True
                self.cap = REDIRECT_BODY_LIMIT
        n = len(data)
        room = self.cap - self.size
        if n <= room:
            self.chunks.append(data)
            self.size += n
            return None
        if not self.discarding:
            self.chunks.append(data[:room])
            self.size = self.cap
            self.truncated = True
        return 0  # a short count stops the transfer; libcurl drops the connection

    def parse(self) -> int:
        """Parse the header lines received so far; returns the last status code.

        libcurl hands every line (status lines of 1xx answers and of a proxy's
        CONNECT answer included) to ``lines.append``: no Python call per line.
        """
        status = 0
        headers: dict[str, tuple[str, str]] = {}
        for line in self.lines:
            if line[:5] == b"HTTP/":  # a new response: the headers start over
                parts = line.split(None, 2)
                status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
                headers = {}
                continue
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            key = name.strip().decode("latin-1")
            text = value.strip().decode("latin-1")
            low = key.lower()
            old = headers.get(low)
            headers[low] = (key, text) if old is None else (old[0], f"{old[1]}, {text}")
        self.headers = headers
        self.parsed = len(self.lines)
        return status

    def opensocket(self, _purpose: int, address: Any) -> Any:
        ip = address.addr[0] if isinstance(address.addr, tuple) else ""
        if self.allow is not None and not self.allow(ip):
            self.refused.append(ip)
            return None  # CURL_SOCKET_BAD: libcurl tries the next address or fails
        sock = _socket.socket(address.family, address.socktype, address.protocol)
        return _NewSocket(sock.detach())


class _NewSocket:
    """A socket for libcurl: pycurl keeps a duplicate of ``fileno()``, ours closes here."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def __del__(self) -> None:
        os.close(self.fd)


def _configure(h: _Handle, options: list[tuple[int, Any]]) -> None:
    e = h.easy
    if h.config is not None:
        e.reset()
    e.setopt(pycurl.WRITEFUNCTION, h.write)
    e.setopt(pycurl.HEADERFUNCTION, h.lines.append)
    e.setopt(pycurl.OPENSOCKETFUNCTION, h.opensocket)
    for opt, value in options:
        e.setopt(opt, value)
    h.config = options
    h.dirty = False


def _take_handle(loop: Any, options: list[tuple[int, Any]]) -> _Handle:
    free = loop.handles
    h = free.pop() if free else _Handle(loop)
    if h.config is not options or h.dirty:
        _configure(h, options)
    return h


def _seconds(value: float | None) -> str:
    return "(no limit)" if value is None else f"{value:g}s"


_TLS_CODES = frozenset(
    getattr(pycurl, name)
    for name in (
        "E_SSL_CONNECT_ERROR", "E_PEER_FAILED_VERIFICATION", "E_SSL_CERTPROBLEM",
        "E_SSL_CIPHER", "E_SSL_CACERT", "E_SSL_CACERT_BADFILE", "E_SSL_ENGINE_NOTFOUND",
        "E_SSL_ENGINE_SETFAILED", "E_SSL_SHUTDOWN_FAILED", "E_SSL_CRL_BADFILE",
        "E_SSL_ISSUER_ERROR", "E_SSL_PINNEDPUBKEYNOTMATCH", "E_SSL_INVALIDCERTSTATUS",
        "E_USE_SSL_FAILED",
    )
    if hasattr(pycurl, name)
)  # fmt: skip
_PROTOCOL_CODES = frozenset(
    getattr(pycurl, name)
    for name in (
        "E_WEIRD_SERVER_REPLY", "E_PARTIAL_FILE", "E_GOT_NOTHING", "E_RECV_ERROR",
        "E_SEND_ERROR", "E_BAD_CONTENT_ENCODING", "E_HTTP2", "E_HTTP2_STREAM",
        "E_HTTP_RETURNED_ERROR", "E_FILESIZE_EXCEEDED", "E_UNKNOWN_OPTION", "E_HTTP3",
    )
    if hasattr(pycurl, name)
)  # fmt: skip


# ------------------------------------------------------------------ client


class HttpClient:
    """Concurrent HTTP(S) fetching for greenthreads; see the module docstring.

    ``allow_address(ip) -> bool`` (optional) vets every address libcurl is
    about to connect to (``is_public_address`` refuses private targets);
    refused hosts raise ``FetchError(kind='refused-address')``.  ``max_hosts``
    is how many hosts' request gates are kept while idle.
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
        http2: bool = False,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_body = max_body
        self.max_redirects = max_redirects
        self.per_host = per_host
        self.user_agent = user_agent or DEFAULT_USER_AGENT
        self.allow_address = allow_address
        self._max_hosts = max_hosts
        self._gates: dict[tuple[str, str, int | None], Semaphore] = {}
        options: list[tuple[int, Any]] = [
            (pycurl.NOSIGNAL, 1),
            (pycurl.FOLLOWLOCATION, 0),
            (pycurl.ACCEPT_ENCODING, ACCEPT_ENCODING),
            (pycurl.USERAGENT, self.user_agent),
            (pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2TLS if http2
             else pycurl.CURL_HTTP_VERSION_1_1),
            (pycurl.CONNECTTIMEOUT_MS, int(connect_timeout * 1000) if connect_timeout else 0),
            (pycurl.PROXY, ""),  # per request below; "" also keeps libcurl off the environment
        ]  # fmt: skip
        if hasattr(pycurl, "PROTOCOLS_STR"):
            options.append((pycurl.PROTOCOLS_STR, "http,https"))
        else:
            options.append((pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS))
        if verify:
            if ca_file is None:
                import certifi

                ca_file = certifi.where()
            options += [
                (pycurl.CAINFO, ca_file),
                (pycurl.SSL_VERIFYPEER, 1),
                (pycurl.SSL_VERIFYHOST, 2),
            ]
        else:
            options += [(pycurl.SSL_VERIFYPEER, 0), (pycurl.SSL_VERIFYHOST, 0)]
        self._options = options
        self._proxies: dict[str, str] = {}
        if proxy_from_env:
            self._proxies = urllib.request.getproxies_environment()

    def _proxy_for(self, url: str) -> str:
        """The proxy URL for ``url``, or '' to go direct."""
        if not self._proxies:
            return ""
        parts = urlsplit(url)
        proxy = self._proxies.get(parts.scheme) or self._proxies.get("all")
        if not proxy or urllib.request.proxy_bypass_environment(
            parts.hostname or "", self._proxies
        ):
            return ""
        return proxy if "://" in proxy else "http://" + proxy

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
        # A Timeout (a BaseException) reaches the waiting greenthread, which
        # takes its transfer out of libcurl on the way out.
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
        hdrs = {k.lower(): (k, v) for k, v in (headers or {}).items()}
        redirects: list[tuple[int, str]] = []
        seen = {(method, url)}
        current = url
        host = self._check_url(url)
        while True:
            h = self._send(method, current, host, hdrs, body, cap, follow_redirects)
            try:
                status = h.easy.getinfo(pycurl.RESPONSE_CODE)
                if h.parsed != len(h.lines):
                    h.parse()
                got = Headers(h.headers)
                location = got.get("Location")
                if not (follow_redirects and status in REDIRECT_STATUSES and location):
                    return Response(
                        url=url,
                        final_url=current,
                        status=status,
                        headers=got,
                        body=b"".join(h.chunks),
                        truncated=h.truncated,
                        redirects=redirects,
                        elapsed=time.monotonic() - start,
                    )
            finally:
                h.chunks = []
                h.loop.handles.append(h)
            try:
                target = urljoin(current, location.strip())
                host = self._check_url(target)
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
            redirects.append((status, target))
            if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
                method, body = "GET", None
                for name in ("content-type", "content-length"):
                    hdrs.pop(name, None)
            if urlsplit(target).netloc != urlsplit(current).netloc:
                # Credentials are for the host they were given to.
                for name in ("authorization", "cookie", "proxy-authorization"):
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

    def _check_url(self, url: str) -> tuple[str, str, int | None]:
        """``url``'s scheme, host and port, or FetchError if it is not one we fetch."""
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise FetchError(url, "other", f"bad URL: {exc}") from None
        if parts.scheme not in ("http", "https"):
            raise FetchError(url, "other", f"not an http(s) URL (scheme {parts.scheme!r})")
        try:
            host = parts.hostname
            port = parts.port  # raises on a bad port
        except ValueError as exc:
            raise FetchError(url, "other", f"bad URL: {exc}") from None
        if not host:
            raise FetchError(url, "other", "URL has no host")
        return parts.scheme, host, port

    def _send(
        self,
        method: str,
        url: str,
        key: tuple[str, str, int | None],
        hdrs: dict[str, tuple[str, str]],
        body: bytes | None,
        cap: int,
        follow: bool,
    ) -> _Handle:
        """One hop: wait for a place at the host, run it; the handle holds the answer.

        The caller puts the handle back on its loop's free list."""
        proxy = self._proxy_for(url)
        allow = self.allow_address
        if proxy and allow is not None:
            self._check_target(url)
            allow = None  # the proxy is the operator's choice; the target was vetted
        gate = self._gates.get(key)
        if gate is None:
            if len(self._gates) >= self._max_hosts:
                self._prune_gates()
            gate = self._gates[key] = Semaphore(self.per_host)
        gate.acquire()
        try:
            loop = curl_loop()
            if self not in loop.users:
                loop.users.add(self)
            h = _take_handle(loop, self._options)
            try:
                self._setup(h, method, url, hdrs, body, proxy)
                h.prepare(cap, follow, allow)
                code, message = self._perform(loop, h)
            except BaseException:
                h.chunks = []
                h.dirty = True  # whatever state libcurl kept, the next user starts over
                loop.handles.append(h)
                raise
        finally:
            gate.release()
        if code and not (code == pycurl.E_WRITE_ERROR and (h.truncated or h.discarding)):
            err = self._describe(h, url, proxy, code, message)
            h.chunks = []
            loop.handles.append(h)
            raise err
        return h

    def _prune_gates(self) -> None:
        idle = [k for k, g in self._gates.items() if g.counter == self.per_host and not g.waiting()]
        for k in idle:
            del self._gates[k]

    def _setup(
        self,
        h: _Handle,
        method: str,
        url: str,
        hdrs: dict[str, tuple[str, str]],
        body: bytes | None,
        proxy: str,
    ) -> None:
        e = h.easy
        try:
            e.setopt(pycurl.URL, url if url.isascii() else _ascii_url(url))
        except (pycurl.error, UnicodeError, ValueError) as exc:
            raise FetchError(url, "other", f"bad URL: {exc}") from None
        if proxy:
            e.setopt(pycurl.PROXY, proxy)
            h.dirty = True
        lines = [f"{k}: {v}" if v else f"{k};" for k, v in hdrs.values()]
        if method == "GET" and body is None:
            if lines:
                e.setopt(pycurl.HTTPHEADER, lines)
                h.dirty = True
            return
        h.dirty = True  # reset before the next plain GET
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""  # sent with Content-Length: 0, as these methods expect a body
        if method == "HEAD":
            e.setopt(pycurl.NOBODY, 1)
        elif method != "POST" or body is None:
            e.setopt(pycurl.CUSTOMREQUEST, method)
        if body is not None:
            e.setopt(pycurl.POSTFIELDS, body)
            # libcurl would add a form Content-Type and, for big bodies, wait
            # for "100 Continue"; send what the caller gave, as it gave it.
            if "content-type" not in hdrs:
                lines.append("Content-Type:")
            lines.append("Expect:")
        if lines:
            e.setopt(pycurl.HTTPHEADER, lines)

    def _perform(self, loop: Any, h: _Handle) -> tuple[int, str]:
        rt = self.read_timeout
        if rt is None:
            return loop.perform(h)
        h.read_timer = get_hub().schedule(rt, self._check_read, loop, h, rt)
        try:
            return loop.perform(h)
        except _ReadTimedOut:
            return -1, f"read timed out after {_seconds(rt)}"
        finally:
            h.read_timer.cancel()
            h.read_timer = None

    def _check_read(self, loop: Any, h: _Handle, rt: float) -> None:
        """From the hub: fail the transfer if nothing came for ``rt`` seconds once connected."""
        if h.waiter is None:
            return
        now = time.monotonic()
        connected = h.easy.getinfo(pycurl.PRETRANSFER_TIME)
        lines = len(h.lines)
        if connected <= 0 or lines != h.lines_seen:
            # Still connecting (the connect timeout has that part), or header
            # lines came since the last look.
            quiet_since = now
            h.lines_seen = lines
        else:
            quiet_since = max(h.last, h.started + connected)
        due = quiet_since + rt - now
        if due > 0:
            h.read_timer = get_hub().schedule(due, self._check_read, loop, h, rt)
            return
        loop.wake(h, _ReadTimedOut())

    def _describe(self, h: _Handle, url: str, proxy: str, code: int, message: str) -> FetchError:
        """One FetchError for a libcurl error code."""
        if code == -1:
            return FetchError(url, "timeout", message)
        e = h.easy
        parts = urlsplit(proxy or url)
        host = parts.hostname or ""
        where = f"[{host}]:{parts.port}" if ":" in host else f"{host}:{parts.port}"
        if parts.port is None:
            where = host
        if code == pycurl.E_COULDNT_CONNECT and h.refused and not proxy:
            ips = ", ".join(sorted(set(h.refused)))
            return FetchError(
                url, "refused-address", f"{host} resolves to a non-public address ({ips})"
            )
        if code == pycurl.E_OPERATION_TIMEDOUT:
            # Only the connect timeout (TCP, proxy tunnel, TLS handshake) is
            # libcurl's; the read and whole-exchange timeouts are ours.
            return FetchError(
                url, "timeout", f"connect timed out after {_seconds(self.connect_timeout)}"
            )
        if code in (pycurl.E_COULDNT_RESOLVE_HOST, pycurl.E_COULDNT_RESOLVE_PROXY):
            return FetchError(url, "dns", message or f"cannot resolve {host}")
        if code == pycurl.E_COULDNT_CONNECT:
            errno_ = e.getinfo(pycurl.OS_ERRNO)
            reason = os.strerror(errno_).lower() if errno_ else message
            via = "proxy " if proxy else ""
            return FetchError(url, "connect", f"cannot connect to {via}{where}: {reason}")
        if code in _TLS_CODES:
            return FetchError(url, "tls", message)
        if code == pycurl.E_UNSUPPORTED_PROTOCOL and "HTTP/0.9" in message:
            return FetchError(url, "protocol", "the answer is not HTTP")
        if code in (pycurl.E_URL_MALFORMAT, pycurl.E_UNSUPPORTED_PROTOCOL):
            return FetchError(url, "other", f"bad URL: {message}")
        if code in _PROTOCOL_CODES:
            return FetchError(url, "protocol", message)
        if code == getattr(pycurl, "E_PROXY", -2):
            return FetchError(url, "connect", message)
        return FetchError(url, "other", message or f"libcurl error {code}")

    def _check_target(self, url: str) -> None:
        """Through a proxy the proxy connects: vet the target's addresses ourselves."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            infos = gsocket.getaddrinfo(host, parts.port or 80, 0, gsocket.SOCK_STREAM)
        except (gsocket.gaierror, UnicodeError):
            return  # the proxy may know names we do not; it reports failures itself
        assert self.allow_address is not None
        if not any(self.allow_address(info[4][0]) for info in infos):
            raise FetchError(url, "refused-address", f"{host} resolves to a non-public address")

    # ------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Forget this client's per-host gates; once no open client of this
        thread remains, close the idle connections libcurl keeps for reuse."""
        self._gates.clear()
        loop = existing_loop()
        if loop is not None:
            loop.release(self)

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _ascii_url(url: str) -> str:
    """``url`` with an IDNA host and percent-encoded path, query and fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    if parts.username is not None:
        auth = quote(parts.username, safe="%")
        if parts.password is not None:
            auth += ":" + quote(parts.password, safe="%")
        netloc = f"{auth}@{netloc}"
    safe = "%/:=&?~#+!$,;'@()*[]"
    return urlunsplit(
        (parts.scheme, netloc, quote(parts.path, safe=safe), quote(parts.query, safe=safe),
         quote(parts.fragment, safe=safe))
    )  # fmt: skip
