"""A stand-in OpenAI upstream for the performance benchmark, fast enough never to be the bottleneck.

`python -m bench.upstream --port N` serves HTTP/1.1 with keep-alive on 127.0.0.1 from one
process (uvloop when installed, plain asyncio otherwise). Every answer is prebuilt bytes written
with one `write()` on a TCP_NODELAY socket:

* any POST whose body does not ask for `"stream": true` gets a complete chat completion (JSON);
* a POST that asks for a stream gets an SSE response: the headers and the first event in one
  write, then, after `--stream-gap-ms`, the remaining events and the end of the chunked body in a
  second write. The gap separates time to first byte from time to last byte, so a gateway that
  buffered the stream would show it in its TTFB;
* `GET /health` (or any GET) answers 200 `ok`.

The request body is read (Content-Length or chunked) but never parsed as JSON: only a byte search
for the stream flag, so that the stand-in's cost per request stays flat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import socket

MODEL = "gpt-4o-mini"
_STREAM_FLAG = re.compile(rb'"stream"\s*:\s*true')


def _completion() -> bytes:
    body = json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the benchmark upstream."},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }, separators=(",", ":")).encode()
    head = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n")
    return head + body


def _sse_parts() -> tuple[bytes, bytes]:
    def chunk(delta: dict, finish: str | None = None) -> bytes:
        event = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        data = b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"
        return f"{len(data):x}\r\n".encode() + data + b"\r\n"

    head = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            b"transfer-encoding: chunked\r\n\r\n")
    first = head + chunk({"role": "assistant", "content": ""})
    rest = b"".join(chunk({"content": (" " if i else "") + w}) for i, w in enumerate("Hello from the benchmark upstream.".split()))
    rest += chunk({}, "stop")
    done = b"data: [DONE]\n\n"
    rest += f"{len(done):x}\r\n".encode() + done + b"\r\n" + b"0\r\n\r\n"
    return first, rest


COMPLETION = _completion()
SSE_FIRST, SSE_REST = _sse_parts()
OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"
BAD = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class Http(asyncio.Protocol):
    """HTTP/1.1 request parsing just deep enough for keep-alive and pipelining."""

    stream_gap_s = 0.02

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            body_start = end + 4
            if b"transfer-encoding: chunked" in head:
                parsed = _dechunk(self.buffer, body_start)
                if parsed is None:
                    return
                body, consumed = parsed
            else:
                match = re.search(rb"\r\ncontent-length:\s*(\d+)", head)
                length = int(match.group(1)) if match else 0
                if len(self.buffer) < body_start + length:
                    return
                body, consumed = bytes(self.buffer[body_start:body_start + length]), body_start + length
            del self.buffer[:consumed]
            self._answer(head, body)

    def _answer(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        if head.startswith(b"post"):
            if _STREAM_FLAG.search(body):
                self.transport.write(SSE_FIRST)
                asyncio.get_running_loop().call_later(self.stream_gap_s, self._finish_stream)
            else:
                self.transport.write(COMPLETION)
        elif head.startswith(b"get"):
            self.transport.write(OK)
        else:
            self.transport.write(BAD)
            self.transport.close()

    def _finish_stream(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(SSE_REST)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def _dechunk(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """A chunked body starting at `start`: (body, bytes consumed) or None while incomplete."""
    body = bytearray()
    pos = start
    while True:
        line_end = buffer.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buffer[pos:line_end]).split(b";")[0] or b"0", 16)
        pos = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n", pos)
            while trailer_end >= 0 and trailer_end != pos:  # skip trailers
                pos = trailer_end + 2
                trailer_end = buffer.find(b"\r\n", pos)
            if trailer_end < 0:
                return None
            return bytes(body), pos + 2
        if len(buffer) < pos + size + 2:
            return None
        body += buffer[pos:pos + size]
        pos += size + 2


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Http, "127.0.0.1", port, backlog=1024, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"bench upstream listening on 127.0.0.1:{port}", flush=True)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stream-gap-ms", type=float, default=20.0)
    args = parser.parse_args()
    Http.stream_gap_s = args.stream_gap_ms / 1000
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.port))
    else:
        uvloop.run(serve(args.port))


if __name__ == "__main__":
    main()
