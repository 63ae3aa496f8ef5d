"""What a websocket received, in whole messages: the glue between the protocol's
frames (``websockets``' Sans-I/O layer, or ``framing``'s fast path) and
``WebSocket.wait()``.  No I/O here."""

from __future__ import annotations

from collections import deque
from typing import Any

from websockets.frames import Opcode

from ...kernel.sync import Event

__all__ = ["Inbox"]

_TEXT, _BINARY, _CONT, _PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PONG


class Inbox:
    """Whole messages assembled from the frames the protocol parsed.

    ``messages`` holds complete messages (``str`` for text, ``bytes`` for
    binary) not yet taken: a deque, or ``()`` while there are none (an idle
    connection keeps no empty deque); ``fragments`` the parts of one still arriving.
    ``pong`` is the ping a keepalive waits on, ``(payload, event)``: the
    matching pong sets the event.  Pings are answered by the protocol itself
    and a close frame shows in its state, so neither concerns the inbox.
    ``pending`` and ``owed`` are where ``framing.receive`` is between frames.
    """

    __slots__ = ("messages", "fragments", "fragment_text", "pong", "pending", "owed")

    def __init__(self) -> None:
        self.messages: deque[str | bytes] | tuple[()] = ()
        self.fragments: list[bytes] | tuple[()] = ()  # a list while a message arrives
        self.fragment_text = False
        self.pong: tuple[bytes, Event] | None = None
        self.pending = b""  # the start of a frame whose header is incomplete
        self.owed = 0  # bytes of the frame the protocol is in the middle of

    def partial(self) -> bool:
        """Whether part of a message has arrived (the framing's or the inbox's)."""
        return bool(self.fragments or self.pending or self.owed)

    def add_message(self, data: bytes, text: bool) -> str | None:
        """Take in one whole message's payload; returns why the connection must
        fail (``text`` that is not UTF-8: close code 1007), else None."""
        if text:
            try:
                message: str | bytes = data.decode()
            except UnicodeDecodeError as exc:
                return _invalid(exc)
        else:
            message = data
        if self.messages:
            self.messages.append(message)  # type: ignore[union-attr]
        else:
            self.messages = deque((message,))
        return None

    def add(self, frames: list[Any]) -> str | None:
        """Take in ``frames``; returns why the connection must fail (a text
        message that is not UTF-8: close code 1007), else None.  Frames after
        such a one are dropped."""
        messages = self.messages
        if not messages:
            messages = self.messages = deque()
        try:
            for frame in frames:
                opcode = frame.opcode
                if opcode is _TEXT or opcode is _BINARY:
                    if frame.fin:
                        if opcode is _TEXT:
                            try:
                                messages.append(frame.data.decode())
                            except UnicodeDecodeError as exc:
                                return _invalid(exc)
                        else:
                            messages.append(bytes(frame.data))
                    else:
                        self.fragments = [frame.data]
                        self.fragment_text = opcode is _TEXT
                elif opcode is _CONT:
                    self.fragments.append(frame.data)  # type: ignore[union-attr]
                    if frame.fin:
                        data = b"".join(self.fragments)
                        self.fragments = ()
                        if self.fragment_text:
                            try:
                                messages.append(data.decode())
                            except UnicodeDecodeError as exc:
                                return _invalid(exc)
                        else:
                            messages.append(data)
                elif opcode is _PONG:
                    pong = self.pong
                    if pong is not None and frame.data == pong[0]:
                        self.pong = None
                        pong[1].send(True)
            return None
        finally:
            if not messages:
                self.messages = ()


def _invalid(exc: UnicodeDecodeError) -> str:
    return f"invalid UTF-8 at position {exc.start}"
