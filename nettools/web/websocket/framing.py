"""The hot path of a websocket's framing, beside the ``websockets`` protocol object.

Almost every frame a busy server receives is a whole message: one data frame
(text or binary, FIN set, no reserved bits, masked as a client must) that no
extension touches.  The library parses every frame through generator-based
coroutines (a reader, the frame parser, the protocol's parse loop), which is
about half of what an echo costs; a frame of that one kind changes nothing in
the protocol's state, so ``receive`` reads its header itself, unmasks it with
the library's own C helper (``websockets.speedups.apply_mask`` when built) and
hands the payload straight to the inbox.

Everything else -- control frames, fragments, frames over the size limit or
with reserved bits, a connection with an extension (permessage-deflate) or no
longer open, and a data frame whose payload has not all arrived yet -- goes to
the library, always starting at a frame boundary: ``receive`` knows each frame's
length from its header, so it knows how many more bytes belong to the frame
the library is in the middle of (``Inbox.owed``) before it may look again.  Sending
is the same: a whole unfragmented message on a connection without extensions
is one unmasked frame, whose header is two to ten bytes (``frame_header``).
"""

from __future__ import annotations

import struct
from typing import Any

from websockets.frames import apply_mask
from websockets.protocol import OPEN, Side

from .inbox import Inbox

__all__ = ["receive", "frame_header"]

SERVER = Side.SERVER

_SHORT = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")
_EXT16 = struct.Struct("!H")
_EXT64 = struct.Struct("!Q")
#: The longest header: 2 bytes, an 8-byte length, a 4-byte mask.
_MAX_HEADER = 14


def frame_header(text: bool, length: int) -> bytes:
    """The header of a server's (unmasked) final data frame of ``length`` bytes."""
    first = 0x81 if text else 0x82
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return _SHORT.pack(first, 126, length)
    return _LONG.pack(first, 127, length)


def receive(proto: Any, inbox: Inbox, data: bytes) -> str | None:
    """Feed ``data``, received by the connection of ``proto`` (the library's
    protocol object), to ``inbox``: whole single-frame messages directly, every
    other frame through ``proto``, in the order they arrived.  Returns why the
    connection must fail (a text message that is not UTF-8), else None; what
    follows such a message is dropped.

    ``inbox.pending`` keeps the start of a frame whose header is incomplete, and
    ``inbox.owed`` how many more bytes belong to the frame the library is in --
    or, below zero, how many bytes of a frame whose header is not all here yet
    the library has already been given (they are in ``pending`` too): one its
    first bytes show is not for the fast path, which the library judges at once.
    """
    if inbox.owed < 0:
        given = -inbox.owed
        seen = inbox.pending + data
        size = _frame_size(seen)
        if size is None:  # still not the whole header: the library takes what came
            inbox.pending, inbox.owed = seen, -len(seen)
            return _to_library(proto, inbox, data)
        inbox.pending = b""
        inbox.owed = size - given
    if proto.extensions or proto.state is not OPEN or proto.side is not SERVER:
        if inbox.pending:
            data, inbox.pending = inbox.pending + data, b""
        return _to_library(proto, inbox, data)
    if inbox.pending:
        data, inbox.pending = inbox.pending + data, b""
    end = len(data)
    pos = 0
    if inbox.owed:
        pos = min(inbox.owed, end)
        inbox.owed -= pos
        invalid = _to_library(proto, inbox, data[:pos])
        if invalid is not None:
            return invalid
        if proto.state is not OPEN:  # failed or closing: the library takes the rest
            return _to_library(proto, inbox, data[pos:])
    limit = proto.max_message_size
    if proto.max_fragment_size is not None and (limit is None or proto.max_fragment_size < limit):
        limit = proto.max_fragment_size
    while pos < end:
        b0 = data[pos]
        if end - pos < 2:
            return _wait_for_header(proto, inbox, data[pos:], b0 == 0x81 or b0 == 0x82)
        b1 = data[pos + 1]
        length = b1 & 0x7F
        head = 2
        if length == 126:
            head = 4
            if end - pos >= 4:
                (length,) = _EXT16.unpack_from(data, pos + 2)
        elif length == 127:
            head = 10
            if end - pos >= 10:
                (length,) = _EXT64.unpack_from(data, pos + 2)
        if b1 & 0x80:
            head += 4
        if end - pos < head:  # fewer than _MAX_HEADER bytes
            ours = (b0 == 0x81 or b0 == 0x82) and b1 & 0x80
            return _wait_for_header(proto, inbox, data[pos:], ours)
        stop = pos + head + length
        # A whole message in one masked final text/binary frame, all here, within the
        # limit, while no fragmented message is under way: the fast path.
        if (
            (b0 == 0x81 or b0 == 0x82)
            and b1 & 0x80
            and stop <= end
            and (limit is None or length <= limit)
            and proto.current_size is None
        ):
            payload = apply_mask(data[pos + head : stop], data[pos + head - 4 : pos + head])
            invalid = inbox.add_message(payload, b0 == 0x81)
            if invalid is not None:
                return invalid
            pos = stop
            continue
        # Anything else: this frame (as much of it as is here) to the library.
        take = stop if stop < end else end
        inbox.owed = stop - take
        invalid = _to_library(proto, inbox, data[pos:take])
        pos = take
        if invalid is not None:
            return invalid
        if proto.state is not OPEN:  # failed or closing: the library takes the rest
            inbox.owed = 0
            return _to_library(proto, inbox, data[pos:])
    return None


def _wait_for_header(proto: Any, inbox: Inbox, start: bytes, ours: Any) -> str | None:
    """``start`` begins a frame whose header is not all here.  One that may be for
    the fast path waits in ``pending``; any other goes to the library now, which
    fails a bad one from its first bytes (a reserved opcode, say) without waiting."""
    inbox.pending = start
    if ours:
        return None
    inbox.owed = -len(start)
    return _to_library(proto, inbox, start)


def _frame_size(data: bytes) -> int | None:
    """The whole length of the frame ``data`` starts with, header included
    (None: its header is not all there)."""
    if len(data) < 2:
        return None
    length = data[1] & 0x7F
    head = 2 + (4 if data[1] & 0x80 else 0)
    if length == 126:
        head += 2
        if len(data) < 4:
            return None
        (length,) = _EXT16.unpack_from(data, 2)
    elif length == 127:
        head += 8
        if len(data) < 10:
            return None
        (length,) = _EXT64.unpack_from(data, 2)
    return None if len(data) < head else head + length


def _to_library(proto: Any, inbox: Inbox, data: bytes) -> str | None:
    if not data:
        return None
    proto.receive_data(data)
    events = proto.events_received()
    return inbox.add(events) if events else None
