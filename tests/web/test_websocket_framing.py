"""The websocket framing fast path (``nettools.web.websocket.framing``) against the
library's own protocol object: whatever mix of frames arrives, cut anywhere, the
handler gets the same messages in the same order, control frames are answered,
and every rule the library enforces (masking, reserved bits, sizes, fragments,
UTF-8, the close) still holds.

The unit tests feed byte streams to ``framing.receive`` with a real
``websockets`` protocol; the end-to-end ones send odd frames from a hand-made
client to ``nettools.web.wsgi`` and read the close code; sizes around each
header length go through the ``websockets`` client, which checks every frame.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers.wsclient import RawClient, T, frame
from websockets.protocol import OPEN, Protocol, Side
from websockets.sync.client import connect

import nettools
from nettools import Event, tpool
from nettools.web import websocket, wsgi
from nettools.web.websocket.framing import receive
from nettools.web.websocket.inbox import Inbox

pytestmark = pytest.mark.timeout(60)

LOCAL = "127.0.0.1"
TEXT, BINARY, CONT, PING, PONG, CLOSE = 0x1, 0x2, 0x0, 0x9, 0xA, 0x8


def server_side(max_size: int | None = 1 << 20) -> tuple[Protocol, Inbox]:
    return Protocol(Side.SERVER, state=OPEN, max_size=max_size), Inbox()


def feed(chunks: list[bytes], max_size: int | None = 1 << 20) -> tuple[list, Protocol, list]:
    """Feed ``chunks`` one by one; ``(messages, protocol, failures)``."""
    proto, inbox = server_side(max_size)
    failures = [why for chunk in chunks if (why := receive(proto, inbox, chunk)) is not None]
    return list(inbox.messages), proto, failures


# A payload that reads as frames if anyone takes its middle for a frame boundary.
DECOYS = frame(TEXT, b"decoy") * 7000
# A bit of everything, each kind of header length, a ping in the middle of a fragmented
# message, and frames the fast path takes on either side of those it leaves to the library.
STREAM = [
    (frame(TEXT, b"first"), "first"),
    (frame(BINARY, b"\x00\x01\x02"), b"\x00\x01\x02"),
    (frame(TEXT, "é".encode() * 100), "é" * 100),  # 16-bit length
    (frame(TEXT, b"frag", fin=False), None),
    (frame(PING, b"are you there"), None),
    (frame(CONT, b"ment", fin=False), None),
    (frame(CONT, b"ed", fin=True), "fragmented"),
    (frame(BINARY, DECOYS, mask=bytes(4)), DECOYS),  # 64-bit length; on the wire as it is
    (frame(PONG, b"unasked"), None),
    (frame(TEXT, b""), ""),
    (frame(TEXT, b"last"), "last"),
]
WIRE = b"".join(f for f, _ in STREAM)
EXPECTED = [m for _, m in STREAM if m is not None]


def test_a_mixed_stream_in_one_piece_gives_every_message_in_order():
    messages, proto, failures = feed([WIRE])
    assert messages == EXPECTED and not failures
    assert proto.data_to_send() == [b"\x8a\x0dare you there"]  # the pong, from the library
    assert proto.state is OPEN


def test_a_mixed_stream_cut_anywhere_gives_the_same_messages():
    # Every cut of the first 300 bytes (all the small frames and headers), then
    # every 997th: each header cut at each of its bytes, payloads cut mid-way.
    cuts = [*range(1, 300), *range(300, len(WIRE), 997)]
    for cut in cuts:
        messages, proto, failures = feed([WIRE[:cut], WIRE[cut:]])
        assert (messages, failures) == (EXPECTED, []), f"cut at {cut}"
        assert len(proto.data_to_send()) == 1, f"cut at {cut}"


def test_a_stream_a_byte_at_a_time():
    messages, proto, failures = feed([WIRE[i : i + 1] for i in range(2000)] + [WIRE[2000:]])
    assert (messages, failures) == (EXPECTED, [])


def test_a_whole_frame_during_a_fragmented_message_is_a_protocol_error():
    messages, proto, _ = feed([frame(TEXT, b"a", fin=False) + frame(TEXT, b"b")])
    assert messages == []  # "b" is not taken as a message of its own
    assert proto.state is not OPEN and proto.close_sent.code == 1002


@pytest.mark.parametrize(
    "wire, code",
    [
        (frame(TEXT, b"unmasked", masked=False), 1002),
        (frame(TEXT, b"reserved bit", rsv=0x40), 1002),
        (frame(BINARY, bytes(101)), 1009),  # over max_size=100
        (frame(CONT, b"nothing to continue"), 1002),
    ],
    ids=["unmasked", "rsv1", "too-big", "stray-continuation"],
)
def test_frames_the_fast_path_must_not_take_fail_as_the_library_says(wire, code):
    messages, proto, _ = feed([frame(TEXT, b"before") + wire + frame(TEXT, b"after")], 100)
    assert messages == ["before"]
    assert proto.state is not OPEN and proto.close_sent.code == code


@pytest.mark.parametrize("start", [b"\x07\xff", b"\x81\x7f"], ids=["opcode", "unmasked"])
def test_a_bad_frame_fails_from_its_first_two_bytes(start):
    # The library judges these from two bytes: waiting for the rest of a header
    # (here 8 more length bytes, 4 of mask) the peer may never send would hang.
    proto, inbox = server_side()
    assert receive(proto, inbox, start[:1]) is None
    assert proto.state is OPEN
    assert receive(proto, inbox, start[1:]) is None
    assert proto.state is not OPEN and proto.close_sent.code == 1002


def test_a_fragment_whose_header_comes_in_pieces_goes_through_the_library():
    wire = frame(BINARY, bytes(300), fin=False) + frame(CONT, b"!") + frame(TEXT, b"then")
    proto, inbox = server_side()
    for piece in (wire[:1], wire[1:3], wire[3:5], wire[5:]):  # the header: 2+2+4 bytes
        assert receive(proto, inbox, piece) is None
    assert list(inbox.messages) == [bytes(300) + b"!", "then"]


def test_invalid_utf8_in_a_whole_frame_fails_and_drops_what_follows():
    wire = frame(TEXT, b"ok") + frame(TEXT, b"\xff") + frame(TEXT, b"x")
    messages, proto, failures = feed([wire])
    assert messages == ["ok"]
    assert failures == ["invalid UTF-8 at position 0"]


def test_frames_after_a_close_are_left_to_the_library():
    close = frame(CLOSE, struct.pack("!H", 1000) + b"bye")
    messages, proto, failures = feed([frame(TEXT, b"a") + close + frame(TEXT, b"after")])
    assert messages == ["a"] and not failures
    assert proto.close_rcvd.code == 1000 and proto.state is not OPEN


def test_frames_of_a_client_side_protocol_go_to_the_library():
    proto, inbox = Protocol(Side.CLIENT, state=OPEN), Inbox()
    unmasked = frame(TEXT, b"from the server", masked=False)
    assert receive(proto, inbox, unmasked) is None
    assert list(inbox.messages) == ["from the server"]
    proto, inbox = Protocol(Side.CLIENT, state=OPEN), Inbox()
    receive(proto, inbox, frame(TEXT, b"masked"))  # a server never masks
    assert not inbox.messages and proto.close_sent.code == 1002


# ----------------------------------------------------------------- end to end


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    made: list[Any] = []

    def start(app: Callable) -> str:
        server = wsgi.WSGIServer(nettools.listen((LOCAL, 0)), app, log_output=False).start()
        made.append(server)
        return f"ws://{LOCAL}:{server.address[1]}/"

    yield start
    for server in made:
        server.stop(0)


@websocket.WebSocketWSGI
def echo(ws: websocket.WebSocket) -> None:
    for message in ws:
        ws.send(message)


def test_echo_of_a_batched_stream_over_a_socket(serve):
    url = serve(echo)

    def client() -> tuple[list, list]:
        raw = RawClient(url)
        raw.sock.sendall(WIRE)
        data, control = [], []
        while len(data) < len(EXPECTED):
            opcode, payload = raw.recv_frame()
            if opcode in (TEXT, BINARY):
                data.append(payload.decode() if opcode == TEXT else payload)
            else:
                control.append((opcode, payload))
        raw.close()
        return data, control

    data, control = tpool.execute(client)
    assert data == EXPECTED
    assert control == [(PONG, b"are you there")]


@pytest.mark.parametrize("wire, code", [(frame(TEXT, b"\xc3\x28"), 1007),
                                        (frame(BINARY, b"x", masked=False), 1002)],
                         ids=["bad-utf8", "unmasked"])  # fmt: skip
def test_bad_frames_close_the_connection_with_their_code(serve, wire, code):
    ended = Event()

    @websocket.WebSocketWSGI
    def handler(ws: websocket.WebSocket) -> None:
        ended.send((list(ws), ws.closed))

    url = serve(handler)

    def client() -> tuple[int, int]:
        raw = RawClient(url)
        raw.sock.sendall(frame(TEXT, b"fine") + wire)
        opcode, payload = raw.recv_frame()
        raw.close()
        return opcode, struct.unpack("!H", payload[:2])[0]

    assert tpool.execute(client) == (CLOSE, code)
    assert ended.wait(T) == (["fine"], True)


def test_sends_of_every_header_length_reach_a_strict_client(serve):
    sizes = [0, 1, 125, 126, 127, 65535, 65536, 70000]
    url = serve(echo)

    def client() -> list[bool]:
        ok = []
        with connect(url, open_timeout=T, compression=None, max_size=None) as ws:
            for n in sizes:
                ws.send("t" * n)
                ok.append(ws.recv(timeout=T) == "t" * n)
                ws.send(b"\x01" * n)
                ok.append(ws.recv(timeout=T) == b"\x01" * n)
        return ok

    assert tpool.execute(client) == [True] * (2 * len(sizes))


def test_sends_of_views_and_bytearrays_are_binary_frames(serve):
    @websocket.WebSocketWSGI
    def handler(ws: websocket.WebSocket) -> None:
        ws.wait()
        ws.send(bytearray(b"array"))
        ws.send(memoryview(struct.pack("!4H", 1, 2, 3, 4)).cast("H"))  # 4 items, 8 bytes

    url = serve(handler)

    def client() -> list[Any]:
        with connect(url, open_timeout=T) as ws:
            ws.send("go")
            return [ws.recv(timeout=T), ws.recv(timeout=T)]

    assert tpool.execute(client) == [b"array", struct.pack("!4H", 1, 2, 3, 4)]

