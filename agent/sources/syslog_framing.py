"""Syslog over a byte stream (TCP, TLS): where one message ends and the next begins (RFC 6587).

Two framings exist and senders do not announce theirs, so it is detected from the first byte of a
connection: a digit 1-9 means octet counting (`MSG-LEN SP MSG`, RFC 6587 §3.4.1, the only framing
RFC 5425 allows over TLS); anything else, LF framing (one message a line, §3.4.2; a CR before the
LF and NULs are dropped by the parser). A connection keeps the framing it started with.

Bounds: a message longer than `max_bytes` is cut there and flagged truncated, and the rest of it
is skipped as it arrives, so a sender cannot make the receiver hold more than `max_bytes` (plus one
read) for a connection. A length field that is not a number (or longer than 10 digits) is a
`FrameError`: the stream has lost its framing and the connection is closed.
"""

from __future__ import annotations

from typing import NamedTuple


class FrameError(Exception):
    """The byte stream broke its framing; `reason` is the metric's label."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


class Frame(NamedTuple):
    data: bytes
    truncated: bool


MAX_LENGTH_DIGITS = 10


class FrameSplitter:
    """Feed the bytes of one connection as they come; get its complete messages."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.framing = ""            # "" until the first byte, then "octet" or "lf"
        self._buffer = bytearray()
        self._skip = 0               # octet counting: bytes of a cut message still to skip
        self._skip_line = False      # LF: the rest of a cut line is being skipped
        self.broken: FrameError | None = None

    def feed(self, data: bytes) -> list[Frame]:
        if not data or self.broken:
            return []
        if not self.framing:
            self.framing = "octet" if data[:1] in b"123456789" else "lf"
        self._buffer += data
        return self._octet() if self.framing == "octet" else self._lines()

    def pending(self) -> int:
        """Bytes held of a message not yet complete."""
        return len(self._buffer)

    def end(self) -> Frame | None:
        """The peer closed: an LF-framed last line without its LF is a message (as rsyslog takes
        it); an incomplete octet-counted message is not (its length said there was more)."""
        rest, self._buffer = bytes(self._buffer), bytearray()
        if self.framing == "lf" and rest and not self._skip_line and not self.broken:
            return Frame(rest, False)
        return None

    def _lines(self) -> list[Frame]:
        frames: list[Frame] = []
        buffer = self._buffer
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            if self._skip_line:
                self._skip_line = False
            elif end - start > self.max_bytes:
                frames.append(Frame(bytes(buffer[start:start + self.max_bytes]), True))
            else:
                frames.append(Frame(bytes(buffer[start:end]), False))
            start = end + 1
        del buffer[:start]
        if len(buffer) > self.max_bytes:
            if not self._skip_line:
                frames.append(Frame(bytes(buffer[:self.max_bytes]), True))
                self._skip_line = True
            buffer.clear()
        return frames

    def _octet(self) -> list[Frame]:
        frames: list[Frame] = []
        buffer = self._buffer
        start = 0
        while True:
            if self._skip:
                skipped = min(self._skip, len(buffer) - start)
                self._skip -= skipped
                start += skipped
                if self._skip:
                    break
            while start < len(buffer) and buffer[start] in b"\r\n":   # a line end some senders add
                start += 1
            if start == len(buffer):
                break
            space = buffer.find(b" ", start, start + MAX_LENGTH_DIGITS + 1)
            if space < 0:
                if len(buffer) - start > MAX_LENGTH_DIGITS or not bytes(buffer[start:]).isdigit():
                    self._bad(bytes(buffer[start:start + MAX_LENGTH_DIGITS + 1]))
                break
            digits = bytes(buffer[start:space])
            if not digits.isdigit() or digits[:1] == b"0":
                self._bad(digits)
                break
            length = int(digits)
            body = space + 1
            if length > self.max_bytes:
                if len(buffer) - body < self.max_bytes:
                    break         # wait for the part that is kept
                frames.append(Frame(bytes(buffer[body:body + self.max_bytes]), True))
                start = body + self.max_bytes
                self._skip = length - self.max_bytes
                continue
            if len(buffer) - body < length:
                break
            frames.append(Frame(bytes(buffer[body:body + length]), False))
            start = body + length
        if self.broken:
            buffer.clear()
        else:
            del buffer[:start]
        return frames

    def _bad(self, seen: bytes) -> None:
        self.broken = FrameError("bad_octet_count", f"expected an octet count, got {seen[:16]!r}")
