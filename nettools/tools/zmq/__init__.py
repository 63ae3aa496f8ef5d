"""ZeroMQ services: ``proxy`` (queue, forwarder, streamer) and ``bridges``
(TCP line clients and websocket clients to PUB/SUB/PUSH sockets)."""
