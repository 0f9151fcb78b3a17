"""Shared vocabulary of the translators: ids, stop reasons, reasoning effort, content blocks."""

from __future__ import annotations

import secrets
from typing import Any

import orjson

__all__ = [
    "TranslationError",
    "new_chat_id",
    "new_message_id",
    "new_tool_call_id",
    "chat_id_from",
    "message_id_from",
    "STOP_REASON_TO_FINISH",
    "FINISH_TO_STOP_REASON",
    "finish_reason_from_stop",
    "stop_reason_from_finish",
    "EFFORT_TO_BUDGET",
    "MIN_THINKING_BUDGET",
    "effort_from_budget",
    "parse_arguments",
    "split_assistant_content",
]


class TranslationError(ValueError):
    """The request cannot be expressed in the target format (answer 400)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def new_chat_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def new_tool_call_id() -> str:
    return "call_" + secrets.token_hex(12)


def chat_id_from(source_id: Any) -> str:
    """Id for an OpenAI completion made from an Anthropic message id."""
    if not isinstance(source_id, str) or not source_id:
        return new_chat_id()
    return source_id if source_id.startswith("chatcmpl-") else "chatcmpl-" + source_id


def message_id_from(source_id: Any) -> str:
    """Id for an Anthropic message made from an OpenAI completion id."""
    if not isinstance(source_id, str) or not source_id:
        return new_message_id()
    return source_id if source_id.startswith("msg_") else "msg_" + source_id.removeprefix("chatcmpl-")


# Anthropic stop_reason -> OpenAI finish_reason
STOP_REASON_TO_FINISH: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# OpenAI finish_reason -> Anthropic stop_reason
FINISH_TO_STOP_REASON: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def finish_reason_from_stop(stop_reason: Any) -> str:
    return STOP_REASON_TO_FINISH.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def stop_reason_from_finish(finish_reason: Any, has_tool_calls: bool = False) -> str:
    """Map a finish reason; providers that answer "stop" after tool calls get tool_use."""
    reason = FINISH_TO_STOP_REASON.get(finish_reason, "end_turn") if isinstance(finish_reason, str) else "end_turn"
    if has_tool_calls and reason == "end_turn":
        return "tool_use"
    return reason


# OpenAI reasoning_effort -> Anthropic thinking.budget_tokens ("none" disables thinking).
MIN_THINKING_BUDGET = 1024
EFFORT_TO_BUDGET: dict[str, int] = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 32768,
    "max": 65536,
}


def effort_from_budget(budget: Any) -> str:
    """Anthropic thinking budget -> OpenAI reasoning_effort (low / medium / high)."""
    if not isinstance(budget, int) or budget < 4096:
        return "low"
    if budget < 16384:
        return "medium"
    return "high"


def parse_arguments(arguments: Any) -> dict:
    """OpenAI tool-call ``arguments`` (a JSON string) -> Anthropic ``input`` object.

    Unparseable or non-object arguments become ``{}`` (Anthropic requires an object).
    """
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments:
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def split_assistant_content(content: list, thinking_blocks: list | None = None) -> tuple[list, list, list]:
    """Anthropic assistant content blocks -> (texts, reasoning, tool_calls) in OpenAI form.

    ``reasoning`` holds every string ``thinking`` (empty ones too).  Given a list,
    ``thinking_blocks`` also receives the thinking / redacted_thinking blocks as they
    must be handed back to Anthropic (signed).  Other block types have no OpenAI form.
    """
    texts: list = []
    reasoning: list = []
    tool_calls: list = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            if isinstance(text, str):
                texts.append(text)
        elif kind == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
        elif kind == "thinking":
            thinking = block.get("thinking")
            if isinstance(thinking, str):
                reasoning.append(thinking)
            if thinking_blocks is not None:
                thinking_blocks.append(
                    {"type": "thinking", "thinking": thinking or "", "signature": block.get("signature") or ""}
                )
        elif kind == "redacted_thinking" and thinking_blocks is not None:
            thinking_blocks.append({"type": "redacted_thinking", "data": block.get("data") or ""})
    return texts, reasoning, tool_calls
