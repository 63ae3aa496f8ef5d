"""The chats: ``linechat`` (telnet/nc clients, one line a message), ``wschat``
(the browser chat over websockets), the ``rooms`` they share with the nickname
rules of ``names``, and the ``bus`` that joins chat servers over ZeroMQ (its
wire format in ``bus_wire``, its view of the other servers' users in
``bus_presence``)."""
