"""What a chat server reports besides every server's families: users, rooms,
messages, what the slow-client and rate limits did, and its bus.

Read when scraped (``add_chat_families`` is a source of ``Stats.metric_sources``);
the counters are the ``ChatStats`` the chat keeps anyway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .rooms import ChatRooms

__all__ = ["add_chat_families", "END_REASONS"]

#: Why a chat client's connection ended, as every server counts it (the rest: ``client``).
END_REASONS = {"idle": "idle", "line too long": "limit", "flooding": "limit",
               "connection lost": "error"}  # fmt: skip

#: ChatStats counters -> (family, help); a plain Stats lacks some of them.
_COUNTERS = (
    ("messages", "nettools_chat_messages_total", "Messages said in the rooms."),
    ("dropped", "nettools_chat_dropped_total",
     "Deliveries skipped because a client's queue was full."),
    ("slow_disconnects", "nettools_chat_slow_disconnects_total",
     "Clients disconnected for reading too slowly."),
    ("rate_limited", "nettools_chat_rate_limited_total",
     "Messages over a client's rate limit."),
    ("flood_disconnects", "nettools_chat_flood_disconnects_total",
     "Clients disconnected for flooding."),
    ("refused", "nettools_chat_refused_total", "Requests answered with an error."),
)  # fmt: skip


def add_chat_families(f: Any, chat: ChatRooms) -> None:
    """The chat's families (``f`` is a ``plumbing.metrics.Families``)."""
    stats = chat.stats
    f.gauge("nettools_chat_users", "Users with a nickname on this server.", chat.user_count)
    f.gauge("nettools_chat_rooms", "Rooms with someone in them on this server.",
            chat.occupied_rooms)
    for attr, name, doc in _COUNTERS:
        if hasattr(stats, attr):
            f.counter(name, doc, getattr(stats, attr))
    bus = chat.bus
    if bus is not None:
        b = bus.stats
        f.gauge("nettools_chat_bus_connected", "1 while the bus is connected.", int(b.connected))
        f.counter("nettools_chat_bus_messages_total", "Bus messages, by direction.",
                  b.sent, direction="sent")
        f.counter("nettools_chat_bus_messages_total", "Bus messages, by direction.",
                  b.received, direction="received")
        f.counter("nettools_chat_bus_malformed_total", "Bus messages ignored as malformed.",
                  b.malformed)
        f.counter("nettools_chat_bus_too_big_total", "Local messages too big for the bus.",
                  b.too_big)
        f.counter("nettools_chat_bus_oversized_total",
                  "Bus messages dropped for being over the size cap.", b.oversized)
        f.gauge("nettools_chat_bus_servers", "Other chat servers heard from.", b.servers)
        f.gauge("nettools_chat_bus_remote_users", "Users on the other servers.", b.remote_users)
