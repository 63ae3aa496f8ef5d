"""The chats: ``linechat`` (telnet/nc clients, one line a message), ``wschat``
(the browser chat over websockets), the ``rooms`` they share, and the ``bus``
that joins chat servers over ZeroMQ."""
