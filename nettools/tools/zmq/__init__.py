"""ZeroMQ services: ``proxy`` (queue, forwarder, streamer), ``tcpbridge`` (TCP line
clients) and ``wsbridge`` (websocket clients) to PUB/SUB/PUSH sockets, the two
bridges sharing ``fanout``.

Their endpoints and sockets come from green zmq (``nettools.green.zmq.endpoints``),
named here for the callers of these tools.
"""

from ...green.zmq.endpoints import Endpoint, EndpointError, SocketSet, parse_endpoint

__all__ = ["Endpoint", "EndpointError", "SocketSet", "parse_endpoint"]
