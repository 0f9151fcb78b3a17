"""Streaming translators: small state machines fed raw upstream SSE bytes.

``feed(chunk)`` returns the client-format bytes ready to send (possibly b""),
``finish()`` flushes at end of the upstream stream.  The client stream always
ends with exactly one terminal event (``data: [DONE]`` / ``message_stop``),
except after an upstream mid-stream error, which ends it with the error in the
client's format.  A stream cut short gets an error and then the terminal event; so does a
stream the gateway ends itself (``cut``: it ran into the listener timeout).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from .common import chat_id_from, finish_reason_from_stop, message_id_from, new_tool_call_id, stop_reason_from_finish
from .errors import chat_error_object, messages_error_object, parse_error, status_for_anthropic_type
from .sse import SSEParser, encode_event
from .usage import (
    Usage,
    chat_usage_block,
    chat_usage_counts,
    messages_usage_block,
    messages_usage_counts,
    usage_from_counts,
)

__all__ = ["MessagesStreamToChat", "ChatStreamToMessages", "TRUNCATED_MESSAGE"]

TRUNCATED_MESSAGE = "upstream stream ended before completion"

_DONE = b"data: [DONE]\n\n"
_dumps = orjson.dumps


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


class _StreamTranslator:
    """The driver both directions share: SSE parsing, the done flag and the end of stream.

    A subclass supplies ``_handle`` (one upstream event), ``_complete`` (the normal
    terminal events) and ``_end_cut_short`` (error, then terminal event, for a stream
    that stopped before the model finished).  All three append bytes to ``out``.
    """

    def __init__(self, model: str) -> None:
        self._parser = SSEParser()
        self._model = model
        self._id: str | None = None
        self._counts = [0, 0, 0, 0, 0]  # fresh input, cache read, cache write, output, reasoning
        self._finish: Any = None  # upstream's finish / stop reason, once seen
        self._done = False

    @property
    def usage(self) -> Usage:
        return usage_from_counts(self._counts)

    @property
    def id(self) -> str | None:
        return self._id

    def _handle(self, event_name: str, data: bytes, out: list) -> None:
        raise NotImplementedError

    def _complete(self, out: list) -> None:
        raise NotImplementedError

    def _end_cut_short(self, out: list, message: str = TRUNCATED_MESSAGE) -> None:
        raise NotImplementedError

    # -- public API -------------------------------------------------------

    def feed(self, chunk: bytes) -> bytes:
        if self._done:
            return b""
        out: list = []
        for event in self._parser.feed(chunk):
            self._handle(event.event, event.data, out)
            if self._done:
                break
        return b"".join(out)

    def finish(self) -> bytes:
        if self._done:
            return b""
        out: list = []
        for event in self._parser.close():
            self._handle(event.event, event.data, out)
            if self._done:
                return b"".join(out)
        if self._finish is None:
            # Cut short before the model finished: report it, then end the stream.
            self._end_cut_short(out)
            self._done = True
        else:
            # Finished, but the terminal event never came (some providers omit it).
            self._complete(out)
        return b"".join(out)

    def cut(self, message: str) -> bytes:
        """The gateway ends the stream before the provider did: an error saying why, then the
        terminal event. A partial upstream event still buffered is dropped."""
        if self._done:
            return b""
        out: list = []
        self._end_cut_short(out, message)
        self._done = True
        return b"".join(out)


class MessagesStreamToChat(_StreamTranslator):
    """Anthropic Messages SSE -> OpenAI ``chat.completion.chunk`` SSE."""

    def __init__(self, *, model: str, include_usage: bool = True) -> None:
        super().__init__(model)
        self._include_usage = include_usage
        self._created = int(time.time())
        self._head = b""  # 'data: {"id":..,"object":..,"created":..,"model":..,'
        self._prefix = b""  # head + '"choices":[{"index":0,"delta":'
        self._tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool_calls index
        self._finish_sent = False

    # -- output helpers ---------------------------------------------------

    def _start(self, msg_id: Any, out: list) -> None:
        self._id = chat_id_from(msg_id)
        self._head = (
            b'data: {"id":' + _dumps(self._id) + b',"object":"chat.completion.chunk","created":'
            + str(self._created).encode() + b',"model":' + _dumps(self._model) + b","
        )
        self._prefix = self._head + b'"choices":[{"index":0,"delta":'
        out.append(self._prefix + b'{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n')

    def _delta(self, delta: bytes, out: list) -> None:
        out.append(self._prefix + delta + b',"logprobs":null,"finish_reason":null}]}\n\n')

    # Text and thinking arrive both in a block's start and in its deltas.
    def _content(self, text: Any, out: list) -> None:
        if text:
            self._delta(b'{"content":' + _dumps(text) + b"}", out)

    def _reasoning(self, thinking: Any, out: list) -> None:
        if thinking:
            self._delta(b'{"reasoning_content":' + _dumps(thinking) + b"}", out)

    def _send_finish(self, out: list) -> None:
        if self._finish_sent:
            return
        self._finish_sent = True
        reason = self._finish or ("tool_calls" if self._tool_index else "stop")
        out.append(self._prefix + b'{},"logprobs":null,"finish_reason":"' + reason.encode() + b'"}]}\n\n')

    def _complete(self, out: list) -> None:
        if self._id is None:
            self._start(None, out)
        self._send_finish(out)
        if self._include_usage:
            out.append(self._head + b'"choices":[],"usage":' + _dumps(chat_usage_block(*self._counts)) + b"}\n\n")
        out.append(_DONE)
        self._done = True

    def _error(self, error: dict, out: list) -> None:
        out.append(b"data: " + _dumps(error) + b"\n\n")

    # -- event handling ---------------------------------------------------

    def _handle(self, event_name: str, data: bytes, out: list) -> None:
        obj = _loads(data)
        if not isinstance(obj, dict):
            return
        kind = obj.get("type") or event_name
        if self._id is None and kind not in ("ping", "error"):
            msg = obj.get("message") if kind == "message_start" else None
            self._start(msg.get("id") if isinstance(msg, dict) else None, out)
        if kind == "content_block_delta":
            delta = obj.get("delta")
            if not isinstance(delta, dict):
                return
            dtype = delta.get("type")
            if dtype == "text_delta":
                self._content(delta.get("text"), out)
            elif dtype == "input_json_delta":
                partial = delta.get("partial_json")
                k = self._tool_index.get(obj.get("index"))  # type: ignore[arg-type]
                if partial and k is not None:
                    self._delta(
                        b'{"tool_calls":[{"index":' + str(k).encode()
                        + b',"function":{"arguments":' + _dumps(partial) + b"}}]}",
                        out,
                    )
            elif dtype == "thinking_delta":
                self._reasoning(delta.get("thinking"), out)
            # signature_delta / citations_delta have no chunk form
        elif kind == "content_block_start":
            block = obj.get("content_block")
            if not isinstance(block, dict):
                return
            btype = block.get("type")
            if btype == "text":  # a block may start with text already in it
                self._content(block.get("text"), out)
            elif btype == "tool_use":
                k = len(self._tool_index)
                self._tool_index[obj.get("index")] = k  # type: ignore[index]
                call = {
                    "index": k,
                    "id": block.get("id") or new_tool_call_id(),
                    "type": "function",
                    "function": {"name": block.get("name") or "", "arguments": ""},
                }
                self._delta(b'{"tool_calls":[' + _dumps(call) + b"]}", out)
            elif btype == "thinking":
                self._reasoning(block.get("thinking"), out)
        elif kind == "message_start":
            msg = obj.get("message")
            if isinstance(msg, dict):
                self._counts = list(messages_usage_counts(msg.get("usage")))
        elif kind == "message_delta":
            usage = obj.get("usage")
            if isinstance(usage, dict):
                # Counters are cumulative; those present replace the earlier values.
                new = messages_usage_counts(usage)
                for i, key in enumerate(
                    ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens")
                ):
                    if usage.get(key) is not None:
                        self._counts[i] = new[i]
                if new[4]:
                    self._counts[4] = new[4]
            delta = obj.get("delta")
            stop_reason = delta.get("stop_reason") if isinstance(delta, dict) else None
            if stop_reason:
                self._finish = finish_reason_from_stop(stop_reason)
                self._send_finish(out)
        elif kind == "message_stop":
            self._complete(out)
        elif kind == "error":
            err = obj.get("error")
            etype = err.get("type") if isinstance(err, dict) else None
            status = status_for_anthropic_type(etype) if isinstance(etype, str) else 500
            self._error(chat_error_object(status, parse_error(status, data)), out)
            self._done = True
        # ping, content_block_stop and unknown events carry nothing for the client

    def _end_cut_short(self, out: list, message: str = TRUNCATED_MESSAGE) -> None:
        self._error({"error": {"message": message, "type": "server_error", "param": None, "code": None}}, out)
        out.append(_DONE)


class ChatStreamToMessages(_StreamTranslator):
    """OpenAI ``chat.completion.chunk`` SSE -> Anthropic Messages SSE."""

    def __init__(self, *, model: str) -> None:
        super().__init__(model)
        self._next_index = 0  # next Anthropic content block index
        self._open: str | None = None  # kind of the open block: "text", "thinking", "tool"
        self._open_index = -1
        self._tools: dict[int, list] = {}  # OpenAI tool_calls index -> [block index, call id]
        self._refused = False
        self._first_id: Any = None  # the upstream id, kept until message_start is sent

    # -- output helpers ---------------------------------------------------

    def _start(self, chunk_id: Any, out: list) -> None:
        self._id = message_id_from(chunk_id)
        fresh, read, write, _, _ = self._counts  # output is not known yet
        message = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": messages_usage_block(fresh, read, write, 0),
        }
        out.append(encode_event("message_start", _dumps({"type": "message_start", "message": message})))

    def _close_block(self, out: list) -> None:
        if self._open is not None:
            out.append(
                b'event: content_block_stop\ndata: {"type":"content_block_stop","index":'
                + str(self._open_index).encode() + b"}\n\n"
            )
            self._open = None

    def _open_block(self, kind: str, block: dict, out: list) -> int:
        self._close_block(out)
        index = self._next_index
        self._next_index += 1
        self._open = kind
        self._open_index = index
        out.append(
            encode_event(
                "content_block_start",
                _dumps({"type": "content_block_start", "index": index, "content_block": block}),
            )
        )
        return index

    def _block_delta(self, index: int, delta: bytes, out: list) -> None:
        out.append(
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
            + str(index).encode() + b',"delta":' + delta + b"}\n\n"
        )

    def _text(self, text: str, out: list) -> None:
        if self._open != "text":
            self._open_block("text", {"type": "text", "text": ""}, out)
        self._block_delta(self._open_index, b'{"type":"text_delta","text":' + _dumps(text) + b"}", out)

    def _thinking(self, text: str, out: list) -> None:
        if self._open != "thinking":
            self._open_block("thinking", {"type": "thinking", "thinking": "", "signature": ""}, out)
        self._block_delta(self._open_index, b'{"type":"thinking_delta","thinking":' + _dumps(text) + b"}", out)

    def _tool_calls(self, calls: list, out: list) -> None:
        for position, call in enumerate(calls):
            if not isinstance(call, dict):
                continue
            oi = call.get("index")
            if type(oi) is not int:
                oi = position
            call_id = call.get("id")
            fn = call.get("function")
            if not isinstance(fn, dict):
                fn = {}
            entry = self._tools.get(oi)
            if entry is None or (call_id and call_id != entry[1]):
                # A new call (some providers reuse index 0 with a fresh id).
                cid = call_id if isinstance(call_id, str) and call_id else new_tool_call_id()
                block = {"type": "tool_use", "id": cid, "name": fn.get("name") or "", "input": {}}
                entry = self._tools[oi] = [self._open_block("tool", block, out), cid]
            arguments = fn.get("arguments")
            if isinstance(arguments, str) and arguments:
                # Fragments of a call whose block was already closed (interleaved
                # parallel calls) still go to that call's index.
                self._block_delta(
                    entry[0], b'{"type":"input_json_delta","partial_json":' + _dumps(arguments) + b"}", out
                )

    def _complete(self, out: list) -> None:
        if self._id is None:
            self._start(self._first_id, out)
        self._close_block(out)
        stop_reason = "refusal" if self._refused else stop_reason_from_finish(self._finish, bool(self._tools))
        out.append(
            encode_event(
                "message_delta",
                _dumps(
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                        "usage": messages_usage_block(*self._counts),
                    }
                ),
            )
        )
        out.append(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
        self._done = True

    def _error(self, status: int, data: bytes, out: list) -> None:
        self._close_block(out)
        out.append(encode_event("error", _dumps(messages_error_object(status, parse_error(status, data)))))

    # -- event handling ---------------------------------------------------

    def _handle(self, event_name: str, data: bytes, out: list) -> None:
        if data[:6] == b"[DONE]" or data.strip() == b"[DONE]":
            self._complete(out)
            return
        obj = _loads(data)
        if not isinstance(obj, dict):
            return
        err = obj.get("error")
        if err is not None or event_name == "error":
            code = err.get("code") if isinstance(err, dict) else None
            status = code if type(code) is int and 400 <= code < 600 else 500
            if self._id is None:
                self._start(self._first_id or obj.get("id"), out)
            self._error(status, data, out)
            self._done = True
            return
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self._counts = list(chat_usage_counts(usage))
        choices = obj.get("choices")
        if self._id is None:
            # message_start waits for the first chunk with something to show (the role chunk and
            # usage-only chunks carry nothing), so that an input token count the provider reports
            # early is in it, as Anthropic's own message_start always has it.
            if self._first_id is None:
                self._first_id = obj.get("id")
            if not _shows_something(choices):
                return
            self._start(self._first_id, out)
        if not isinstance(choices, list):
            return
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # only the first choice is translated
            delta = choice.get("delta")
            if isinstance(delta, dict):
                reasoning = delta.get("reasoning_content")
                if not isinstance(reasoning, str):
                    reasoning = delta.get("reasoning")
                if isinstance(reasoning, str) and reasoning:
                    self._thinking(reasoning, out)
                content = delta.get("content")
                if isinstance(content, str) and content:
                    self._text(content, out)
                refusal = delta.get("refusal")
                if isinstance(refusal, str) and refusal:
                    self._text(refusal, out)
                    self._refused = True
                tool_calls = delta.get("tool_calls")
                if isinstance(tool_calls, list) and tool_calls:
                    self._tool_calls(tool_calls, out)
            finish = choice.get("finish_reason")
            if finish:
                self._finish = finish

    def _end_cut_short(self, out: list, message: str = TRUNCATED_MESSAGE) -> None:
        if self._id is None:
            self._start(self._first_id, out)
        self._close_block(out)
        error = {"type": "error", "error": {"type": "api_error", "message": message}}
        out.append(encode_event("error", _dumps(error)))
        out.append(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')


def _shows_something(choices: Any) -> bool:
    """Whether a chunk's first choice carries text, reasoning, a refusal, tool calls or a finish."""
    if not isinstance(choices, list):
        return False
    for choice in choices:
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue
        if choice.get("finish_reason"):
            return True
        delta = choice.get("delta")
        if isinstance(delta, dict) and any(
            delta.get(key) for key in ("content", "reasoning_content", "reasoning", "refusal", "tool_calls")
        ):
            return True
    return False
