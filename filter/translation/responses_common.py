"""The OpenAI Responses API's shapes, shared by the translators from Chat Completions and Messages.

`ResponseBuilder` assembles one Responses answer from what a provider says — text, refusals,
reasoning, tool calls, the end — and, when streaming, writes the Responses SSE event sequence as
it goes: `response.created`, `response.in_progress`, per output item `response.output_item.added`
… `response.output_item.done` (with content-part, text, reasoning and argument events in between),
and exactly one terminal event (`response.completed`, `response.incomplete` or `response.failed`).
JSON answers use the same builder without events, so both carry the same object.

`ToolNames` remembers how the client's tools were expressed upstream (custom tools as a function
taking one `input` string, namespaced tools as `namespace__name`) so that calls map back.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from .common import TranslationError

__all__ = [
    "ToolNames",
    "ResponseBuilder",
    "new_response_id",
    "response_echo",
    "responses_usage_block",
    "pack_thinking",
    "unpack_thinking",
    "NAMESPACE_SEPARATOR",
    "CUSTOM_INPUT",
]

_dumps = orjson.dumps

# A namespaced tool travels upstream as one function named `namespace__name` (providers allow
# letters, digits, `_` and `-` in tool names, not dots).
NAMESPACE_SEPARATOR = "__"
# A custom (freeform) tool travels upstream as a function with this one string parameter.
CUSTOM_INPUT = "input"

# Reasoning items the gateway makes are marked in `encrypted_content` (opaque to clients, as
# OpenAI's is): no OpenAI model can read them, so they are left out when a conversation moves to
# one. Those made from Anthropic thinking blocks carry the exact block, so a client handing the
# item back gives Anthropic the signed block it requires in a tool loop.
GATEWAY_REASONING = "switchyard."
_THINKING_PREFIX = GATEWAY_REASONING + "anthropic."


def new_response_id() -> str:
    return "resp_" + secrets.token_hex(24)


def _item_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def pack_thinking(block: dict) -> str:
    return _THINKING_PREFIX + base64.urlsafe_b64encode(_dumps(block)).decode()


def without_gateway_reasoning(items: Any) -> Any:
    """Input items less the reasoning items the gateway made (for a provider with the Responses API)."""
    if not isinstance(items, list):
        return items
    return [item for item in items if not (
        isinstance(item, dict) and item.get("type") == "reasoning"
        and str(item.get("encrypted_content") or "").startswith(GATEWAY_REASONING))]


def unpack_thinking(encrypted: Any) -> dict | None:
    """The Anthropic thinking block a gateway-made reasoning item carries, or None (not ours)."""
    if not isinstance(encrypted, str) or not encrypted.startswith(_THINKING_PREFIX):
        return None
    try:
        block = orjson.loads(base64.urlsafe_b64decode(encrypted[len(_THINKING_PREFIX):]))
    except (ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(block, dict) or block.get("type") not in ("thinking", "redacted_thinking"):
        return None
    return block


def responses_usage_block(fresh: int, read: int, write: int, output: int, reasoning: int = 0) -> dict:
    """Raw counters (see usage.py) -> a Responses `usage` object."""
    total_input = fresh + read + write
    return {
        "input_tokens": total_input,
        "input_tokens_details": {"cached_tokens": read, "cache_write_tokens": write},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": total_input + output,
    }


# Request fields a Response object repeats, with the API's defaults when the client sent none.
_ECHO_DEFAULTS: dict[str, Any] = {
    "instructions": None,
    "max_output_tokens": None,
    "metadata": {},
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "temperature": None,
    "tool_choice": "auto",
    "tools": [],
    "top_p": None,
    "truncation": "disabled",
    "user": None,
}


def response_echo(body: dict) -> dict:
    """What the answer repeats of the client's request (`tools`, `tool_choice`, `instructions`…)."""
    echo = {key: body.get(key, default) if body.get(key) is not None else default
            for key, default in _ECHO_DEFAULTS.items()}
    if not isinstance(echo["instructions"], (str, list)):
        echo["instructions"] = None
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict):
        echo["reasoning"] = {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")}
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    echo["text"] = {"format": fmt if isinstance(fmt, dict) else {"type": "text"}}
    echo["store"] = body.get("store") is not False
    return echo


# ----------------------------------------------------------------------------------- tool names


@dataclass(frozen=True, slots=True)
class ToolNames:
    """How the client's tools were named upstream, to turn calls back into Responses items."""

    custom: frozenset[str] = frozenset()  # upstream names of custom (freeform) tools
    namespaced: tuple[tuple[str, str, str], ...] = ()  # (upstream name, namespace, name)

    def resolve(self, upstream_name: str) -> tuple[str, str | None, bool]:
        """(name, namespace or None, custom?) of the tool an upstream call names."""
        custom = upstream_name in self.custom
        for joined, namespace, name in self.namespaced:
            if joined == upstream_name:
                return name, namespace, custom
        return upstream_name, None, custom

    @staticmethod
    def upstream_name(name: str, namespace: Any) -> str:
        return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if isinstance(namespace, str) and namespace else name


def custom_input(arguments: str) -> str:
    """A custom tool's freeform input from the upstream function call's JSON arguments."""
    try:
        value = orjson.loads(arguments) if arguments else {}
    except orjson.JSONDecodeError:
        return arguments  # the model wrote the input bare: keep it as it is
    if isinstance(value, dict) and isinstance(value.get(CUSTOM_INPUT), str):
        return value[CUSTOM_INPUT]
    return arguments


# ----------------------------------------------------------------------------------- the builder


@dataclass(slots=True)
class _Open:
    """An output item being written."""

    index: int
    item: dict
    kind: str  # "message" | "reasoning" | "function_call" | "custom_tool_call"
    parts: list = field(default_factory=list)  # message: [(type, [texts])]; reasoning: [texts]
    arguments: list = field(default_factory=list)


_STREAM_FAILURE_CODES = {429: "rate_limit_exceeded"}


def failure_code(status: int) -> str:
    """The Responses `error.code` of a failed answer (the API's codes are few)."""
    return _STREAM_FAILURE_CODES.get(status, "server_error")


class ResponseBuilder:
    """One Responses answer, built from provider events; writes SSE events when `stream`."""

    def __init__(self, *, model: str, echo: dict, tools: ToolNames, stream: bool) -> None:
        self.id = new_response_id()
        self._model = model
        self._echo = echo
        self._tools = tools
        self._stream = stream
        self._created_at = int(time.time())
        self._seq = 0
        self._started = False
        self._items: list[_Open] = []  # every item, in output order
        self._open_content: _Open | None = None  # the message or reasoning item being written
        self._calls: dict[Any, _Open] = {}  # open tool calls by the upstream's key
        self.response: dict | None = None  # the final object, once finished

    # -- output

    def _event(self, kind: str, data: dict, out: list) -> None:
        if not self._stream:
            return
        data["type"] = kind
        data["sequence_number"] = self._seq
        self._seq += 1
        out.append(b"event: " + kind.encode() + b"\ndata: " + _dumps(data) + b"\n\n")

    def _snapshot(self, status: str, output: list, usage: dict | None = None,
                  incomplete: str | None = None, error: dict | None = None) -> dict:
        return {
            "id": self.id,
            "object": "response",
            "created_at": self._created_at,
            "status": status,
            "error": error,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "model": self._model,
            "output": output,
            "usage": usage,
            **self._echo,
        }

    def start(self, out: list) -> None:
        if self._started:
            return
        self._started = True
        snapshot = self._snapshot("in_progress", [])
        self._event("response.created", {"response": snapshot}, out)
        self._event("response.in_progress", {"response": snapshot}, out)

    def _add(self, kind: str, item: dict, out: list) -> _Open:
        self.start(out)
        entry = _Open(len(self._items), item, kind)
        self._items.append(entry)
        self._event("response.output_item.added", {"output_index": entry.index, "item": dict(item)}, out)
        return entry

    # -- message text and refusals

    def text(self, delta: str, out: list) -> None:
        self._message_part("output_text", delta, out)

    def refusal(self, delta: str, out: list) -> None:
        self._message_part("refusal", delta, out)

    def _message_part(self, part_type: str, delta: str, out: list) -> None:
        if not delta:
            return
        entry = self._open_content
        if entry is None or entry.kind != "message":
            self._close_content(out)
            entry = self._open_content = self._add("message", {
                "id": _item_id("msg"), "type": "message", "role": "assistant", "status": "in_progress",
                "content": []}, out)
        if not entry.parts or entry.parts[-1][0] != part_type:
            if entry.parts:
                self._close_part(entry, out)
            entry.parts.append((part_type, []))
            self._event("response.content_part.added", {
                "item_id": entry.item["id"], "output_index": entry.index, "content_index": len(entry.parts) - 1,
                "part": _empty_part(part_type)}, out)
        entry.parts[-1][1].append(delta)
        kind = "response.output_text.delta" if part_type == "output_text" else "response.refusal.delta"
        data = {"item_id": entry.item["id"], "output_index": entry.index, "content_index": len(entry.parts) - 1,
                "delta": delta}
        if part_type == "output_text":
            data["logprobs"] = []
        self._event(kind, data, out)

    def _close_part(self, entry: _Open, out: list) -> dict:
        part_type, texts = entry.parts[-1]
        text = "".join(texts)
        where = {"item_id": entry.item["id"], "output_index": entry.index, "content_index": len(entry.parts) - 1}
        if part_type == "output_text":
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            self._event("response.output_text.done", {**where, "text": text, "logprobs": []}, out)
        else:
            part = {"type": "refusal", "refusal": text}
            self._event("response.refusal.done", {**where, "refusal": text}, out)
        self._event("response.content_part.done", {**where, "part": part}, out)
        return part

    # -- reasoning

    def reasoning(self, delta: str, out: list) -> None:
        """Reasoning text (a provider's `reasoning_content`, Anthropic thinking)."""
        entry = self._reasoning_item(out)
        if not delta:
            return
        if not entry.parts:
            self._event("response.content_part.added", {
                "item_id": entry.item["id"], "output_index": entry.index, "content_index": 0,
                "part": {"type": "reasoning_text", "text": ""}}, out)
        entry.parts.append(delta)
        self._event("response.reasoning_text.delta", {
            "item_id": entry.item["id"], "output_index": entry.index, "content_index": 0, "delta": delta}, out)

    def reasoning_sealed(self, encrypted_content: str, out: list) -> None:
        """The opaque form of the reasoning item being written (or of a new one)."""
        self._reasoning_item(out).item["encrypted_content"] = encrypted_content

    def _reasoning_item(self, out: list) -> _Open:
        entry = self._open_content
        if entry is None or entry.kind != "reasoning":
            self._close_content(out)
            entry = self._open_content = self._add("reasoning", {
                "id": _item_id("rs"), "type": "reasoning", "summary": [],
                "encrypted_content": GATEWAY_REASONING + "text"}, out)
        return entry

    def end_reasoning(self, out: list) -> None:
        if self._open_content is not None and self._open_content.kind == "reasoning":
            self._close_content(out)

    # -- tool calls

    def call_start(self, key: Any, call_id: str, upstream_name: str, out: list) -> None:
        self._close_content(out)
        name, namespace, custom = self._tools.resolve(upstream_name)
        if custom:
            item: dict = {"id": _item_id("ctc"), "type": "custom_tool_call", "call_id": call_id, "name": name,
                          "input": ""}
        else:
            item = {"id": _item_id("fc"), "type": "function_call", "status": "in_progress", "call_id": call_id,
                    "name": name, "arguments": ""}
        if namespace is not None:
            item["namespace"] = namespace
        self._calls[key] = self._add(item["type"], item, out)

    def call_arguments(self, key: Any, fragment: str, out: list) -> None:
        entry = self._calls.get(key)
        if entry is None or not fragment:
            return
        entry.arguments.append(fragment)
        if entry.kind == "function_call":  # a custom tool's input is known only whole (it is JSON upstream)
            self._event("response.function_call_arguments.delta", {
                "item_id": entry.item["id"], "output_index": entry.index, "delta": fragment}, out)

    def has_call(self, key: Any) -> bool:
        return key in self._calls

    def end_call(self, key: Any, out: list) -> None:
        entry = self._calls.pop(key, None)
        if entry is not None:
            self._finish_item(entry, out)

    # -- closing items

    def _close_content(self, out: list) -> None:
        entry, self._open_content = self._open_content, None
        if entry is not None:
            self._finish_item(entry, out)

    def _finish_item(self, entry: _Open, out: list, status: str = "completed") -> None:
        item = entry.item
        where = {"item_id": item["id"], "output_index": entry.index}
        if entry.kind == "message":
            content = []
            if entry.parts:
                content = [_final_part(p) for p in entry.parts[:-1]]
                content.append(self._close_part(entry, out))
            item.update(content=content, status=status)
        elif entry.kind == "reasoning":
            if entry.parts:
                text = "".join(entry.parts)
                self._event("response.reasoning_text.done", {**where, "content_index": 0, "text": text}, out)
                part = {"type": "reasoning_text", "text": text}
                self._event("response.content_part.done", {**where, "content_index": 0, "part": part}, out)
                item["content"] = [part]
            item["status"] = status
        elif entry.kind == "function_call":
            arguments = "".join(entry.arguments)
            self._event("response.function_call_arguments.done", {**where, "arguments": arguments}, out)
            item.update(arguments=arguments, status=status)
        else:
            value = custom_input("".join(entry.arguments))
            if value:
                self._event("response.custom_tool_call_input.delta", {**where, "delta": value}, out)
            self._event("response.custom_tool_call_input.done", {**where, "input": value}, out)
            item["input"] = value
        self._event("response.output_item.done", {"output_index": entry.index, "item": item}, out)

    def _close_all(self, out: list, status: str = "completed") -> None:
        """Every item still open is finished, in output order."""
        pending = sorted([*self._calls.values(), *([self._open_content] if self._open_content else [])],
                         key=lambda e: e.index)
        self._calls.clear()
        self._open_content = None
        for entry in pending:
            self._finish_item(entry, out, status)

    # -- the end

    def finish(self, counts, out: list, *, incomplete: str | None = None) -> dict:
        """The model finished (`incomplete`: why it stopped early). Writes the terminal event."""
        self.start(out)
        self._close_all(out)
        status = "incomplete" if incomplete else "completed"
        self.response = self._snapshot(status, [e.item for e in self._items], responses_usage_block(*counts),
                                       incomplete)
        self._event(f"response.{status}", {"response": self.response}, out)
        return self.response

    def fail(self, status: int, message: str, counts, out: list) -> dict:
        """The answer failed (an upstream error, a stream cut short): `response.failed`."""
        self.start(out)
        self._close_all(out, "incomplete")
        error = {"code": failure_code(status), "message": message}
        self.response = self._snapshot("failed", [e.item for e in self._items], responses_usage_block(*counts),
                                       error=error)
        self._event("response.failed", {"response": self.response}, out)
        return self.response


def _empty_part(part_type: str) -> dict:
    if part_type == "output_text":
        return {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    return {"type": "refusal", "refusal": ""}


def _final_part(part: tuple) -> dict:
    part_type, texts = part
    if part_type == "output_text":
        return {"type": "output_text", "text": "".join(texts), "annotations": [], "logprobs": []}
    return {"type": "refusal", "refusal": "".join(texts)}


def check_no_state(body: dict) -> None:
    """Fields that need OpenAI's own server-side state cannot go to another provider."""
    if body.get("previous_response_id") is not None:
        raise TranslationError("previous_response_id names a response this gateway does not know",
                               "previous_response_id")
    for key in ("conversation", "prompt"):
        if body.get(key) is not None:
            raise TranslationError(f"'{key}' refers to state kept by OpenAI; only OpenAI models can take it", key)
    if body.get("background") is True:
        raise TranslationError("background responses are served by OpenAI models only", "background")
