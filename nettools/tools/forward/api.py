"""Toxiproxy's HTTP API over a ``Forwarder``, so Toxiproxy's clients work unchanged.

Served by nettools' own WSGI server (``ApiServer``), with Toxiproxy's routes,
JSON shapes and status codes:

* ``GET /proxies`` -> ``{name: proxy}``; ``POST /proxies`` (``name``,
  ``upstream``, ``listen``, ``enabled``) -> 201 and the proxy, 409 if the
  name is taken, 400 if a field is missing or wrong;
* ``GET|POST|PATCH|DELETE /proxies/{name}``: show, update (``listen``,
  ``upstream``, ``enabled``; a new address restarts the proxy), delete (204);
* ``GET|POST /proxies/{name}/toxics``, ``GET|POST|PATCH|DELETE
  /proxies/{name}/toxics/{toxic}``: toxics (a new one -> 200, as Toxiproxy);
* ``POST /populate`` (a list of proxies: created, replaced if their
  addresses differ, left alone if not) -> 201 ``{"proxies": [...]}``;
* ``POST /reset``: every proxy enabled, every toxic removed (204);
  ``GET /version``.

Errors are ``{"error": "...", "status": N}``: 404 for an unknown proxy or
toxic, 409 for a name taken, 400 for a bad body or attribute.  As Toxiproxy
does, a request whose User-Agent is a browser's (``Mozilla/``) gets 403, so a
web page cannot drive the API from a user's browser.  Proxies made here use
the forwarder's ``options``; UDP rules are not Toxiproxy proxies and do not
show.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import unquote

from ..._version import __version__
from ...web.wsgi import WSGIServer
from ..plumbing.service import ServiceError, listen_on, parse_address
from .errors import ForwardError
from .forwarder import Forwarder
from .proxy import Proxy
from .rules import RuleSpec, resolve_rules

__all__ = ["ToxiproxyApi", "ApiServer", "TOXIPROXY_VERSION", "DEFAULT_API_ADDRESS"]

log = logging.getLogger("nettools.forward.api")

#: The Toxiproxy release whose API this follows.
TOXIPROXY_VERSION = "2.12.0"
DEFAULT_API_ADDRESS = "127.0.0.1:8474"
#: Largest request body taken (a populate of a few thousand proxies).
MAX_BODY = 1 << 20

_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            409: "Conflict", 413: "Payload Too Large", 500: "Internal Server Error"}


class ToxiproxyApi:
    """The WSGI application: Toxiproxy's API on ``forwarder``."""

    def __init__(self, forwarder: Forwarder) -> None:
        self.fwd = forwarder

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if environ.get("HTTP_USER_AGENT", "").startswith("Mozilla/"):
            return _reply(start_response, 403, "User agent not allowed\n")
        parts = [unquote(p) for p in environ.get("PATH_INFO", "").strip("/").split("/")]
        try:
            route = self._route(method, parts)
            if route is None:
                return _reply(start_response, 404, "404 page not found\n")
            handler, args = route
            if handler is None:
                return _reply(start_response, 405, "")
            body = _read_json(environ) if method in ("POST", "PATCH") else None
            status, result = handler(body, *args)
        except ForwardError as exc:
            status, result = exc.status, {"error": str(exc), "status": exc.status}
        except ServiceError as exc:
            status, result = 500, {"error": str(exc), "status": 500}
        return _reply(start_response, status, result)

    def _route(self, method: str, parts: list[str]) -> tuple[Any, tuple] | None:
        """(handler or None if the method is not allowed, path arguments)."""
        n = len(parts)
        table: dict[str, Any]
        if parts == ["proxies"]:
            table, args = {"GET": self.list_proxies, "POST": self.create_proxy}, ()
        elif n == 2 and parts[0] == "proxies":
            table, args = {"GET": self.show_proxy, "POST": self.update_proxy,
                           "PATCH": self.update_proxy, "DELETE": self.delete_proxy}, (parts[1],)
        elif n == 3 and parts[0] == "proxies" and parts[2] == "toxics":
            table, args = {"GET": self.list_toxics, "POST": self.create_toxic}, (parts[1],)
        elif n == 4 and parts[0] == "proxies" and parts[2] == "toxics":
            table, args = {"GET": self.show_toxic, "POST": self.update_toxic,
                           "PATCH": self.update_toxic, "DELETE": self.delete_toxic}, (
                parts[1], parts[3])
        elif parts == ["populate"]:
            table, args = {"POST": self.populate}, ()
        elif parts == ["reset"]:
            table, args = {"POST": self.reset}, ()
        elif parts == ["version"]:
            table, args = {"GET": self.version}, ()
        else:
            return None
        return table.get(method), args

    # -------------------------------------------------------------- proxies

    def _proxy(self, name: str) -> Proxy:
        proxy = self.fwd[name]
        if not isinstance(proxy, Proxy):
            raise ForwardError("proxy not found", 404)
        return proxy

    def _proxies(self) -> list[Proxy]:
        return [p for p in self.fwd.proxies.values() if isinstance(p, Proxy)]

    def list_proxies(self, body: Any) -> tuple[int, Any]:
        return 200, {p.name: p.to_json() for p in self._proxies()}

    def show_proxy(self, body: Any, name: str) -> tuple[int, Any]:
        return 200, self._proxy(name).to_json()

    def create_proxy(self, body: Any) -> tuple[int, Any]:
        fields = _proxy_fields(body)
        if fields["name"] in self.fwd:
            raise ForwardError("proxy already exists", 409)
        return 201, self._create(fields).to_json()

    def _create(self, fields: Mapping[str, Any], toxics: Iterable[Any] = ()) -> Proxy:
        spec = _spec(fields["name"], fields["listen"], fields["upstream"], self.fwd)
        (resolved,) = _resolve(spec)
        proxy = self.fwd.add(resolved.open(), start=False, name=fields["name"])
        assert isinstance(proxy, Proxy)
        proxy.set_toxics(list(toxics))
        if fields["enabled"]:
            proxy.start()
        else:
            proxy.disable()  # created down: it listens once enabled
        return proxy

    def update_proxy(self, body: Any, name: str) -> tuple[int, Any]:
        proxy = self._proxy(name)
        if not isinstance(body, Mapping):
            raise ForwardError("bad request body: expected a JSON object")
        listen = body.get("listen", proxy.listen)
        upstream = body.get("upstream", proxy.upstream)
        enabled = body.get("enabled", proxy.enabled)
        if not isinstance(enabled, bool):
            raise ForwardError("bad request body: enabled must be true or false")
        if listen != proxy.listen or upstream != proxy.upstream:
            fields = _proxy_fields({"name": name, "listen": listen, "upstream": upstream,
                                    "enabled": enabled})
            _spec(name, fields["listen"], fields["upstream"], self.fwd)  # 400 before any change
            toxics = proxy.toxics
            self.fwd.remove(name)
            proxy = self._create(fields, toxics)
        elif enabled and not proxy.enabled:
            proxy.start()
        elif not enabled and proxy.enabled:
            proxy.disable()
        return 200, proxy.to_json()

    def delete_proxy(self, body: Any, name: str) -> tuple[int, Any]:
        self._proxy(name)
        self.fwd.remove(name)
        return 204, None

    def populate(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, list):
            raise ForwardError("bad request body: expected a JSON array of proxies")
        wanted = []
        for i, item in enumerate(body, 1):
            fields = _proxy_fields(item, where=f" at proxy {i}")
            if any(f["name"] == fields["name"] for f in wanted):
                raise ForwardError(f"duplicate proxy name {fields['name']!r}")
            if fields["enabled"]:
                _spec(fields["name"], fields["listen"], fields["upstream"], self.fwd)
            wanted.append(fields)
        done: list[Proxy] = []
        try:
            for fields in wanted:
                name = fields["name"]
                old = self.fwd.proxies.get(name)
                if isinstance(old, Proxy) and (old.upstream == fields["upstream"]
                                               and fields["listen"] in (old.listen, None)):
                    if fields["enabled"] and not old.enabled:
                        old.start()
                    elif not fields["enabled"] and old.enabled:
                        old.disable()
                    done.append(old)
                    continue
                if old is not None:
                    self.fwd.remove(name)
                done.append(self._create(fields))
        except (ForwardError, ServiceError) as exc:
            status = exc.status if isinstance(exc, ForwardError) else 500
            return status, {"error": str(exc), "status": status,
                            "proxies": [p.to_json() for p in done]}
        return 201, {"proxies": [p.to_json() for p in done]}

    def reset(self, body: Any) -> tuple[int, Any]:
        for proxy in self._proxies():
            proxy.start()
            proxy.set_toxics([])
        return 204, None

    def version(self, body: Any) -> tuple[int, Any]:
        return 200, {"version": f"{TOXIPROXY_VERSION}+nettools.{__version__}"}

    # --------------------------------------------------------------- toxics

    def list_toxics(self, body: Any, name: str) -> tuple[int, Any]:
        return 200, [t.to_json() for t in self._proxy(name).toxics]

    def create_toxic(self, body: Any, name: str) -> tuple[int, Any]:
        return 200, self._proxy(name).add_toxic(body).to_json()

    def show_toxic(self, body: Any, name: str, toxic: str) -> tuple[int, Any]:
        found = self._proxy(name).toxic(toxic)
        if found is None:
            raise ForwardError("toxic not found", 404)
        return 200, found.to_json()

    def update_toxic(self, body: Any, name: str, toxic: str) -> tuple[int, Any]:
        return 200, self._proxy(name).update_toxic(toxic, body).to_json()

    def delete_toxic(self, body: Any, name: str, toxic: str) -> tuple[int, Any]:
        self._proxy(name).remove_toxic(toxic)
        return 204, None


def _read_json(environ: dict) -> Any:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY:
        raise ForwardError("bad request body: too large", 413)
    data = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read(MAX_BODY)
    try:
        return json.loads(data or b"null")
    except ValueError as exc:
        raise ForwardError(f"bad request body: {exc}") from None


def _proxy_fields(body: Any, where: str = "") -> dict[str, Any]:
    """``name``, ``listen``, ``upstream``, ``enabled`` of a proxy in a request."""
    if not isinstance(body, Mapping):
        raise ForwardError("bad request body: expected a JSON object")
    for field in ("name", "upstream"):
        value = body.get(field)
        if not isinstance(value, str) or not value:
            raise ForwardError(f"missing required field: {field}{where}")
    listen = body.get("listen") or None
    enabled = body.get("enabled", True)
    if enabled is None:
        enabled = True
    if not isinstance(enabled, bool) or not isinstance(listen, str | None):
        raise ForwardError(f"bad request body: wrong type of listen or enabled{where}")
    return {"name": body["name"], "listen": listen, "upstream": body["upstream"],
            "enabled": enabled}


def _spec(name: str, listen: str | None, upstream: str, fwd: Forwarder) -> RuleSpec:
    """The rule of a proxy; ``ForwardError`` 400 naming a bad address."""
    try:
        listen_addr = parse_address(listen or "127.0.0.1:0")
        targets = tuple(parse_address(t) for t in upstream.split(","))
    except ValueError as exc:
        raise ForwardError(f"bad request body: {exc}") from None
    if listen_addr.path is not None or any(t.path is not None or not t.port for t in targets):
        raise ForwardError("bad request body: listen and upstream take host:port")
    text = f"{name}={listen_addr}:{upstream}"
    return RuleSpec(text, listen_addr, targets, name=name, options=fwd.options)


def _resolve(spec: RuleSpec) -> list[Any]:
    try:
        return resolve_rules([spec])
    except ValueError as exc:
        raise ForwardError(f"bad request body: {exc}") from None


def _reply(start_response: Callable, status: int, result: Any) -> list[bytes]:
    if status == 204:
        start_response("204 No Content", [])
        return []
    if isinstance(result, str):
        body, kind = result.encode(), "text/plain; charset=utf-8"
    else:
        body, kind = (json.dumps(result) + "\n").encode(), "application/json"
    start_response(f"{status} {_REASONS.get(status, '')}".strip(),
                   [("Content-Type", kind), ("Content-Length", str(len(body)))])
    return [body]


class ApiServer:
    """Toxiproxy's API for ``forwarder`` on ``address`` (default 127.0.0.1:8474),
    served by nettools' WSGI server.  ``start()``, ``address``, ``stop()``."""

    def __init__(self, forwarder: Forwarder, address: str | Any = DEFAULT_API_ADDRESS) -> None:
        sock = address if hasattr(address, "accept") else listen_on(
            parse_address(address) if isinstance(address, str) else address)
        self.app = ToxiproxyApi(forwarder)
        self.server = WSGIServer(sock, self.app, log=log, max_body_size=MAX_BODY,
                                 name="forward-api")

    @property
    def socket(self) -> Any:
        return self.server.socket

    @property
    def address(self) -> Any:
        return self.server.address

    def start(self) -> ApiServer:
        self.server.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self.server.stop(timeout)
