"""Chat servers sharing rooms over a ZeroMQ forwarder: the chat bus.

Every chat server (``nettools chat`` and ``nettools wschat`` alike) connects a
PUB socket to the forwarder's XSUB side and a SUB socket to its XPUB side
(``nettools zmq proxy --type forwarder``), publishes what happens to its own
users, and applies what the other servers publish: their messages, joins,
leaves and renames reach its local users, their messages go into its rooms'
history, and their users appear in its user lists.

The wire format is in ``bus_wire``, the bookkeeping of the other servers'
users (presence) in ``bus_presence``; this module is the bus itself: its
sockets, what it publishes, and the loops that receive and keep time.

Connected or not: a server hears its own messages back through the forwarder
(and ignores them otherwise), so the first one to come back proves the whole
path; until then it asks again with growing pauses.  A bus that is down at
start or goes away later costs one warning in the log: the server keeps
serving its own users, ZeroMQ keeps reconnecting, and the server catches up
(both ways) when the bus is back.

Order: messages from one server reach every other server in the order it sent
them (one connection each way through the forwarder).  Between servers, each
server shows the order in which messages reached it; a server shows its own
users' messages at once, without waiting for them to come back.

Nicknames are unique across the servers a server knows of: a nickname in use
on any of them is refused.  Two servers can still accept the same nickname at
the same instant, before either has heard of the other's user (or while the
bus is cut).  When they do hear, the later claim (then the greater server id)
loses: its server renames that user (``nick_2``...) and tells the room.

Limits: a bus message (its two frames) over ``max_message`` bytes is neither
sent nor accepted: a larger one that arrives is dropped and counted
(``oversized``), and the bus stays connected (see
``nettools.tools.plumbing.sizecap``: libzmq's own cap would cut it off for
good).  Malformed messages (wrong frames, JSON, fields) are ignored and
counted.  Both are logged at most every ten seconds
(``nettools.tools.plumbing.ratelog``).  Anyone who can
publish on the forwarder can speak for any user: run the bus on a trusted
network.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from ...green import zmq
from ...green.zmq.endpoints import Endpoint, open_socket, parse_endpoint
from ...kernel.greenthread import GreenThread, kill, sleep, spawn
from ..plumbing.ratelog import RateLimitedWarning
from ..plumbing.sizecap import SizeCap
from . import bus_wire as wire
from .bus_presence import BusListener, Peer, Presence, Roster
from .bus_wire import PROTOCOL_VERSION, BadMessage

__all__ = ["ChatBus", "BusStats", "BusListener", "parse_bus", "PROTOCOL_VERSION"]

log = logging.getLogger("nettools.chatbus")

#: First pause between two "anyone there?" messages while not connected.
FIRST_RETRY = 0.05
#: Bus messages handled before the receiver lets others run.
BATCH = 64


@dataclass
class BusStats:
    """What a server's bus counts."""

    server: str = ""
    connected: bool = False
    sent: int = 0
    received: int = 0  # from other servers
    malformed: int = 0  # ignored: bad frames, JSON or fields
    oversized: int = 0  # received over the size cap: dropped
    too_big: int = 0  # local messages not sent: over the size cap
    servers: int = 0  # other servers known now
    remote_users: int = 0


def parse_bus(text: str) -> tuple[Endpoint, Endpoint]:
    """``PUB_EP,SUB_EP`` -> the endpoints to publish into and to subscribe from.

    Each is a ZeroMQ URL that is connected to (``connect:`` may be written),
    or bound with ``bind:URL``.  Raises ``ValueError`` when malformed.
    """
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise ValueError(
            f"invalid bus {text!r}: give the forwarder's two endpoints, publish side first, "
            "e.g. tcp://host:5555,tcp://host:5556"
        )
    eps = []
    for part in parts:
        ep = parse_endpoint(part)  # EndpointError is a ValueError
        eps.append(Endpoint(ep.url, bind=part.startswith("bind:")))
    return eps[0], eps[1]


class ChatBus:
    """One chat server's connection to the bus.

    ``pub``/``sub``: the forwarder's publish (XSUB) and subscribe (XPUB)
    endpoints, as ``Endpoint`` or URL (connected to).  ``channel``: the topic
    prefix.  ``heartbeat``: how often this server tells the others it is
    alive; ``expiry``: how long another server may stay silent before its
    users are dropped (default three heartbeats).  ``max_message``: size cap
    of a bus message in bytes.  ``server_id``: this server's id (default:
    random).  A chat server calls ``attach`` with itself, then ``start``.
    """

    def __init__(
        self,
        pub: Endpoint | str,
        sub: Endpoint | str,
        *,
        channel: str = "chat",
        heartbeat: float = 5.0,
        expiry: float | None = None,
        max_message: int = 65536,
        hwm: int = 10_000,
        server_id: str | None = None,
    ) -> None:
        if heartbeat <= 0:
            raise ValueError("the bus heartbeat must be above 0")
        expiry = 3 * heartbeat if expiry is None else expiry
        if expiry <= heartbeat:
            raise ValueError("the bus expiry must be longer than its heartbeat")
        if max_message < 1024:
            raise ValueError("the bus message cap must be at least 1K")
        if not channel or "/" in channel:
            raise ValueError(f"invalid bus channel {channel!r}: a non-empty name without '/'")
        self.pub_ep = pub if isinstance(pub, Endpoint) else Endpoint(pub, bind=False)
        self.sub_ep = sub if isinstance(sub, Endpoint) else Endpoint(sub, bind=False)
        self.channel = channel
        self.heartbeat = heartbeat
        self.expiry = expiry
        self.max_message = max_message
        self.hwm = hwm
        self.id = server_id or secrets.token_hex(6)
        if len(self.id) > wire.ID_MAX:
            raise ValueError(f"a bus server id is at most {wire.ID_MAX} characters")
        self.stats = BusStats(server=self.id)
        self._prefix = (channel + "/").encode()
        self._local = Roster()
        self.presence = Presence(self.id, self._local)
        self._ctx: Any = None
        self._pub: Any = None
        self._sub: Any = None
        self._threads: list[GreenThread] = []
        self._snap_seq = 0
        self._snapshot_due = False
        self._last_echo = -1e9
        self._started = 0.0
        self._warned = False
        self._cap = SizeCap(max_message, self.stats, log, "chat bus")
        self._malformed = RateLimitedWarning(
            log, "chat bus: ignored {n} malformed message(s) ({total} in all); latest: {detail}"
        )

    # ------------------------------------------------------------ life

    def attach(self, listener: BusListener) -> None:
        self.presence.listener = listener

    def start(self) -> ChatBus:
        """Open the sockets and start publishing and receiving.

        Raises ``EndpointError`` (a ``ValueError``) for an endpoint that cannot
        be right and ``OSError`` for one that cannot be bound; an unreachable
        forwarder is no error (see the module's notes).
        """
        if self.presence.listener is None:
            raise RuntimeError("attach a chat server to the bus before starting it")
        self._ctx = zmq.Context()
        try:
            self._pub, self.pub_url = open_socket(
                self._ctx, zmq.PUB, self.pub_ep, hwm=self.hwm, linger=1.0
            )
            # No ZMQ_MAXMSGSIZE: the cap is kept by self._cap (see sizecap).
            self._sub, self.sub_url = open_socket(
                self._ctx, zmq.SUB, self.sub_ep, hwm=self.hwm, linger=0
            )
            self._sub.setsockopt(zmq.SUBSCRIBE, self._prefix)
        except BaseException:
            self._ctx.destroy(0)
            raise
        self._started = time.monotonic()
        log.info("chat bus: server %s publishing to %s, subscribed to %s",
                 self.id, self.pub_url, self.sub_url)
        self._threads = [spawn(self._receive_loop), spawn(self._tick_loop)]
        return self

    def stop(self) -> None:
        """Tell the others this server's users are gone, then close the sockets."""
        for gt in self._threads:
            kill(gt)
        self._threads = []
        if self._ctx is None:
            return
        self._publish(b"", "bye")
        self._sub.close(0)
        self._pub.close()  # lingers up to a second so the bye gets out
        self._ctx.term()
        self._ctx = None

    @property
    def connected(self) -> bool:
        """Whether this server's own messages came back lately."""
        return time.monotonic() - self._last_echo <= self.expiry

    # ------------------------------------------------------------ what the chat asks

    def nick_taken(self, nick: str) -> bool:
        """Whether another server has a user called ``nick`` (casefolded)."""
        return self.presence.nick_taken(nick)

    def nicks_in(self, room: str) -> list[str]:
        """The users other servers have in ``room``."""
        return self.presence.nicks_in(room)

    def count_in(self, room: str) -> int:
        return self.presence.count_in(room)

    # ------------------------------------------------------------ what the chat tells

    def said(self, room: str, nick: str, text: str, action: bool = False) -> None:
        self._publish(room, "say", room=room, nick=nick, text=text, action=action)

    def joined(self, room: str, nick: str, since: float) -> None:
        self._local.add(nick, room, since)
        self._publish(room, "join", room=room, nick=nick, since=since)

    def left(self, room: str, nick: str, reason: str = "", to: str | None = None) -> None:
        self._local.discard(nick.casefold())
        extra = {"to": to} if to else {}
        self._publish(room, "leave", room=room, nick=nick, reason=reason, **extra)

    def renamed(self, room: str, old: str, new: str, since: float) -> None:
        self._local.discard(old.casefold())
        self._local.add(new, room, since)
        self._publish(room, "nick", room=room, nick=old, new=new, since=since)

    # ------------------------------------------------------------ sending

    def _publish(self, topic_room: str | bytes, kind: str, /, **fields: Any) -> bool:
        """Send one message; ``topic_room``: its room, or ``b""`` for a server's own news."""
        if self._pub is None or self._pub.closed:
            return False
        head = wire.topic(self._prefix, topic_room)
        data = wire.encode(self.id, kind, fields)
        if len(head) + len(data) > self.max_message:
            self.stats.too_big += 1
            log.warning("chat bus: a %s message of %d bytes is over the cap (%d); not sent",
                        kind, len(data), self.max_message)
            return False
        try:
            # A PUB never waits: with nobody subscribed, or a full queue, it drops.
            self._pub.send_multipart([head, data], zmq.NOBLOCK)
        except zmq.Again:
            return False
        except zmq.ZMQError as exc:
            log.debug("chat bus: cannot publish: %s", exc)
            return False
        self.stats.sent += 1
        return True

    def _want_snapshot(self) -> None:
        """Publish this server's users soon, once for all requests that came together."""
        if not self._snapshot_due:
            self._snapshot_due = True
            self._threads.append(spawn(self._send_snapshot))

    def _send_snapshot(self) -> None:
        self._snapshot_due = False
        self._threads = [gt for gt in self._threads if not gt.dead]
        self._snap_seq += 1
        parts = wire.presence_parts(self._local.users.values(), self.max_message)
        # Without a wait in between, so no join or leave slips between the parts.
        for i, part in enumerate(parts):
            self._publish(b"", "presence", snap=self._snap_seq, part=i,
                          last=i == len(parts) - 1, users=part)

    def _tick_loop(self) -> None:
        """Heartbeats, expiry of silent servers, and asking around while unconnected."""
        pause = FIRST_RETRY
        was_connected = False
        while True:
            now = time.monotonic()
            connected = now - self._last_echo <= self.expiry
            if was_connected and not connected:
                log.warning("chat bus: lost (nothing came back for %gs); serving local users "
                            "only until it is back", self.expiry)
                self._warned = True
            elif not connected and not self._warned and now - self._started > self.expiry:
                log.warning("chat bus: cannot reach the forwarder (%s, %s) for %gs; serving "
                            "local users only until it answers", self.pub_url, self.sub_url,
                            self.expiry)
                self._warned = True
            was_connected = self.stats.connected = connected
            self._publish(b"", "alive", users=len(self._local.users),
                          digest=self._local.digest, query=not connected)
            self._expire(now)
            if connected:
                pause = FIRST_RETRY
                sleep(self.heartbeat)
            else:
                sleep(pause)
                pause = min(2 * pause, self.heartbeat)

    def _expire(self, now: float) -> None:
        self.presence.expire(now, self.expiry)
        self._count_presence()

    def _count_presence(self) -> None:
        self.stats.servers = len(self.presence.peers)
        self.stats.remote_users = self.presence.remote_users

    # ------------------------------------------------------------ receiving

    def _receive_loop(self) -> None:
        recv, sub = self._cap.recv, self._sub
        n = 0
        while True:
            frames = recv(sub)
            try:
                self._handle(frames)
            except BadMessage as exc:
                self.stats.malformed += 1
                self._malformed(str(exc))
            except Exception:
                # A bug in handling one message must not cut the server off the bus.
                log.exception("chat bus: error handling a message")
            self._count_presence()
            n += 1
            if n % BATCH == 0:
                sleep(0)  # let the clients' writers (and everyone else) run

    def _handle(self, frames: list[bytes]) -> None:
        msg = wire.decode(frames, self._prefix)
        now = time.monotonic()
        if msg.server == self.id:
            # Our own message made the round trip: the whole path works.
            if now - self._last_echo > self.expiry:
                log.info("chat bus: connected (server %s)", self.id)
                self._warned = False
            self._last_echo = now
            self.stats.connected = True
            return
        peer = self.presence.heard_from(msg.server, msg.kind, now)
        if peer is None:
            return
        self.stats.received += 1
        getattr(self, "_on_" + msg.kind)(peer, msg.body, msg.ts)

    def _on_say(self, peer: Peer, msg: dict, ts: float) -> None:
        room, nick, text, action = wire.say_fields(msg)
        self.presence.listener.bus_said(room, nick, text, ts, action)

    def _on_join(self, peer: Peer, msg: dict, ts: float) -> None:
        room, nick = wire.name_field(msg, "room"), wire.name_field(msg, "nick")
        self.presence.joined(peer, nick, room, wire.number_field(msg, "since"), ts)

    def _on_leave(self, peer: Peer, msg: dict, ts: float) -> None:
        nick, reason, to = wire.leave_fields(msg)
        self.presence.left(peer, nick, reason, to, ts)

    def _on_nick(self, peer: Peer, msg: dict, ts: float) -> None:
        room, old, new = (wire.name_field(msg, k) for k in ("room", "nick", "new"))
        since = wire.number_field(msg, "since")
        self.presence.renamed(peer, room, old, new, since, ts)

    def _on_alive(self, peer: Peer, msg: dict, ts: float) -> None:
        users, digest, query = wire.alive_fields(msg)
        if query:
            self._want_snapshot()
        roster = peer.roster
        if (users, digest) != (len(roster.users), roster.digest):
            # We missed something of theirs: ask, but not more than once a heartbeat.
            now = time.monotonic()
            if now - peer.queried >= self.heartbeat:
                peer.queried = now
                self._publish(b"", "query", to=peer.id)

    def _on_query(self, peer: Peer, msg: dict, ts: float) -> None:
        if msg.get("to") == self.id:
            self._want_snapshot()

    def _on_presence(self, peer: Peer, msg: dict, ts: float) -> None:
        snap, part, last, entries = wire.presence_fields(msg)
        self.presence.snapshot_part(peer, snap, part, last, entries, ts)

    def _on_bye(self, peer: Peer, msg: dict, ts: float) -> None:
        log.info("chat bus: server %s stopped", peer.id)
        self.presence.drop(peer, "server stopped")
