"""What the ZeroMQ proxy and bridges report besides every server's families.

Read when scraped: ``add_proxy_families`` and ``add_bridge_families`` are
sources of ``Stats.metric_sources``, over the counts the tools keep anyway.
"""

from __future__ import annotations

from typing import Any

__all__ = ["add_proxy_families", "add_bridge_families"]


def add_proxy_families(f: Any, stats: Any) -> None:
    """A proxy's messages and bytes per direction, captures, and whether it is paused."""
    for direction, flow in (("frontend_to_backend", stats.frontend_to_backend),
                            ("backend_to_frontend", stats.backend_to_frontend)):
        f.counter("nettools_zmq_proxy_messages_total", "Messages forwarded, per direction.",
                  flow.messages, direction=direction)
        f.counter("nettools_zmq_proxy_bytes_total",
                  "Bytes forwarded (every frame), per direction.", flow.bytes,
                  direction=direction)
    f.counter("nettools_zmq_proxy_captured_total", "Messages copied to the capture socket.",
              stats.captured)
    f.gauge("nettools_zmq_proxy_paused", "1 while paused by the control socket.",
            int(stats.paused))


def add_bridge_families(f: Any, stats: Any) -> None:
    """A bridge's messages each way and what its slow-client policy did."""
    f.counter("nettools_zmq_bridge_messages_total", "Messages, per direction.",
              stats.to_zmq, direction="to_zmq")
    f.counter("nettools_zmq_bridge_messages_total", "Messages, per direction.",
              stats.from_zmq, direction="from_zmq")
    f.counter("nettools_zmq_bridge_dropped_total",
              "Deliveries skipped because a client's queue was full.", stats.dropped)
    f.counter("nettools_zmq_bridge_slow_disconnects_total",
              "Clients disconnected for reading too slowly.", stats.slow_disconnects)
    f.counter("nettools_zmq_bridge_oversized_total",
              "Messages dropped for being over the size cap (--max-message).", stats.oversized)
