"""Non-streaming response bodies: Anthropic ``message`` <-> OpenAI ``chat.completion``."""

from __future__ import annotations

import time

from .common import (
    chat_id_from,
    finish_reason_from_stop,
    message_id_from,
    new_tool_call_id,
    parse_arguments,
    split_assistant_content,
    stop_reason_from_finish,
)
from .usage import chat_usage_block, chat_usage_counts, messages_usage_block, messages_usage_counts

__all__ = ["messages_response_to_chat", "chat_response_to_messages"]


def messages_response_to_chat(body: dict, *, model: str) -> dict:
    """Anthropic Messages response -> OpenAI ``chat.completion`` shown as ``model``."""
    thinking_blocks: list = []
    content = body.get("content")
    texts, reasoning, tool_calls = (
        split_assistant_content(content, thinking_blocks) if isinstance(content, list) else ([], [], [])
    )

    message: dict = {
        "role": "assistant",
        "content": "".join(texts) if texts or not tool_calls else None,
        "refusal": None,
    }
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if thinking_blocks:
        # Signed blocks, so that a client can hand them back in a tool loop.
        message["thinking_blocks"] = thinking_blocks
    if tool_calls:
        message["tool_calls"] = tool_calls

    return {
        "id": chat_id_from(body.get("id")),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason_from_stop(body.get("stop_reason")),
            }
        ],
        "usage": chat_usage_block(*messages_usage_counts(body.get("usage"))),
    }


def chat_response_to_messages(body: dict, *, model: str) -> dict:
    """OpenAI ``chat.completion`` -> Anthropic ``message`` shown as ``model``.

    Only the first choice is used.
    """
    choices = body.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message")
    if not isinstance(message, dict):
        message = {}

    content: list = []
    reasoning = message.get("reasoning_content")
    if not isinstance(reasoning, str):
        reasoning = message.get("reasoning")  # vLLM / OpenRouter spelling
    if isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = message.get("content")
    if isinstance(text, list):  # some providers answer with content parts
        text = "".join(p.get("text", "") for p in text if isinstance(p, dict) and isinstance(p.get("text"), str))
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        content.append({"type": "text", "text": refusal})

    tool_calls = message.get("tool_calls")
    has_tools = False
    if isinstance(tool_calls, list):
        for call in tool_calls:
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict):
                continue
            call_id = call.get("id")
            content.append(
                {
                    "type": "tool_use",
                    "id": call_id if isinstance(call_id, str) and call_id else new_tool_call_id(),
                    "name": fn.get("name") or "",
                    "input": parse_arguments(fn.get("arguments")),
                }
            )
            has_tools = True

    stop_reason = stop_reason_from_finish(choice.get("finish_reason"), has_tools)
    if isinstance(refusal, str) and refusal:
        stop_reason = "refusal"

    return {
        "id": message_id_from(body.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": messages_usage_block(*chat_usage_counts(body.get("usage"))),
    }
