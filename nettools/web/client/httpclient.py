"""``HttpClient``: per-host gates, redirects followed hop by hop, proxies from the
environment, the whole-exchange timeout; ``nettools.web.client`` says what it offers."""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import pycurl

from ... import __version__
from ...kernel.sync import Semaphore
from .addresses import check_proxied_target
from .curlloop import curl_loop, existing_loop
from .errors import FetchError, describe_error
from .response import Headers, Response
from .transfer import REDIRECT_STATUSES, Exchange, TimeBudget, take_exchange

__all__ = ["HttpClient", "DEFAULT_USER_AGENT", "ACCEPT_ENCODING"]

DEFAULT_USER_AGENT = f"nettools/{__version__} (+https://github.com/nettools/nettools)"
ACCEPT_ENCODING = "gzip, deflate"
#: What comes before a URL's path: its scheme, host and port depend on nothing else.
_ORIGIN = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]*")
#: Origins whose parse ``HttpClient`` remembers (forgotten all at once beyond this).
_MAX_ORIGINS = 1024


class HttpClient:
    """Concurrent HTTP(S) fetching for greenthreads; see ``nettools.web.client``.

    ``allow_address(ip) -> bool`` (optional) vets every address libcurl is
    about to connect to (``is_public_address`` refuses private targets);
    refused hosts raise ``FetchError(kind='refused-address')``.  ``max_hosts``
    is how many hosts' request gates are kept while idle.

    Timeouts: ``connect_timeout`` bounds each connection (TCP, proxy, TLS),
    ``read_timeout`` each silence once connected, and ``timeout`` a request's
    whole exchange -- every redirect hop and the body -- however steadily a
    server drips it (``None``: no limit).  Time spent waiting for a place at a
    busy host (``per_host``) does not count.  Each raises
    ``FetchError(kind='timeout')``.
    """

    def __init__(
        self,
        *,
        connect_timeout: float | None = 10.0,
        read_timeout: float | None = 30.0,
        timeout: float | None = 120.0,
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
        self.timeout = timeout
        self.max_body = max_body
        self.max_redirects = max_redirects
        self.per_host = per_host
        self.user_agent = user_agent or DEFAULT_USER_AGENT
        self.allow_address = allow_address
        self._max_hosts = max_hosts
        self._gates: dict[tuple[str, str, int | None], Semaphore] = {}
        self._origins: dict[str, tuple[str, str, int | None]] = {}  # see _check_url
        options: list[tuple[int, Any]] = [
            (pycurl.NOSIGNAL, 1),
            (pycurl.FOLLOWLOCATION, 0),
            (pycurl.ACCEPT_ENCODING, ACCEPT_ENCODING),
            (pycurl.USERAGENT, self.user_agent),
            (pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2TLS if http2
             else pycurl.CURL_HTTP_VERSION_1_1),
            (pycurl.CONNECTTIMEOUT_MS, int(connect_timeout * 1000) if connect_timeout else 0),
            (pycurl.PROXY, ""),  # per request (set_request); "" keeps libcurl off the environment
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
        bounds the whole exchange (all hops and the body) instead of the
        client's ``timeout``, on top of the connect and read timeouts that
        bound each step.
        """
        start = time.monotonic()
        method = method.upper()
        cap = self.max_body if max_body is None else max_body
        hdrs = {k.lower(): (k, v) for k, v in (headers or {}).items()}
        budget = TimeBudget(self.timeout if timeout is None else timeout)
        redirects: list[tuple[int, str]] = []
        seen = {(method, url)}
        current = url
        host = self._check_url(url)
        while True:
            h = self._send(method, current, host, hdrs, body, cap, follow_redirects, budget)
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
                h.put_back()
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
        """``url``'s scheme, host and port, or FetchError if it is not one we fetch.

        They depend only on what comes before the path, which a crawl's URLs
        share: that part is parsed once (``urlsplit`` costs more than the rest
        of a request's Python work here) and remembered."""
        m = _ORIGIN.match(url)
        if m is None or (m.end() < len(url) and url[m.end()] not in "/?#"):
            return self._split_url(url)
        origin = m.group()
        known = self._origins.get(origin)
        if known is None:
            try:
                known = self._split_url(origin)
            except FetchError:
                return self._split_url(url)  # the same error, naming the whole URL
            if len(self._origins) >= _MAX_ORIGINS:
                self._origins.clear()
            self._origins[origin] = known
        return known

    def _split_url(self, url: str) -> tuple[str, str, int | None]:
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
        budget: TimeBudget,
    ) -> Exchange:
        """One hop: wait for a place at the host, run it; the handle holds the answer.

        The caller puts the handle back on its loop's free list."""
        proxy = self._proxy_for(url)
        allow = self.allow_address
        if proxy and allow is not None:
            check_proxied_target(url, allow)
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
            h = take_exchange(loop, self._options)
            try:
                h.set_request(method, url, hdrs, body, proxy)
                h.prepare(cap, follow, allow)
                code, message = h.run(self.read_timeout, budget)
            except BaseException:
                h.dirty = True  # whatever state libcurl kept, the next user starts over
                h.put_back()
                raise
        finally:
            gate.release()
        if code and not (code == pycurl.E_WRITE_ERROR and (h.truncated or h.discarding)):
            err = describe_error(h, url, proxy, code, message, self.connect_timeout)
            h.put_back()
            raise err
        return h

    def _prune_gates(self) -> None:
        idle = [k for k, g in self._gates.items() if g.counter == self.per_host and not g.waiting()]
        for k in idle:
            del self._gates[k]

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
