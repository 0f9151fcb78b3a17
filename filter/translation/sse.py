"""Incremental Server-Sent Events parsing over raw bytes.

Events may be split anywhere across chunks (inside a line, inside a ``\\r\\n``
pair, inside a multi-byte UTF-8 character): bytes are buffered and only whole
events are handed out, with their ``data`` still as bytes for ``orjson.loads``.
Comment lines (``: ping``), ``id`` and ``retry`` fields are ignored.
"""

from __future__ import annotations

__all__ = ["SSEEvent", "SSEParser", "encode_event", "encode_data"]


class SSEEvent:
    __slots__ = ("event", "data")

    def __init__(self, event: str, data: bytes) -> None:
        self.event = event  # "" when the event had no ``event:`` field
        self.data = data

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"SSEEvent({self.event!r}, {self.data!r})"


class SSEParser:
    __slots__ = ("_buf", "_scan", "_skip_lf")

    def __init__(self) -> None:
        self._buf = b""
        self._scan = 0  # buffer offset already searched for an event boundary
        self._skip_lf = False  # a chunk ended in "\r": drop a "\n" that starts the next

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
        if b"\r" in chunk:
            self._skip_lf = chunk[-1] == 0x0D
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buf = self._buf + chunk if self._buf else chunk
        events: list[SSEEvent] = []
        start = 0
        scan = self._scan
        while True:
            end = buf.find(b"\n\n", scan)
            if end < 0:
                break
            event = _parse_block(buf[start:end])
            if event is not None:
                events.append(event)
            start = scan = end + 2
        self._buf = buf[start:]
        # The last byte may be the first half of the next boundary.
        self._scan = max(len(self._buf) - 1, 0)
        return events

    def close(self) -> list[SSEEvent]:
        """End of input: an unterminated trailing event is still handed out."""
        buf, self._buf, self._scan = self._buf, b"", 0
        if not buf.strip():
            return []
        event = _parse_block(buf.rstrip(b"\n"))
        return [event] if event is not None else []


def _parse_block(block: bytes) -> SSEEvent | None:
    if block.startswith(b"\n"):
        block = block.lstrip(b"\n")
        if not block:
            return None
    event = ""
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line[0] == 0x3A:  # empty or ":" comment
            continue
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
    if not data:
        return None
    return SSEEvent(event, data[0] if len(data) == 1 else b"\n".join(data))


def encode_event(event: str, data: bytes) -> bytes:
    """Named event (Anthropic style)."""
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


def encode_data(data: bytes) -> bytes:
    """Data-only event (OpenAI style)."""
    return b"data: " + data + b"\n\n"
