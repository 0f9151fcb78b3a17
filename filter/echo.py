"""The built-in `echo` provider: answers inside the gateway, naming the model that was chosen.

It makes `make run` useful on a machine with no keys and no network, and shows routing at work.
Responses are OpenAI chat completions (or SSE chunks); Anthropic clients get them translated.
"""

from __future__ import annotations

import time
import uuid

import orjson

from filter.errors import ClientApi
from filter.inbound import ClientRequest


def echo_text(request: ClientRequest, slug: str, route: str | None) -> str:
    if request.api is ClientApi.RESPONSES:
        last = _last_input_text(request.body.get("input"))
    else:
        last = _last_user_text(request.messages)
    via = f" (route: {route})" if route else ""
    return f"[{slug}{via}] {last}" if last else f"[{slug}{via}]"


def echo_completion(text: str, model: str) -> bytes:
    words = text.split()
    return orjson.dumps(
        {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": len(words), "total_tokens": len(words)},
        }
    )


def echo_stream(text: str, model: str, usage: bool = True) -> bytes:
    """The same answer as SSE chunks, one word per chunk, ending with [DONE]; before it, with
    `usage`, a chunk with the usage and no choices (what stream_options.include_usage asks)."""
    ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())

    def chunk(delta: dict, finish: str | None = None, usage: dict | None = None, choices: bool = True) -> bytes:
        event = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else []}
        if usage is not None:
            event["usage"] = usage
        return b"data: " + orjson.dumps(event) + b"\n\n"

    words = text.split(" ")
    parts = [chunk({"role": "assistant", "content": ""})]
    parts += [chunk({"content": (" " if i else "") + w}) for i, w in enumerate(words)]
    parts.append(chunk({}, "stop"))
    if usage:
        parts.append(chunk({}, usage={"prompt_tokens": 0, "completion_tokens": len(words), "total_tokens": len(words)},
                           choices=False))
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def _last_user_text(messages: list[dict]) -> str:
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(  # a part's text may be anything a client sent: only strings are echoed
                p["text"] for p in content
                if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            )
    return ""


def _last_input_text(items) -> str:
    """The latest user text of a Responses `input` (a string, or items)."""
    if isinstance(items, str):
        return items
    for item in reversed(items or ()):
        if item.get("role") != "user" or item.get("type", "message") != "message":
            continue
        content = item.get("content")
        if isinstance(content, str):
            return content
        return " ".join(p.get("text", "") for p in content or () if isinstance(p, dict) and p.get("type") == "input_text")
    return ""
