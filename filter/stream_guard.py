"""Streams that would outlive the listener timeout are ended by the gateway, in the client's format.

Envoy's route timeout resets a response whose headers already went out: the client sees the
connection drop in the middle of an event, with no terminal event, and the access log says 200.
So the filter takes over the body of every SSE answer (ext_proc `FULL_DUPLEX_STREAMED`, turned on
when its headers arrive): it relays each chunk as it arrives, translated where needed, and, when
the provider has not finished by the deadline, writes
the error event and the terminal event of the client's API and ends the stream itself. The
deadline is the listener timeout counted from the request's start, less a margin (a tenth of it,
0.1–1 s) that lets the gateway act before Envoy's own timer (which starts later, when the whole
request has passed the filters). A cut stream is marked in the access log (`stream_end:
cut_timeout`), counted (`switchyard_streams_cut_total`) and logged.

What the client gets, as the APIs themselves end a stream that failed on the server side:
- Chat Completions: `data: {"error": {...}}` then `data: [DONE]` (the SDKs raise `APIError`);
- Messages: `event: error` with an `api_error` (the SDK raises its status error);
- Responses: `response.failed` with the response so far, status `failed` and `error.code:
  server_error` (or an `error` event when the provider had not even started the response).
Untranslated streams are relayed event by event: a partial event is held until its end arrives,
so the error always follows a whole event.

Used on the filter path (the request's own ext_proc stream, after the response headers) and, where
Envoy cannot guard them itself (`switchyard render`, or gateway.usage_metrics off), for fast-path
streams, whose routes then open a response-only ext_proc stream (filter/render/fast_path.py).
Under `switchyard up` Envoy's own filter guards those, the same way (envoy/switchyard_stream_guard.c).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import AsyncIterator, Awaitable, Callable

import orjson

from filter import ext_proc
from filter.errors import ClientApi
from filter.response_rewriter import ResponseRewriter

log = logging.getLogger("switchyard.streams")

CUT_METADATA = {"stream_end": "cut_timeout"}
# The gRPC metadata of a fast-path stream's response-only ext_proc stream: the client's API
# (filter/render/fast_path.py `with_stream_twin`).
FAST_STREAM_METADATA = "x-switchyard-stream"
_SEQUENCE = re.compile(rb'"sequence_number"\s*:\s*(\d+)')
_STARTED = (b'"response.created"', b'"response.in_progress"')
# A line that ends an answer, in any of the three APIs: after it, nothing is added.
_TERMINAL = re.compile(rb"(?m)^(?:data: ?\[DONE\]|event: ?(?:message_stop|error|response\.(?:completed|incomplete|failed)))\r?$")


def deadline_margin(timeout_s: float) -> float:
    """How long before the listener timeout the gateway ends a stream itself."""
    return min(1.0, max(0.1, timeout_s / 10), timeout_s / 2)


def stream_deadline(started: float, timeout_s: float, now: float | None = None) -> float:
    """The monotonic time by which a stream begun at `started` (monotonic) is ended. A start
    ahead of now, or older than the timeout (the answer's headers cannot come after it), means a
    wall clock was stepped between Envoy's start and here: the deadline then counts from now,
    and Envoy's own timer is the backstop."""
    now = time.monotonic() if now is None else now
    if not started <= now < started + timeout_s:
        started = now
    return started + timeout_s - deadline_margin(timeout_s)


def monotonic_start(started_wall: float) -> float:
    """Envoy's start of a request (its wall clock, from the fast path's filter) on this process's monotonic
    clock; only the time elapsed since then is taken from the wall clock."""
    return time.monotonic() - (time.time() - started_wall)


def cut_message(timeout_s: float) -> str:
    return (f"the provider's stream did not finish within the gateway's timeout ({timeout_s:g}s, "
            "listeners.egress_traffic.timeout); the gateway ended it")


def is_event_stream(status: int, content_type: str | None) -> bool:
    return 200 <= status < 300 and (content_type or "").split(";")[0].strip().lower() == "text/event-stream"


def _after_last_event(data: bytes) -> int:
    """Where the last whole SSE event in `data` ends (after its blank line); 0 if none does."""
    lf, crlf = data.rfind(b"\n\n"), data.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


class _Passthrough:
    """An untranslated SSE answer, relayed whole event by whole event; knows how to end it."""

    def __init__(self, api: ClientApi, hold_limit: int):
        self.api = api
        self.hold_limit = hold_limit  # a "partial event" larger than this is not held
        self._tail = b""
        self._sequence = -1  # Responses: the last sequence_number seen
        self._response: dict | None = None  # Responses: the response object as it started
        self._finished = False  # the provider's terminal event went out already

    def feed(self, chunk: bytes, end_of_stream: bool) -> bytes:
        data = self._tail + chunk if self._tail else chunk
        if end_of_stream:
            self._tail = b""
            return data
        end = _after_last_event(data)
        if not end and len(data) >= self.hold_limit:  # no event ends in here, and it is too big to hold
            end = len(data)
        ready, self._tail = data[:end], data[end:]
        if ready and not self._finished:
            self._finished = _TERMINAL.search(ready) is not None
            if self.api is ClientApi.RESPONSES:
                self._note(ready)
        return ready

    def _note(self, ready: bytes) -> None:
        numbers = _SEQUENCE.findall(ready)
        if numbers:
            self._sequence = max(self._sequence, int(numbers[-1]))
        if any(mark in ready for mark in _STARTED):
            for block in re.split(rb"\r?\n\r?\n", ready):
                if any(mark in block for mark in _STARTED):
                    data = b"\n".join(line[5:].lstrip(b" ") for line in re.split(rb"\r?\n", block)
                                      if line.startswith(b"data:"))
                    try:
                        event = orjson.loads(data)
                    except orjson.JSONDecodeError:
                        continue
                    if isinstance(event, dict) and isinstance(event.get("response"), dict):
                        self._response = event["response"]

    def cut(self, message: str) -> bytes:
        """The partial event held back is dropped: the error follows a whole event. After the
        provider's own terminal event (it never closed the stream), the stream just ends."""
        self._tail = b""
        if self._finished:
            return b""
        if self.api is ClientApi.CHAT:
            error = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
            return b"data: " + orjson.dumps(error) + b"\n\ndata: [DONE]\n\n"
        if self.api is ClientApi.MESSAGES:
            error = {"type": "error", "error": {"type": "api_error", "message": message}}
            return b"event: error\ndata: " + orjson.dumps(error) + b"\n\n"
        sequence = self._sequence + 1
        error = {"code": "server_error", "message": message}
        if self._response is None:
            event = {"type": "error", **error, "param": None, "sequence_number": sequence}
            return b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"
        response = {**self._response, "status": "failed", "error": error}
        event = {"type": "response.failed", "sequence_number": sequence, "response": response}
        return b"event: response.failed\ndata: " + orjson.dumps(event) + b"\n\n"


class StreamGuard:
    """One SSE answer whose body the gateway relays until it ends or the deadline passes."""

    def __init__(self, api: ClientApi, deadline: float, timeout_s: float, rewriter: ResponseRewriter | None,
                 hold_limit: int, on_cut: Callable[[], None],
                 after_chunk: Callable[[], Awaitable[None]] | None = None):
        self.api = api
        self.deadline = deadline
        self.timeout_s = timeout_s
        self._rewriter = rewriter if rewriter is not None and rewriter.streaming else None
        self._passthrough = _Passthrough(api, hold_limit) if self._rewriter is None else None
        self._on_cut = on_cut
        self._after_chunk = after_chunk  # e.g. keeping a finished Responses answer before its end goes out

    def feed(self, chunk: bytes, end_of_stream: bool) -> bytes:
        if self._rewriter is not None:
            return self._rewriter.on_body(chunk, end_of_stream)
        return self._passthrough.feed(chunk, end_of_stream)

    def cut(self) -> bytes:
        message = cut_message(self.timeout_s)
        if self._rewriter is not None:
            return self._rewriter.cut(message)
        return self._passthrough.cut(message)

    async def relay(self, messages: AsyncIterator) -> AsyncIterator:
        """The ext_proc answers for the rest of the stream: each chunk as it comes, then either
        the provider's end or, at the deadline, the gateway's."""
        pending: asyncio.Future | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(messages.__anext__())
                done, _ = await asyncio.wait((pending,), timeout=max(0.0, self.deadline - time.monotonic()))
                if not done:
                    self._on_cut()
                    yield ext_proc.streamed_response_chunk(self.cut(), True, metadata=CUT_METADATA)
                    return
                try:
                    message = pending.result()
                except StopAsyncIteration:
                    return  # Envoy closed the stream: the client went away
                pending = None
                phase = message.WhichOneof("request")
                if phase == "response_trailers":  # the provider's end, with trailers: what is held, then them
                    rest = self.feed(b"", True)
                    if rest:
                        yield ext_proc.streamed_response_chunk(rest, False)
                    yield ext_proc.CONTINUE_TRAILERS
                    return
                if phase != "response_body":
                    continue
                body = message.response_body
                out = self.feed(body.body, body.end_of_stream)
                if self._after_chunk is not None:
                    await self._after_chunk()
                if out or body.end_of_stream:
                    yield ext_proc.streamed_response_chunk(out, body.end_of_stream)
                if body.end_of_stream:
                    return
        finally:
            if pending is not None and not pending.done():
                pending.cancel()


def fast_stream_api(context) -> ClientApi | None:
    """The client API of a fast-path stream's ext_proc stream, or None for the filter's others."""
    for key, value in context.invocation_metadata() or ():
        if key == FAST_STREAM_METADATA:
            return ClientApi(value)
    return None


async def relay_fast_stream(api: ClientApi, messages: AsyncIterator,
                            make_guard: Callable[[ClientApi, float, str], StreamGuard]) -> AsyncIterator:
    """A fast-path stream's answer: Envoy served the request alone and sends the answer's headers
    here (with the fast path's metadata: the model, the request's start); an SSE answer's body is
    relayed and guarded like the filter's own, anything else goes on untouched."""
    async for message in messages:
        if message.WhichOneof("request") != "response_headers":
            continue
        headers = ext_proc.header_values(message.response_headers)
        if not is_event_stream(int(headers.get(":status", "200")), headers.get("content-type")):
            yield ext_proc.response_headers(stream_body=False)
            return
        fields = message.metadata_context.filter_metadata[ext_proc.METADATA_NAMESPACE].fields
        started = monotonic_start(fields["started_ms"].number_value / 1000) if "started_ms" in fields else time.monotonic()
        guard = make_guard(api, started, fields["model"].string_value if "model" in fields else "")
        yield ext_proc.relayed_response_headers()
        async for reply in guard.relay(messages):
            yield reply
        return
