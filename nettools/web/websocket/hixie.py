"""The 2010 websocket drafts, hixie-75 and hixie-76, for the old clients eventlet served.

eventlet's ``WebSocketWSGI`` still answers a client whose upgrade request
carries no ``Sec-WebSocket-Version`` with these drafts, and its ``WebSocket``
class is the draft connection; programs written against it keep working here.
No maintained library speaks the drafts any more (``websockets`` dropped them),
and they are small: a handshake (76 proves it read the request with an MD5 of
two numbers hidden in its keys and eight bytes after the head) and text frames
``0x00 <UTF-8> 0xFF``; 76 adds the closing frame ``0xFF 0x00``.

Unlike eventlet, a message is bounded (``max_message_size``): a peer that never
sends the frame's end byte cannot make the buffer grow without limit.
"""

from __future__ import annotations

import hashlib
import socket as _stdlib_socket
from collections import deque
from collections.abc import Iterator
from typing import Any

from ...kernel.sync import Semaphore
from ...kernel.timeout import Timeout

__all__ = ["HixieWebSocket", "HixieRefused", "hixie_version", "hixie_reply", "KEY3_SIZE"]

#: The bytes a hixie-76 client sends after its request head (no Content-Length says so).
KEY3_SIZE = 8
_RECV_SIZE = 8192
_CLOSING_FRAME = b"\xff\x00"


class HixieRefused(ValueError):
    """The upgrade request is not a valid draft handshake (answered with 400)."""


def hixie_version(environ: dict[str, Any]) -> int:
    """76 if the request carries the draft-76 keys, else 75."""
    return 76 if "HTTP_SEC_WEBSOCKET_KEY1" in environ else 75


def _key_number(value: str) -> int:
    """A draft-76 key's number: its digits divided by its count of spaces."""
    digits = "".join(ch for ch in value if ch.isdigit() and ch.isascii())
    spaces = value.count(" ")
    if not digits or spaces == 0:
        raise HixieRefused(f"malformed Sec-WebSocket-Key: {value!r}")
    number = int(digits)
    if number % spaces or number // spaces > 0xFFFFFFFF:
        raise HixieRefused(f"malformed Sec-WebSocket-Key: {value!r}")
    return number // spaces


def hixie_reply(environ: dict[str, Any], version: int, key3: bytes = b"") -> bytes:
    """The 101 response to a draft upgrade request, with the draft-76 challenge
    answered from ``key3`` (the eight bytes after the request head).

    Raises ``HixieRefused`` if the request lacks what the draft needs.
    """
    origin = environ.get("HTTP_ORIGIN")
    host = environ.get("HTTP_HOST")
    if origin is None or host is None:
        raise HixieRefused("a draft websocket handshake needs Host and Origin")
    scheme = "wss" if environ.get("wsgi.url_scheme") == "https" else "ws"
    target = environ.get("RAW_URI")
    if not target:
        query = environ.get("QUERY_STRING")
        target = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        target += f"?{query}" if query else ""
    location = f"{scheme}://{host}{target}"
    if version == 75:
        lines = [
            "HTTP/1.1 101 Web Socket Protocol Handshake",
            "Upgrade: WebSocket",
            "Connection: Upgrade",
            f"WebSocket-Origin: {origin}",
            f"WebSocket-Location: {location}",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if "HTTP_SEC_WEBSOCKET_KEY2" not in environ:
        raise HixieRefused("Sec-WebSocket-Key2 missing")
    key1 = _key_number(environ["HTTP_SEC_WEBSOCKET_KEY1"])
    key2 = _key_number(environ["HTTP_SEC_WEBSOCKET_KEY2"])
    if len(key3) != KEY3_SIZE:
        raise HixieRefused("the eight key bytes after the request head are missing")
    challenge = key1.to_bytes(4, "big") + key2.to_bytes(4, "big") + key3
    lines = [
        "HTTP/1.1 101 WebSocket Protocol Handshake",
        "Upgrade: WebSocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Origin: {origin}",
        f"Sec-WebSocket-Protocol: {environ.get('HTTP_SEC_WEBSOCKET_PROTOCOL', 'default')}",
        f"Sec-WebSocket-Location: {location}",
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + hashlib.md5(challenge, usedforsecurity=False).digest()


class HixieWebSocket:
    """One draft (hixie-75/76) websocket: eventlet's ``WebSocket``.

    ``wait()`` returns the next text message (``str``) or None once the peer
    has closed; ``send`` sends one (``str``, bytes taken as UTF-8, anything else
    as its ``str``); ``close`` sends the closing frame (76) and closes the
    socket.  Attributes: ``socket``, ``environ``, ``path``, ``origin``,
    ``protocol``, ``version``, ``websocket_closed``.  A frame of an unknown
    type makes ``wait`` raise ``ValueError``.
    """

    def __init__(
        self,
        sock: Any,
        environ: dict[str, Any],
        version: int = 76,
        *,
        max_message_size: int | None = 1 << 20,
    ) -> None:
        self.socket = sock
        self.environ = environ
        self.path: str | None = environ.get("PATH_INFO")
        self.origin: str | None = environ.get("HTTP_ORIGIN")
        self.protocol: str | None = environ.get("HTTP_WEBSOCKET_PROTOCOL")
        self.version = version
        self.max_message_size = max_message_size
        self.websocket_closed = False
        self._buf = b""
        self._msgs: deque[str] = deque()
        self._sendlock = Semaphore()
        self._set_idle = environ.get("nettools.set_idle")

    def wait(self) -> str | None:
        """The next message, waiting for it; None once the connection is closed."""
        while not self._msgs:
            if self.websocket_closed:
                return None
            idle = self._set_idle is not None and not self._buf
            if idle:
                self._set_idle(True)  # between messages: a graceful stop may close us
            try:
                data = self.socket.recv(_RECV_SIZE)
            finally:
                if idle:
                    self._set_idle(False)
            if not data:
                return None
            self._buf += data
            self._parse()
        return self._msgs.popleft()

    def __iter__(self) -> Iterator[str]:
        while (message := self.wait()) is not None:
            yield message

    def _parse(self) -> None:
        buf = self._buf
        while buf:
            if buf[0] == 0x00:
                end = buf.find(b"\xff")
                if end == -1:
                    limit = self.max_message_size
                    if limit is not None and len(buf) - 1 > limit:
                        raise ValueError(f"websocket message over {limit} bytes")
                    break
                self._msgs.append(buf[1:end].decode("utf-8", "replace"))
                buf = buf[end + 1 :]
            elif buf[0] == 0xFF and (len(buf) < 2 or buf[1] == 0x00):
                if len(buf) < 2:
                    break  # the closing frame's second byte is on its way
                self.websocket_closed = True
                buf = b""
            else:
                raise ValueError(f"websocket frame of unknown type {buf[:16]!r}")
        self._buf = buf

    def send(self, message: Any) -> None:
        """Send one text message; raises ``OSError`` if the peer is gone."""
        if isinstance(message, str):
            data = message.encode("utf-8")
        elif isinstance(message, (bytes, bytearray, memoryview)):
            data = bytes(message)
        else:
            data = str(message).encode("utf-8")
        with self._sendlock:  # two senders must not interleave their frames
            self.socket.sendall(b"\x00" + data + b"\xff")

    def send_closing_frame(self) -> None:
        """Send draft 76's closing frame once, ignoring a peer already gone."""
        if self.version == 76 and not self.websocket_closed:
            self.websocket_closed = True
            try:
                with self._sendlock:
                    self.socket.sendall(_CLOSING_FRAME)
            except OSError:
                pass

    def going_away(self, timeout: float = 5.0) -> None:
        """A graceful stop of the server found us idle: the closing frame (76),
        within ``timeout``, then the end of the connection (``wait`` returns None)."""
        with Timeout(timeout, False):
            self.send_closing_frame()
        try:
            self.socket.shutdown(_stdlib_socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        """Send the closing frame (76) and close the connection."""
        try:
            self.send_closing_frame()
            self.socket.shutdown(_stdlib_socket.SHUT_RDWR)
        except OSError:
            pass  # not connected any more: nothing to tell the peer
        finally:
            self.socket.close()

    def __repr__(self) -> str:
        state = "closed" if self.websocket_closed else "open"
        return f"<HixieWebSocket {self.version} {self.path!r} {state}>"
