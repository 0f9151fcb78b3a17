"""Request bodies: OpenAI Chat Completions <-> Anthropic Messages.

Both translators build the target body from an allow-list: a field that is not
translated is never forwarded.  ``TRANSLATED_*`` and ``DROPPED_*`` name the
fields of each source format (unknown fields are dropped as well).
"""

from __future__ import annotations

from typing import Any

import orjson

from .common import (
    EFFORT_TO_BUDGET,
    MIN_THINKING_BUDGET,
    TranslationError,
    effort_from_budget,
    parse_arguments,
    split_assistant_content,
)

__all__ = [
    "chat_request_to_messages",
    "messages_request_to_chat",
    "TRANSLATED_CHAT_FIELDS",
    "DROPPED_CHAT_FIELDS",
    "TRANSLATED_MESSAGES_FIELDS",
    "DROPPED_MESSAGES_FIELDS",
]

# OpenAI chat-completions request fields that are translated to Anthropic.
TRANSLATED_CHAT_FIELDS: tuple[str, ...] = (
    "model",  # replaced by the upstream model id
    "messages",
    "max_completion_tokens",
    "max_tokens",
    "temperature",  # clamped to Anthropic's 0..1
    "top_p",
    "stop",
    "stream",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "user",
    "safety_identifier",  # used as metadata.user_id when user is absent
    "reasoning_effort",
)

# OpenAI chat-completions request fields with no Anthropic counterpart.
DROPPED_CHAT_FIELDS: tuple[str, ...] = (
    "audio",
    "frequency_penalty",
    "function_call",
    "functions",
    "logit_bias",
    "logprobs",
    "metadata",
    "modalities",
    "moderation",
    "n",
    "prediction",
    "presence_penalty",
    "prompt_cache_key",
    "prompt_cache_options",
    "prompt_cache_retention",
    "response_format",
    "seed",
    "service_tier",
    "store",
    "stream_options",  # Anthropic streams always carry usage
    "top_logprobs",
    "verbosity",
    "web_search_options",
)

# Anthropic Messages request fields that are translated to OpenAI.
TRANSLATED_MESSAGES_FIELDS: tuple[str, ...] = (
    "model",  # replaced by the upstream model id
    "messages",
    "system",
    "max_tokens",  # -> max_completion_tokens
    "temperature",
    "top_p",
    "stop_sequences",
    "stream",  # also adds stream_options.include_usage
    "tools",
    "tool_choice",
    "metadata",  # only metadata.user_id -> user
    "thinking",  # enabled -> reasoning_effort
    "output_config",  # only output_config.effort -> reasoning_effort
)

# Anthropic Messages request fields with no OpenAI counterpart.
DROPPED_MESSAGES_FIELDS: tuple[str, ...] = (
    "cache_control",
    "container",
    "context_management",
    "diagnostics",
    "inference_geo",
    "mcp_servers",
    "service_tier",
    "speed",
    "top_k",
    "user_profile_id",
    "workspace_id",
)

_EMPTY_SCHEMA = {"type": "object", "properties": {}}


def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_number(value: Any) -> bool:
    return (type(value) is int or type(value) is float)


# ---------------------------------------------------------------------------
# OpenAI -> Anthropic
# ---------------------------------------------------------------------------


def _text_block(text: str, part: dict | None = None) -> dict:
    block = {"type": "text", "text": text}
    if part is not None:
        cache_control = part.get("cache_control")
        if isinstance(cache_control, dict):
            block["cache_control"] = cache_control
    return block


def _parse_data_url(url: str, param: str) -> tuple[str, str]:
    """``data:<media type>;base64,<data>`` -> (media type, data)."""
    header, sep, data = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise TranslationError("only base64 data URLs are supported", param)
    media_type = header[5:-7].split(";", 1)[0]
    if not media_type:
        raise TranslationError("data URL without a media type", param)
    return media_type, data


def _image_block(part: dict, param: str) -> dict:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise TranslationError("image_url.url is required", param)
    if url.startswith("data:"):
        media_type, data = _parse_data_url(url, param)
        source = {"type": "base64", "media_type": media_type, "data": data}
    elif url.startswith(("http://", "https://")):
        source = {"type": "url", "url": url}
    else:
        raise TranslationError("image_url.url must be an http(s) or data URL", param)
    block = {"type": "image", "source": source}
    cache_control = part.get("cache_control")
    if isinstance(cache_control, dict):
        block["cache_control"] = cache_control
    return block


def _file_block(part: dict, param: str) -> dict:
    file = part.get("file")
    data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data, str) or not data:
        raise TranslationError("only inline file parts (file.file_data) are supported", param)
    if data.startswith("data:"):
        media_type, data = _parse_data_url(data, param)
    else:
        media_type = "application/pdf"
    if media_type != "application/pdf":
        raise TranslationError(f"file parts of type {media_type} are not supported", param)
    block = {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}
    filename = file.get("filename")
    if isinstance(filename, str) and filename:
        block["title"] = filename
    return block


def _user_blocks(content: Any, param: str) -> list:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise TranslationError("message content must be a string or an array of parts", param)
    blocks = []
    for j, part in enumerate(content):
        if not isinstance(part, dict):
            raise TranslationError("content parts must be objects", f"{param}[{j}]")
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if isinstance(text, str) and text:
                blocks.append(_text_block(text, part))
        elif kind == "image_url":
            blocks.append(_image_block(part, f"{param}[{j}]"))
        elif kind == "file":
            blocks.append(_file_block(part, f"{param}[{j}]"))
        else:
            raise TranslationError(f"content part type {kind!r} is not supported", f"{param}[{j}]")
    return blocks


def _system_blocks(content: Any, out: list, param: str) -> None:
    if isinstance(content, str):
        if content:
            out.append({"type": "text", "text": content})
        return
    if not isinstance(content, list):
        raise TranslationError("system content must be a string or an array of text parts", param)
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text":
            text = part.get("text")
            if isinstance(text, str) and text:
                out.append(_text_block(text, part))


def _assistant_blocks(msg: dict, param: str) -> list:
    blocks = []
    # Signed thinking blocks handed back by the client (as returned in responses).
    thinking_blocks = msg.get("thinking_blocks")
    if isinstance(thinking_blocks, list):
        for tb in thinking_blocks:
            if not isinstance(tb, dict):
                continue
            if tb.get("type") == "thinking" and isinstance(tb.get("signature"), str) and tb["signature"]:
                blocks.append({"type": "thinking", "thinking": tb.get("thinking") or "", "signature": tb["signature"]})
            elif tb.get("type") == "redacted_thinking" and isinstance(tb.get("data"), str):
                blocks.append({"type": "redacted_thinking", "data": tb["data"]})
    content = msg.get("content")
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            text = part.get("text") if kind == "text" else part.get("refusal") if kind == "refusal" else None
            if isinstance(text, str) and text:
                blocks.append(_text_block(text, part))
    elif content is None:
        refusal = msg.get("refusal")
        if isinstance(refusal, str) and refusal:
            blocks.append({"type": "text", "text": refusal})
    else:
        raise TranslationError("assistant content must be a string, an array or null", param)
    tool_calls = msg.get("tool_calls")
    if tool_calls:
        if not isinstance(tool_calls, list):
            raise TranslationError("tool_calls must be an array", param)
        for j, call in enumerate(tool_calls):
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict) or call.get("type", "function") != "function":
                raise TranslationError("only function tool calls are supported", f"{param}.tool_calls[{j}]")
            call_id = call.get("id")
            name = fn.get("name")
            if not isinstance(call_id, str) or not call_id or not isinstance(name, str):
                raise TranslationError("tool calls need an id and a function name", f"{param}.tool_calls[{j}]")
            blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": parse_arguments(fn.get("arguments"))})
    return blocks


def _tool_result_block(msg: dict, param: str) -> dict:
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise TranslationError("tool messages need a tool_call_id", param)
    content = msg.get("content")
    if isinstance(content, list):
        content = [
            _text_block(p["text"], p)
            for p in content
            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) and p["text"]
        ]
    elif not isinstance(content, str):
        content = "" if content is None else orjson.dumps(content).decode()
    return {"type": "tool_result", "tool_use_id": call_id, "content": content}


def _chat_tools(tools: Any) -> list:
    if not isinstance(tools, list):
        raise TranslationError("tools must be an array", "tools")
    out = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or tool.get("type", "function") != "function":
            raise TranslationError("only function tools are supported", f"tools[{i}]")
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise TranslationError("tools need a function name", f"tools[{i}].function.name")
        params = fn.get("parameters")
        entry = {"name": name}
        description = fn.get("description")
        if isinstance(description, str) and description:
            entry["description"] = description
        entry["input_schema"] = params if isinstance(params, dict) and params else _EMPTY_SCHEMA
        cache_control = tool.get("cache_control")
        if isinstance(cache_control, dict):
            entry["cache_control"] = cache_control
        out.append(entry)
    return out


def _chat_tool_choice(choice: Any, parallel: Any) -> dict | None:
    result: dict | None = None
    if choice == "auto":
        result = {"type": "auto"}
    elif choice == "none":
        result = {"type": "none"}
    elif choice == "required":
        result = {"type": "any"}
    elif isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "function":
            fn = choice.get("function")
            name = fn.get("name") if isinstance(fn, dict) else None
            if not isinstance(name, str) or not name:
                raise TranslationError("tool_choice.function.name is required", "tool_choice")
            result = {"type": "tool", "name": name}
        elif kind == "allowed_tools":
            allowed = choice.get("allowed_tools")
            mode = allowed.get("mode") if isinstance(allowed, dict) else None
            result = {"type": "any"} if mode == "required" else {"type": "auto"}
        else:
            raise TranslationError(f"tool_choice type {kind!r} is not supported", "tool_choice")
    elif choice is not None:
        raise TranslationError("tool_choice must be auto, none, required or a function", "tool_choice")
    if parallel is False and (result is None or result["type"] != "none"):
        if result is None:
            result = {"type": "auto"}
        result["disable_parallel_tool_use"] = True
    return result


def _collapse(content: list) -> Any:
    """A lone plain text block is sent as a string."""
    if len(content) == 1:
        block = content[0]
        if block["type"] == "text" and len(block) == 2:
            return block["text"]
    return content


def _in_unsigned_tool_loop(messages: list) -> bool:
    """True if the last assistant turn used tools without a signed thinking block.

    Anthropic rejects such a history when thinking is enabled, so thinking is
    then left off for this request.
    """
    for msg in reversed(messages):
        if msg["role"] == "assistant":
            content = msg["content"]
            if isinstance(content, str):  # a lone text block, collapsed: no tools
                return False
            if not any(b["type"] == "tool_use" for b in content):
                return False
            return content[0]["type"] not in ("thinking", "redacted_thinking")
    return False


def chat_request_to_messages(body: dict, *, model: str, default_max_tokens: int) -> dict:
    """OpenAI chat-completions request -> Anthropic Messages request for ``model``."""
    if not isinstance(body, dict):
        raise TranslationError("request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise TranslationError("messages must be a non-empty array", "messages")

    system: list = []
    out_messages: list = []
    for i, msg in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise TranslationError("messages must be objects", param)
        role = msg.get("role")
        if role == "user":
            blocks = _user_blocks(msg.get("content"), f"{param}.content")
        elif role == "assistant":
            role = "assistant"
            blocks = _assistant_blocks(msg, param)
        elif role == "tool":
            role = "user"
            blocks = [_tool_result_block(msg, param)]
        elif role == "system" or role == "developer":
            _system_blocks(msg.get("content"), system, f"{param}.content")
            continue
        else:
            raise TranslationError(f"message role {role!r} is not supported", f"{param}.role")
        if not blocks:
            continue
        if out_messages and out_messages[-1]["role"] == role:
            # Anthropic wants alternating turns: consecutive tool results (and a
            # user message right after them) travel in one user message.
            out_messages[-1]["content"].extend(blocks)
        else:
            out_messages.append({"role": role, "content": blocks})
    for msg in out_messages:
        msg["content"] = _collapse(msg["content"])

    out: dict = {"model": model}

    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    if max_tokens is not None and (not _is_int(max_tokens) or max_tokens < 1):
        raise TranslationError("max_tokens must be a positive integer", "max_tokens")
    out["max_tokens"] = max_tokens if max_tokens is not None else default_max_tokens
    out["messages"] = out_messages
    if system:
        out["system"] = _collapse(system)

    temperature = body.get("temperature")
    if _is_number(temperature):
        out["temperature"] = 0.0 if temperature < 0 else 1.0 if temperature > 1 else temperature
    top_p = body.get("top_p")
    if _is_number(top_p):
        out["top_p"] = top_p

    stop = body.get("stop")
    if isinstance(stop, str):
        if stop:
            out["stop_sequences"] = [stop]
    elif isinstance(stop, list):
        sequences = [s for s in stop if isinstance(s, str) and s]
        if sequences:
            out["stop_sequences"] = sequences

    if body.get("stream") is True:
        out["stream"] = True

    tools = body.get("tools")
    tool_choice = None
    if tools:
        out["tools"] = _chat_tools(tools)
        tool_choice = _chat_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if tool_choice is not None:
            out["tool_choice"] = tool_choice

    user = body.get("user")
    if not isinstance(user, str) or not user:
        user = body.get("safety_identifier")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}

    budget = EFFORT_TO_BUDGET.get(body.get("reasoning_effort"))  # type: ignore[arg-type]
    if budget is not None:
        forced_tool = tool_choice is not None and tool_choice["type"] in ("any", "tool")
        if not forced_tool and not _in_unsigned_tool_loop(out_messages):
            if max_tokens is None:
                # The default bounds the visible answer; thinking comes on top.
                out["max_tokens"] = default_max_tokens + budget
            elif budget >= max_tokens:
                budget = max_tokens - 1
            if budget >= MIN_THINKING_BUDGET:
                out["thinking"] = {"type": "enabled", "budget_tokens": budget}
                # Extended thinking does not accept sampling changes.
                out.pop("temperature", None)
                out.pop("top_p", None)
    return out


# ---------------------------------------------------------------------------
# Anthropic -> OpenAI
# ---------------------------------------------------------------------------


def _image_part(block: dict, param: str) -> dict:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif kind == "url":
        url = source.get("url")
    else:
        raise TranslationError(f"image source type {kind!r} is not supported", param)
    return {"type": "image_url", "image_url": {"url": url}}


def _document_part(block: dict, param: str) -> dict:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "text":
        return {"type": "text", "text": source.get("data") or ""}
    if kind == "base64" and source.get("media_type") == "application/pdf":
        file = {"file_data": f"data:application/pdf;base64,{source.get('data')}"}
        title = block.get("title")
        file["filename"] = title if isinstance(title, str) and title else "document.pdf"
        return {"type": "file", "file": file}
    raise TranslationError("only PDF and plain-text documents are supported", param)


def _join_text_parts(parts: list) -> Any:
    """All-text content becomes a string (widest provider support)."""
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def _system_text(system: Any, param: str) -> str:
    if isinstance(system, str):
        return system
    if not isinstance(system, list):
        raise TranslationError("system must be a string or an array of text blocks", param)
    return "\n\n".join(
        b["text"] for b in system if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
    )


def _tool_result_messages(block: dict, param: str, out: list, pending_images: list) -> None:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise TranslationError("tool_result blocks need a tool_use_id", param)
    content = block.get("content")
    if isinstance(content, list):
        texts = []
        for item in content:
            if not isinstance(item, dict):
                continue
            kind = item.get("type")
            if kind == "text" and isinstance(item.get("text"), str):
                texts.append(item["text"])
            elif kind == "image":
                # Tool messages carry text only: images follow in a user message.
                pending_images.append(_image_part(item, param))
        content = "\n".join(texts)
    elif content is None:
        content = ""
    elif not isinstance(content, str):
        content = orjson.dumps(content).decode()
    out.append({"role": "tool", "tool_call_id": call_id, "content": content})


def _messages_user(content: list, param: str, out: list) -> None:
    parts: list = []
    images: list = []
    for j, block in enumerate(content):
        bparam = f"{param}[{j}]"
        if not isinstance(block, dict):
            raise TranslationError("content blocks must be objects", bparam)
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            if isinstance(text, str):
                parts.append({"type": "text", "text": text})
        elif kind == "tool_result":
            _tool_result_messages(block, bparam, out, images)
        elif kind == "image":
            parts.append(_image_part(block, bparam))
        elif kind == "document":
            parts.append(_document_part(block, bparam))
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise TranslationError(f"content block type {kind!r} is not supported", bparam)
    if images:
        parts = images + parts
    if parts:
        out.append({"role": "user", "content": _join_text_parts(parts)})


def _messages_assistant(content: list, out: list) -> None:
    # Signatures, redacted_thinking and server-side tool blocks have no OpenAI form.
    texts, reasoning, tool_calls = split_assistant_content(content)
    msg: dict = {"role": "assistant", "content": "".join(texts) if texts else (None if tool_calls else "")}
    joined = "".join(reasoning)
    if joined:  # empty thinking blocks add no reasoning_content
        msg["reasoning_content"] = joined
    if tool_calls:
        msg["tool_calls"] = tool_calls
    out.append(msg)


def _messages_tools(tools: Any) -> list:
    if not isinstance(tools, list):
        raise TranslationError("tools must be an array", "tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise TranslationError("tools must be objects", f"tools[{i}]")
        kind = tool.get("type")
        if kind not in (None, "custom") or "input_schema" not in tool:
            raise TranslationError(f"tool type {kind!r} is not supported by this provider", f"tools[{i}]")
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise TranslationError("tools need a name", f"tools[{i}].name")
        fn: dict = {"name": name}
        description = tool.get("description")
        if isinstance(description, str) and description:
            fn["description"] = description
        schema = tool.get("input_schema")
        fn["parameters"] = schema if isinstance(schema, dict) else _EMPTY_SCHEMA
        out.append({"type": "function", "function": fn})
    return out


def _messages_tool_choice(choice: Any, out: dict) -> None:
    if not isinstance(choice, dict):
        return
    kind = choice.get("type")
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise TranslationError("tool_choice.name is required", "tool_choice")
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        raise TranslationError(f"tool_choice type {kind!r} is not supported", "tool_choice")
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        out["parallel_tool_calls"] = False


def messages_request_to_chat(body: dict, *, model: str) -> dict:
    """Anthropic Messages request -> OpenAI chat-completions request for ``model``."""
    if not isinstance(body, dict):
        raise TranslationError("request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise TranslationError("messages must be a non-empty array", "messages")

    out_messages: list = []
    system = body.get("system")
    if system:
        text = _system_text(system, "system")
        if text:
            out_messages.append({"role": "system", "content": text})
    for i, msg in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise TranslationError("messages must be objects", param)
        role = msg.get("role")
        content = msg.get("content")
        if role == "system":
            out_messages.append({"role": "system", "content": _system_text(content, f"{param}.content")})
        elif isinstance(content, str):
            if role not in ("user", "assistant"):
                raise TranslationError(f"message role {role!r} is not supported", f"{param}.role")
            out_messages.append({"role": role, "content": content})
        elif not isinstance(content, list):
            raise TranslationError("message content must be a string or an array of blocks", f"{param}.content")
        elif role == "user":
            _messages_user(content, f"{param}.content", out_messages)
        elif role == "assistant":
            _messages_assistant(content, out_messages)
        else:
            raise TranslationError(f"message role {role!r} is not supported", f"{param}.role")

    out: dict = {"model": model, "messages": out_messages}
    max_tokens = body.get("max_tokens")
    if _is_int(max_tokens):
        out["max_completion_tokens"] = max_tokens
    temperature = body.get("temperature")
    if _is_number(temperature):
        out["temperature"] = temperature
    top_p = body.get("top_p")
    if _is_number(top_p):
        out["top_p"] = top_p
    stop = body.get("stop_sequences")
    if isinstance(stop, list):
        sequences = [s for s in stop if isinstance(s, str) and s]
        if sequences:
            out["stop"] = sequences
    if body.get("stream") is True:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}

    tools = body.get("tools")
    if tools:
        out["tools"] = _messages_tools(tools)
        _messages_tool_choice(body.get("tool_choice"), out)

    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        user_id = metadata.get("user_id")
        if isinstance(user_id, str) and user_id:
            out["user"] = user_id

    output_config = body.get("output_config")
    effort = output_config.get("effort") if isinstance(output_config, dict) else None
    thinking = body.get("thinking")
    if isinstance(effort, str) and effort:
        out["reasoning_effort"] = effort
    elif isinstance(thinking, dict) and thinking.get("type") == "enabled":
        out["reasoning_effort"] = effort_from_budget(thinking.get("budget_tokens"))
    return out
