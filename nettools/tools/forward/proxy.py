"""``Proxy``: one TCP rule of a ``Forwarder`` at run time, and each connection's life.

A proxy owns its listening socket (a ``net.Server`` accepting on it), its
targets (``TargetPool``), its toxics, and the set of its live connections.  It
can be disabled (stop listening, drop every connection: Toxiproxy's "down"),
enabled again on the same address, drained (stop listening, let connections
finish) and have toxics added, changed and removed while connections run.

A connection is admitted (``--allow``/``--deny``, on the real client's
address when a PROXY header named one), gets its TLS from the client if the
forwarder terminates TLS, connects to a target (failing over between them),
sends the target a PROXY header if asked, speaks TLS to it if asked, and is
relayed -- its directions through the toxics that apply to them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from greenlet import getcurrent

from ...green import socket
from ...green.socket import family_of
from ...kernel.greenthread import GreenletExit, kill
from ...kernel.sync import Event
from ...kernel.timeout import Timeout
from ...net import ACCEPT_INHERITS_OPTIONS, Server, accept_tls, format_address, parse_address
from ..plumbing.service import listen_on
from .errors import ForwardError, describe
from .faults import Faults, toxic_pump
from .proxyproto import ProxyHeaderError, header, read_header
from .relay import Connection, peer_name, relay
from .rules import Rule, admitted, listen_key
from .targets import TargetPool, Unreachable
from .toxics import STREAMS, Toxic, toxic_from_json

if TYPE_CHECKING:
    from .forwarder import Forwarder

__all__ = ["Proxy"]


class Proxy:
    """One TCP rule at run time (see the module's docstring)."""

    def __init__(self, fwd: Forwarder, rule: Rule, name: str) -> None:
        self.fwd = fwd
        self.rule = rule
        self.name = name
        self.options = rule.options
        self.listener: Any = rule.listener
        #: Where it listens: the address it got (port 0 resolved), kept for
        #: enabling it again.
        self.listen_address: Any = rule.listener.getsockname()
        self.targets = TargetPool(rule.targets, self.options.balance, self.options.fail_timeout,
                                  self.options.health_check, name)
        self.toxics: list[Toxic] = list(rule.toxics)
        #: Live connections -> the greenthread handling each.
        self.connections: dict[Connection, Any] = {}
        self.server: Server | None = None
        self.enabled = False
        self._idle = Event()
        self._idle.send(None)

    # ----------------------------------------------------------- describing

    @property
    def address(self) -> Any:
        """The listening socket address."""
        return self.listen_address

    @property
    def listen(self) -> str:
        return format_address(self.listen_address)

    @property
    def upstream(self) -> str:
        return ",".join(t.name for t in self.targets.targets)

    @property
    def route(self) -> str:
        return f"{self.listen} -> {self.upstream}"

    def to_json(self) -> dict[str, Any]:
        """Toxiproxy's JSON shape of a proxy, toxics included."""
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [t.to_json() for t in self.toxics],
        }

    # ------------------------------------------------------------ life cycle

    def start(self) -> Proxy:
        """Listen (again, if disabled) and accept; ``ServiceError`` if it cannot listen."""
        if self.enabled:
            return self
        if self.listener is None:
            self.listener = listen_on(parse_address(self.listen), backlog=1024)
            self.listen_address = self.listener.getsockname()
        if ACCEPT_INHERITS_OPTIONS:
            # Accepted sockets inherit the listener's keepalive settings.
            self.fwd.set_keepalive(self.listener)
        #: The rule as each connection's log line names it.
        self.conn_name = self.route
        self.server = Server(self.listener, self._handle, pool=self.fwd.pool, name="forward")
        self.server.start()
        self.targets.start()
        self.enabled = True
        return self

    def disable(self) -> None:
        """Stop listening and drop every connection at once (Toxiproxy's "down")."""
        self.stop(0, why="proxy disabled")

    def stop(self, timeout: float | None = None, why: str = "forwarder stopping") -> None:
        """Stop listening, give open connections up to ``timeout`` seconds to
        end, then close what is left."""
        if self.server is not None:
            self.server.close()  # closes the listener too
            self.fwd.stopped_servers.append(self.server)
            self.server = None
        elif self.listener is not None:
            self.listener.close()
        self.listener = None
        self.enabled = False
        self.targets.stop()
        if self.connections and (timeout is None or timeout > 0):
            with Timeout(timeout, False):
                self._idle.wait()
        for c, handler in list(self.connections.items()):
            c.fail("stopped", why)
            kill(handler)
        with Timeout(1.0, False):
            self._idle.wait()

    # ---------------------------------------------------------------- toxics

    def add_toxic(self, data: Any) -> Toxic:
        """Add a toxic from Toxiproxy's JSON (or a ``Toxic``); it applies to
        the live connections at once.  ``ForwardError`` 400/409."""
        toxic = data if isinstance(data, Toxic) else toxic_from_json(data)
        if self.toxic(toxic.name) is not None:
            raise ForwardError("toxic already exists", 409)
        self.toxics.append(toxic)
        self._apply(toxic.way)
        return toxic

    def toxic(self, name: str) -> Toxic | None:
        return next((t for t in self.toxics if t.name == name), None)

    def update_toxic(self, name: str, data: Any) -> Toxic:
        """Change a toxic's attributes or toxicity; ``ForwardError`` 404/400."""
        old = self._existing(name)
        new = old.updated(data)
        self.toxics[self.toxics.index(old)] = new
        self._apply(new.way)
        return new

    def remove_toxic(self, name: str) -> None:
        """``ForwardError`` 404 if there is no such toxic."""
        self.toxics.remove(self._existing(name))
        self._apply(0)
        self._apply(1)

    def set_toxics(self, toxics: Sequence[Toxic]) -> None:
        """Replace every toxic at once (``/reset`` passes none)."""
        self.toxics = list(toxics)
        self._apply(0)
        self._apply(1)

    def _existing(self, name: str) -> Toxic:
        toxic = self.toxic(name)
        if toxic is None:
            raise ForwardError("toxic not found", 404)
        return toxic

    def _apply(self, way: int) -> None:
        for c in list(self.connections):
            self._apply_to(c, way)

    def _apply_to(self, c: Connection, way: int) -> None:
        mine = [t for t in self.toxics if t.stream == STREAMS[way]]
        faults = c.faults[way]
        if faults is None:
            if not mine:
                return
            faults = c.faults[way] = Faults(c, way)
        faults.apply(mine)

    # -------------------------------------------------------- one connection

    def _handle(self, conn: socket.socket, addr: Any) -> None:
        fwd = self.fwd
        stats = fwd.stats
        family = family_of(conn)
        c = Connection(self.rule, self.conn_name, peer_addr=(addr, family))
        c.client = conn
        fwd.opened(c, self.name)
        server = self.server
        self.connections[c] = getcurrent()
        if self._idle.ready():
            self._idle.reset()
        try:
            if not ACCEPT_INHERITS_OPTIONS:
                fwd.set_keepalive(conn)
            peer, local = addr, None
            if self.options.accept_proxy:
                got = self._read_proxy_header(c)
                if got is False:
                    return
                if got is not None:
                    peer, local = got
                    c.peer = f"{peer_name(peer, family)} (via {c.peer})"
            if not admitted(peer, family, fwd.allow, fwd.deny):
                if hasattr(stats, "denied"):  # a ForwardStats
                    stats.denied += 1
                c.fail("denied", "client address not allowed")
                return
            if fwd.tls_context is not None and not self._accept_tls(c):
                return
            if not self._connect(c, peer, local):
                return
            if self.toxics:  # a new connection has no faults to bring in line
                for way in (0, 1):
                    self._apply_to(c, way)
            if fwd.idle_timeout is not None:
                fwd.watch_idle(c)
            relay(c, fwd.pipes if fwd.splice else None, toxic_pump)
        except GreenletExit:
            c.fail("stopped", "forwarder stopping")
            raise
        finally:
            del self.connections[c]
            if not self.connections:
                self._idle.send(None)
            for faults in c.faults:
                if faults is not None:
                    faults.detach()
            if c.timer is not None:
                c.timer.cancel()
            for sock in (c.upstream, c.client if c.client is not conn else None):
                if sock is not None:
                    try:
                        sock.close()
                    except OSError:
                        pass
            fwd.finished(c, server, conn)

    def _read_proxy_header(self, c: Connection) -> Any:
        """The real client and local addresses from the client's PROXY header;
        None if it names none; False (and the reason noted) if it is missing or bad."""
        try:
            return read_header(c.client, self.fwd.connect_timeout)
        except (ProxyHeaderError, OSError) as exc:
            why = str(exc) if isinstance(exc, ProxyHeaderError) else describe(exc)
            c.fail("proxy-protocol", f"no valid PROXY protocol header from client: {why}")
            return False
        finally:
            c.client.settimeout(None)

    def _accept_tls(self, c: Connection) -> bool:
        """TLS handshake with the client; False (and the reason noted) if it fails."""
        fwd = self.fwd
        try:
            c.client = accept_tls(c.client, fwd.tls_context, fwd.connect_timeout, fwd.handshakes)
        except (OSError, ValueError) as exc:
            c.fail("tls-error", f"TLS handshake with client failed: {describe(exc)}")
            return False
        c.client.settimeout(None)
        return True

    def _connect(self, c: Connection, peer: Any, local: Any) -> bool:
        """Connect to a target (failing over), send the PROXY header, then TLS;
        False (and the reason noted) if it fails."""
        fwd = self.fwd
        deadline = None if fwd.connect_timeout is None else time.monotonic() + fwd.connect_timeout
        try:
            sock, target = self.targets.connect(fwd.connect_timeout)
        except Unreachable as exc:
            c.fail("unreachable", str(exc))
            return False
        c.upstream, c.target = sock, target
        if family_of(sock) != socket.AF_UNIX:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            fwd.set_keepalive(sock)
        if self.options.send_proxy:
            if local is None:
                local = _sockname(c.client)
            try:
                sock.sendall(header(self.options.send_proxy, peer, local))
            except OSError as exc:
                c.fail("unreachable", f"{target.name}: {describe(exc)}")
                return False
        if fwd.target_tls_context is not None:
            try:
                tls = fwd.target_tls_context.wrap_socket(
                    sock, server_hostname=target.host, do_handshake_on_connect=False
                )
                c.upstream = tls
                if deadline is not None:
                    tls.settimeout(max(deadline - time.monotonic(), 0.001))
                tls.do_handshake()
            except (OSError, ValueError) as exc:
                c.fail("tls-error", f"TLS handshake with {target.name} failed: {describe(exc)}")
                return False
            tls.settimeout(None)
        return True


def _sockname(sock: Any) -> Any:
    try:
        return sock.getsockname()
    except OSError:
        return None


def default_name(rule: Rule) -> str:
    """The name of a rule given none: its listen address as written."""
    if rule.resolved is not None:
        return rule.resolved.key
    return listen_key(parse_address(format_address(rule.listener.getsockname())), rule.udp)
