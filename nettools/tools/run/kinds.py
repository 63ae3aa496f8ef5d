"""Every type of service a run file may declare, by the name its ``type`` gives."""

from __future__ import annotations

from .options import Kind
from .services_http import FEEDS, SERVE, STATIC, WSCHAT
from .services_tcp import CHAT, ECHO, FORWARD
from .services_zmq import ZMQ_PROXY, ZMQ_TCP, ZMQ_WS

__all__ = ["KINDS"]

KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (ECHO, CHAT, WSCHAT, FORWARD, SERVE, STATIC, FEEDS, ZMQ_PROXY, ZMQ_TCP, ZMQ_WS)
}
