"""OpenAI Responses <-> Anthropic Messages: a Responses client served by a Claude model.

The request goes through the Chat Completions form (`responses_chat`) and then the Chat ->
Messages translator, so Anthropic's rules (alternating turns, merged tool results, `max_tokens`,
thinking budgets, temperature range) live in one place. Signed thinking blocks survive the trip:
the gateway hands them to the client inside reasoning items' `encrypted_content` and gets them
back the same way. Answers and streams are translated directly into Responses objects and events.
"""

from __future__ import annotations

from typing import Any

import orjson

from .errors import parse_error, status_for_anthropic_type
from .requests import chat_request_to_messages
from .responses_chat import responses_request_to_chat
from .responses_common import ResponseBuilder, ToolNames, pack_thinking
from .streams import TRUNCATED_MESSAGE, _StreamTranslator, _loads
from .usage import messages_usage_counts

__all__ = ["responses_request_to_messages", "messages_response_to_responses", "MessagesStreamToResponses"]

_INCOMPLETE_STOP = {
    "max_tokens": "max_output_tokens",
    "model_context_window_exceeded": "max_output_tokens",
    "refusal": "content_filter",
}


def responses_request_to_messages(body: dict, *, model: str, default_max_tokens: int) -> dict:
    """OpenAI Responses request -> Anthropic Messages request for ``model``."""
    chat = responses_request_to_chat(body, model=model, keep_signatures=True)
    return chat_request_to_messages(chat, model=model, default_max_tokens=default_max_tokens)


def _sealed(block: dict) -> str:
    if block.get("type") == "redacted_thinking":
        return pack_thinking({"type": "redacted_thinking", "data": block.get("data") or ""})
    return pack_thinking({"type": "thinking", "thinking": block.get("thinking") or "",
                          "signature": block.get("signature") or ""})


def messages_response_to_responses(body: dict, *, model: str, echo: dict, tools: ToolNames) -> dict:
    """Anthropic message -> Responses object shown as ``model``."""
    builder = ResponseBuilder(model=model, echo=echo, tools=tools, stream=False)
    sink: list = []
    builder.start(sink)
    content = body.get("content")
    for i, block in enumerate(content if isinstance(content, list) else ()):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            builder.text(block["text"], sink)
        elif kind in ("thinking", "redacted_thinking"):
            builder.reasoning(block.get("thinking") or "", sink)
            builder.reasoning_sealed(_sealed(block), sink)
            builder.end_reasoning(sink)
        elif kind == "tool_use":
            builder.call_start(i, block.get("id") or f"toolu_{i}", block.get("name") or "", sink)
            builder.call_arguments(i, orjson.dumps(block.get("input") or {}).decode(), sink)
            builder.end_call(i, sink)
        # server tool blocks are never asked for (hosted tools are not sent to Anthropic)
    counts = messages_usage_counts(body.get("usage"))
    return builder.finish(counts, sink, incomplete=_INCOMPLETE_STOP.get(body.get("stop_reason")))


class MessagesStreamToResponses(_StreamTranslator):
    """Anthropic Messages SSE -> Responses SSE events."""

    def __init__(self, *, model: str, echo: dict, tools: ToolNames) -> None:
        super().__init__(model)
        self.builder = ResponseBuilder(model=model, echo=echo, tools=tools, stream=True)
        self._thinking: dict[Any, dict] = {}  # open thinking blocks by index: text and signature

    @property
    def response(self) -> dict | None:
        return self.builder.response

    def _handle(self, event_name: str, data: bytes, out: list) -> None:
        obj = _loads(data)
        if not isinstance(obj, dict):
            return
        kind = obj.get("type") or event_name
        builder = self.builder
        if kind == "error":
            err = obj.get("error")
            etype = err.get("type") if isinstance(err, dict) else None
            status = status_for_anthropic_type(etype) if isinstance(etype, str) else 500
            builder.fail(status, parse_error(status, data)["message"], self._counts, out)
            self._done = True
            return
        if kind == "ping":
            return
        builder.start(out)
        index = obj.get("index")
        if kind == "content_block_start":
            block = obj.get("content_block")
            if not isinstance(block, dict):
                return
            btype = block.get("type")
            if btype == "text":
                builder.text(block.get("text") or "", out)
            elif btype == "thinking":
                self._thinking[index] = {"type": "thinking", "thinking": [block.get("thinking") or ""],
                                         "signature": block.get("signature") or ""}
                builder.reasoning(block.get("thinking") or "", out)
            elif btype == "redacted_thinking":
                builder.reasoning_sealed(_sealed(block), out)
                builder.end_reasoning(out)
            elif btype == "tool_use":
                builder.call_start(index, block.get("id") or f"toolu_{index}", block.get("name") or "", out)
        elif kind == "content_block_delta":
            delta = obj.get("delta")
            if not isinstance(delta, dict):
                return
            dtype = delta.get("type")
            if dtype == "text_delta":
                builder.text(delta.get("text") or "", out)
            elif dtype == "input_json_delta":
                builder.call_arguments(index, delta.get("partial_json") or "", out)
            elif dtype == "thinking_delta" and index in self._thinking:
                self._thinking[index]["thinking"].append(delta.get("thinking") or "")
                builder.reasoning(delta.get("thinking") or "", out)
            elif dtype == "signature_delta" and index in self._thinking:
                self._thinking[index]["signature"] += delta.get("signature") or ""
        elif kind == "content_block_stop":
            thinking = self._thinking.pop(index, None)
            if thinking is not None:
                builder.reasoning_sealed(_sealed({**thinking, "thinking": "".join(thinking["thinking"])}), out)
                builder.end_reasoning(out)
            elif builder.has_call(index):
                builder.end_call(index, out)
        elif kind == "message_start":
            message = obj.get("message")
            if isinstance(message, dict):
                self._counts = list(messages_usage_counts(message.get("usage")))
        elif kind == "message_delta":
            usage = obj.get("usage")
            if isinstance(usage, dict):
                # Counters are cumulative; those present replace the earlier values.
                new = messages_usage_counts(usage)
                for i, key in enumerate(("input_tokens", "cache_read_input_tokens",
                                         "cache_creation_input_tokens", "output_tokens")):
                    if usage.get(key) is not None:
                        self._counts[i] = new[i]
                if new[4]:
                    self._counts[4] = new[4]
            delta = obj.get("delta")
            stop_reason = delta.get("stop_reason") if isinstance(delta, dict) else None
            if stop_reason:
                self._finish = stop_reason
        elif kind == "message_stop":
            self._complete(out)

    def _complete(self, out: list) -> None:
        self.builder.finish(self._counts, out, incomplete=_INCOMPLETE_STOP.get(self._finish))
        self._done = True

    def _end_cut_short(self, out: list, message: str = TRUNCATED_MESSAGE) -> None:
        self.builder.fail(502, message, self._counts, out)
