"""OpenAI Responses <-> OpenAI Chat Completions: a Responses client served by a Chat Completions model.

Requests are built from an allow-list (`TRANSLATED_RESPONSES_FIELDS`); `DROPPED_RESPONSES_FIELDS`
have no Chat Completions counterpart. Input items become messages: function and custom tool calls
become the assistant's `tool_calls` (a custom tool is a function taking one `input` string), their
outputs `role: tool` messages, reasoning items `reasoning_content`. Answers and streams come back
as Responses objects and events (`responses_common.ResponseBuilder`).
"""

from __future__ import annotations

from typing import Any

import orjson

from .common import TranslationError
from .errors import chat_error_object, parse_error
from .responses_common import (
    CUSTOM_INPUT,
    ResponseBuilder,
    ToolNames,
    check_no_state,
    response_echo,
    unpack_thinking,
)
from .streams import TRUNCATED_MESSAGE, _StreamTranslator, _loads
from .usage import chat_usage_counts

__all__ = [
    "responses_request_to_chat",
    "responses_tool_names",
    "chat_response_to_responses",
    "ChatStreamToResponses",
    "error_to_responses",
    "TRANSLATED_RESPONSES_FIELDS",
    "DROPPED_RESPONSES_FIELDS",
]

# Responses request fields that are translated (to Chat Completions, and on to Anthropic Messages).
TRANSLATED_RESPONSES_FIELDS: tuple[str, ...] = (
    "model",  # replaced by the upstream model id
    "input",
    "instructions",  # -> a leading system message
    "tools",  # function, custom and namespace tools; hosted tools are dropped (below)
    "tool_choice",
    "parallel_tool_calls",
    "max_output_tokens",  # -> max_completion_tokens
    "temperature",
    "top_p",
    "reasoning",  # reasoning.effort -> reasoning_effort
    "text",  # text.format -> response_format
    "stream",  # also adds stream_options.include_usage
    "user",
    "safety_identifier",  # used as user when user is absent
    "store",  # the gateway keeps the answer for previous_response_id
    "previous_response_id",  # expanded from the gateway's store before translation
    "metadata",  # repeated in the answer, not sent upstream
)

# Responses request fields with no Chat Completions counterpart (dropped).
DROPPED_RESPONSES_FIELDS: tuple[str, ...] = (
    "client_metadata",
    "context_management",
    "include",
    "max_tool_calls",
    "prompt_cache_key",
    "prompt_cache_retention",
    "reasoning.summary",
    "service_tier",
    "stream_options",
    "text.verbosity",
    "top_logprobs",
    "truncation",
)

# Tools the provider runs itself at OpenAI: no other provider can, so they are left out.
HOSTED_TOOLS = frozenset({
    "web_search", "web_search_preview", "web_search_preview_2025_03_11", "web_search_2025_08_26",
    "file_search", "code_interpreter", "image_generation", "mcp", "tool_search",
})
# Records of hosted tool runs in the input: what the model said after them stays.
_HOSTED_ITEMS = frozenset({
    "web_search_call", "file_search_call", "code_interpreter_call", "image_generation_call",
    "mcp_list_tools", "mcp_call", "tool_search_call", "tool_search_output", "compaction",
})
_INSTRUCTION_ROLES = frozenset({"system", "developer"})
_EMPTY_SCHEMA = {"type": "object", "properties": {}}


def _is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float


# ---------------------------------------------------------------------------------- tools


def responses_tool_names(body: dict) -> ToolNames:
    """How the request's custom and namespaced tools are named upstream (for mapping calls back)."""
    custom: set[str] = set()
    namespaced: list[tuple[str, str, str]] = []
    tools = body.get("tools") if isinstance(body, dict) else None
    for tool in tools if isinstance(tools, list) else ():
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "custom" and isinstance(tool.get("name"), str):
            custom.add(tool["name"])
        elif tool.get("type") == "namespace" and isinstance(tool.get("name"), str):
            for inner in tool.get("tools") or ():
                if isinstance(inner, dict) and isinstance(inner.get("name"), str):
                    joined = ToolNames.upstream_name(inner["name"], tool["name"])
                    namespaced.append((joined, tool["name"], inner["name"]))
                    if inner.get("type") == "custom":
                        custom.add(joined)
    return ToolNames(frozenset(custom), tuple(namespaced))


def _function_tool(tool: dict, param: str, namespace: str | None = None) -> dict:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise TranslationError("tools need a name", f"{param}.name")
    fn: dict = {"name": ToolNames.upstream_name(name, namespace)}
    description = tool.get("description")
    if tool.get("type") == "custom":
        # A freeform tool: one string parameter, with the format the client asked for described.
        note = "Call with the whole input as the `input` string."
        fmt = tool.get("format")
        if isinstance(fmt, dict) and fmt.get("type") == "grammar" and isinstance(fmt.get("definition"), str):
            syntax = fmt.get("syntax")
            kind = f"{syntax} grammar" if isinstance(syntax, str) and syntax else "grammar"
            note += f" The input must match this {kind}:\n{fmt['definition']}"
        fn["description"] = f"{description}\n\n{note}" if isinstance(description, str) and description else note
        fn["parameters"] = {"type": "object", "properties": {CUSTOM_INPUT: {"type": "string"}},
                            "required": [CUSTOM_INPUT], "additionalProperties": False}
    else:
        if isinstance(description, str) and description:
            fn["description"] = description
        params = tool.get("parameters")
        fn["parameters"] = params if isinstance(params, dict) and params else _EMPTY_SCHEMA
    return {"type": "function", "function": fn}


def _tools(tools: Any) -> tuple[list, set[str]]:
    """Chat tools, and the names of the client's tools that were left out (hosted ones)."""
    if not isinstance(tools, list):
        raise TranslationError("tools must be an array", "tools")
    out: list = []
    left_out: set[str] = set()
    for i, tool in enumerate(tools):
        param = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise TranslationError("tools must be objects", param)
        kind = tool.get("type")
        if kind in ("function", "custom"):
            out.append(_function_tool(tool, param))
        elif kind == "namespace":
            namespace = tool.get("name")
            if not isinstance(namespace, str) or not namespace:
                raise TranslationError("namespace tools need a name", f"{param}.name")
            for j, inner in enumerate(tool.get("tools") or ()):
                if not isinstance(inner, dict) or inner.get("type") not in ("function", "custom"):
                    raise TranslationError("namespace tools may hold function and custom tools only",
                                           f"{param}.tools[{j}]")
                out.append(_function_tool(inner, f"{param}.tools[{j}]", namespace))
        elif kind in HOSTED_TOOLS:
            left_out.add(kind)
        else:
            raise TranslationError(f"tool type {kind!r} is served by OpenAI models only", param)
    return out, left_out


def _tool_choice(choice: Any, tools: list, left_out: set[str]) -> tuple[Any, list]:
    """(Chat tool_choice or None, the tools to send): allowed_tools narrows the tool list."""
    if choice is None or choice in ("auto", "none", "required"):
        return choice, tools
    if not isinstance(choice, dict):
        raise TranslationError("tool_choice must be auto, none, required or an object", "tool_choice")
    kind = choice.get("type")
    if kind in ("function", "custom"):
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise TranslationError("tool_choice.name is required", "tool_choice")
        upstream = ToolNames.upstream_name(name, choice.get("namespace"))
        return {"type": "function", "function": {"name": upstream}}, tools
    if kind == "allowed_tools":
        allowed = {ToolNames.upstream_name(t.get("name"), t.get("namespace"))
                   for t in choice.get("tools") or () if isinstance(t, dict) and isinstance(t.get("name"), str)}
        narrowed = [t for t in tools if t["function"]["name"] in allowed]
        mode = choice.get("mode")
        return ("required" if mode == "required" else "auto"), narrowed
    if kind in HOSTED_TOOLS or kind in left_out:
        raise TranslationError(f"tool_choice {kind!r} names a tool only OpenAI models run", "tool_choice")
    raise TranslationError(f"tool_choice type {kind!r} is not supported", "tool_choice")


# ---------------------------------------------------------------------------------- input items


def _text_of(content: Any, param: str, kinds=("input_text", "output_text", "text")) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise TranslationError("content must be a string or an array of parts", param)
    texts = []
    for part in content:
        if isinstance(part, dict) and part.get("type") in kinds and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part, dict) and part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])
    return "\n".join(texts)


def _user_parts(content: Any, param: str) -> Any:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise TranslationError("content must be a string or an array of parts", param)
    parts: list = []
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        if not isinstance(part, dict):
            raise TranslationError("content parts must be objects", where)
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            if isinstance(part.get("text"), str):
                parts.append({"type": "text", "text": part["text"]})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                raise TranslationError("only images given by image_url are supported (not file_id)", where)
            image: dict = {"url": url}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "input_file":
            data = part.get("file_data")
            if not isinstance(data, str) or not data:
                raise TranslationError("only inline files (file_data) are supported", where)
            file = {"file_data": data}
            if isinstance(part.get("filename"), str):
                file["filename"] = part["filename"]
            parts.append({"type": "file", "file": file})
        elif kind == "input_audio":
            audio = part.get("input_audio")
            if not isinstance(audio, dict):
                raise TranslationError("input_audio needs data and format", where)
            parts.append({"type": "input_audio", "input_audio": audio})
        else:
            raise TranslationError(f"content part type {kind!r} is not supported", where)
    if len(parts) == 1 and parts[0]["type"] == "text":
        return parts[0]["text"]
    return parts


def _tool_output(output: Any, param: str) -> tuple[str, list]:
    """A tool output's text, and the images it holds (they follow in a user message)."""
    if isinstance(output, str):
        return output, []
    if output is None:
        return "", []
    if not isinstance(output, list):
        return orjson.dumps(output).decode(), []
    texts: list = []
    images: list = []
    for part in output:
        if not isinstance(part, dict):
            continue
        if part.get("type") in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif part.get("type") == "input_image":
            images.append(_user_parts([part], param)[0])
    return "\n".join(texts), images


class _Messages:
    """Chat messages being built; an assistant turn collects reasoning, text and tool calls."""

    def __init__(self, keep_signatures: bool) -> None:
        self.out: list = []
        self._assistant: dict | None = None
        self._images: list = []  # images from tool outputs, sent once the tool messages end
        self._keep_signatures = keep_signatures

    def assistant(self) -> dict:
        if self._assistant is None:
            self._flush_images()
            self._assistant = {"role": "assistant", "content": None}
            self.out.append(self._assistant)
        return self._assistant

    def end_assistant(self) -> None:
        self._assistant = None

    def add(self, message: dict) -> None:
        self.end_assistant()
        if message["role"] != "tool":
            self._flush_images()
        self.out.append(message)

    def images(self, images: list) -> None:
        self._images.extend(images)

    def _flush_images(self) -> None:
        if self._images:
            self.out.append({"role": "user", "content": self._images})
            self._images = []

    def finish(self) -> list:
        self._flush_images()
        for message in self.out:
            if message["role"] == "assistant" and message["content"] is None and not message.get("tool_calls"):
                message["content"] = ""
        return self.out

    def reasoning(self, item: dict) -> None:
        block = unpack_thinking(item.get("encrypted_content")) if self._keep_signatures else None
        texts = [p["text"] for p in item.get("content") or () if isinstance(p, dict) and isinstance(p.get("text"), str)]
        if not texts:
            texts = [p["text"] for p in item.get("summary") or () if isinstance(p, dict) and isinstance(p.get("text"), str)]
        message = self.assistant()
        if message.get("tool_calls") or message["content"]:
            # Reasoning belongs before what the model then said or called: a new assistant turn.
            self.end_assistant()
            message = self.assistant()
        text = "".join(texts)
        if text:
            message["reasoning_content"] = message.get("reasoning_content", "") + text
        if block is not None:
            message.setdefault("thinking_blocks", []).append(block)

    def text(self, text: str) -> None:
        message = self.assistant()
        if message.get("tool_calls"):
            self.end_assistant()
            message = self.assistant()
        message["content"] = f"{message['content']}\n{text}" if message["content"] else text

    def call(self, call_id: str, name: str, arguments: str) -> None:
        self.assistant().setdefault("tool_calls", []).append(
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})


def _input_items(body: dict, keep_signatures: bool) -> list:
    messages = _Messages(keep_signatures)
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.add({"role": "system", "content": instructions})
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    if not isinstance(items, list):
        raise TranslationError("input must be a string or an array of items", "input")
    for i, item in enumerate(items):
        param = f"input[{i}]"
        if not isinstance(item, dict):
            raise TranslationError("input items must be objects", param)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            content = item.get("content")
            if role == "user":
                messages.add({"role": "user", "content": _user_parts(content, f"{param}.content")})
            elif role == "assistant":
                text = _text_of(content, f"{param}.content")
                if text:
                    messages.text(text)
            elif role in _INSTRUCTION_ROLES:
                messages.add({"role": "system", "content": _text_of(content, f"{param}.content")})
            else:
                raise TranslationError(f"message role {role!r} is not supported", f"{param}.role")
        elif kind in ("function_call", "custom_tool_call"):
            call_id, name = item.get("call_id"), item.get("name")
            if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
                raise TranslationError(f"{kind} items need a call_id and a name", param)
            name = ToolNames.upstream_name(name, item.get("namespace"))
            if kind == "function_call":
                arguments = item.get("arguments")
                arguments = arguments if isinstance(arguments, str) else orjson.dumps(arguments or {}).decode()
            else:
                value = item.get("input")
                arguments = orjson.dumps({CUSTOM_INPUT: value if isinstance(value, str) else ""}).decode()
            messages.call(call_id, name, arguments)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not call_id:
                raise TranslationError(f"{kind} items need a call_id", param)
            text, images = _tool_output(item.get("output"), f"{param}.output")
            messages.add({"role": "tool", "tool_call_id": call_id, "content": text})
            messages.images(images)
        elif kind == "reasoning":
            messages.reasoning(item)
        elif kind in _HOSTED_ITEMS:
            continue
        elif kind == "item_reference":
            raise TranslationError("item_reference needs OpenAI's stored items; send the items themselves", param)
        else:
            raise TranslationError(f"input item type {kind!r} is served by OpenAI models only", param)
    return messages.finish()


# ---------------------------------------------------------------------------------- the request


def responses_request_to_chat(body: dict, *, model: str, keep_signatures: bool = False) -> dict:
    """OpenAI Responses request -> Chat Completions request for ``model``.

    ``keep_signatures`` keeps Anthropic's signed thinking blocks (from reasoning items the gateway
    made) as ``thinking_blocks`` on assistant messages, for the Messages translator to use.
    """
    if not isinstance(body, dict):
        raise TranslationError("request body must be a JSON object")
    check_no_state(body)
    out: dict = {"model": model, "messages": _input_items(body, keep_signatures)}

    tools = body.get("tools")
    if tools:
        chat_tools, left_out = _tools(tools)
        choice, chat_tools = _tool_choice(body.get("tool_choice"), chat_tools, left_out)
        if chat_tools:
            out["tools"] = chat_tools
            if choice is not None:
                out["tool_choice"] = choice
            if isinstance(body.get("parallel_tool_calls"), bool):
                out["parallel_tool_calls"] = body["parallel_tool_calls"]
        elif choice == "required":
            raise TranslationError("tool_choice is required but no tool can be sent to this model", "tool_choice")

    max_tokens = body.get("max_output_tokens")
    if max_tokens is not None:
        if type(max_tokens) is not int or max_tokens < 1:
            raise TranslationError("max_output_tokens must be a positive integer", "max_output_tokens")
        out["max_completion_tokens"] = max_tokens
    for key in ("temperature", "top_p"):
        if _is_number(body.get(key)):
            out[key] = body[key]

    reasoning = body.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    if isinstance(effort, str) and effort and effort != "none":
        out["reasoning_effort"] = effort

    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if isinstance(fmt, dict):
        if fmt.get("type") == "json_schema":
            schema = {"name": fmt.get("name") or "response", "schema": fmt.get("schema") or {}}
            for key in ("description", "strict"):
                if fmt.get(key) is not None:
                    schema[key] = fmt[key]
            out["response_format"] = {"type": "json_schema", "json_schema": schema}
        elif fmt.get("type") == "json_object":
            out["response_format"] = {"type": "json_object"}

    user = body.get("user")
    if not isinstance(user, str) or not user:
        user = body.get("safety_identifier")
    if isinstance(user, str) and user:
        out["user"] = user

    if body.get("stream") is True:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


# ---------------------------------------------------------------------------------- answers

_INCOMPLETE_FINISH = {"length": "max_output_tokens", "content_filter": "content_filter"}


def chat_response_to_responses(body: dict, *, model: str, echo: dict, tools: ToolNames) -> dict:
    """Chat completion -> Responses object shown as ``model`` (the first choice only)."""
    builder = ResponseBuilder(model=model, echo=echo, tools=tools, stream=False)
    sink: list = []
    builder.start(sink)
    choices = body.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    reasoning = message.get("reasoning_content")
    if not isinstance(reasoning, str):
        reasoning = message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        builder.reasoning(reasoning, sink)
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    if isinstance(content, str):
        builder.text(content, sink)
    if isinstance(message.get("refusal"), str):
        builder.refusal(message["refusal"], sink)
    for i, call in enumerate(message.get("tool_calls") or ()):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            continue
        call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else f"call_{i}"
        builder.call_start(i, call_id, fn.get("name") or "", sink)
        arguments = fn.get("arguments")
        builder.call_arguments(i, arguments if isinstance(arguments, str) else orjson.dumps(arguments or {}).decode(), sink)
    counts = chat_usage_counts(body.get("usage"))
    return builder.finish(counts, sink, incomplete=_INCOMPLETE_FINISH.get(choice.get("finish_reason")))


def error_to_responses(status: int, body: bytes) -> bytes:
    """Any provider error body -> the Responses API's error body (OpenAI's shape)."""
    return orjson.dumps(chat_error_object(status, parse_error(status, body)))


class ChatStreamToResponses(_StreamTranslator):
    """Chat Completions chunk SSE -> Responses SSE events."""

    def __init__(self, *, model: str, echo: dict, tools: ToolNames) -> None:
        super().__init__(model)
        self.builder = ResponseBuilder(model=model, echo=echo, tools=tools, stream=True)
        self._calls: dict[int, str] = {}  # chat tool_calls index -> call id

    @property
    def response(self) -> dict | None:
        return self.builder.response

    def _handle(self, event_name: str, data: bytes, out: list) -> None:
        if data.strip() == b"[DONE]":
            self._complete(out)
            return
        obj = _loads(data)
        if not isinstance(obj, dict):
            return
        err = obj.get("error")
        if err is not None or event_name == "error":
            code = err.get("code") if isinstance(err, dict) else None
            status = code if type(code) is int and 400 <= code < 600 else 500
            self.builder.fail(status, parse_error(status, data)["message"], self._counts, out)
            self._done = True
            return
        self.builder.start(out)
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self._counts = list(chat_usage_counts(usage))
        for choice in obj.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # only the first choice is translated
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._delta(delta, out)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]

    def _delta(self, delta: dict, out: list) -> None:
        builder = self.builder
        reasoning = delta.get("reasoning_content")
        if not isinstance(reasoning, str):
            reasoning = delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            builder.reasoning(reasoning, out)
        if isinstance(delta.get("content"), str) and delta["content"]:
            builder.text(delta["content"], out)
        if isinstance(delta.get("refusal"), str) and delta["refusal"]:
            builder.refusal(delta["refusal"], out)
        for position, call in enumerate(delta.get("tool_calls") or ()):
            if not isinstance(call, dict):
                continue
            index = call.get("index") if type(call.get("index")) is int else position
            fn = call.get("function") if isinstance(call.get("function"), dict) else {}
            call_id = call.get("id")
            known = self._calls.get(index)
            if known is None or (isinstance(call_id, str) and call_id and call_id != known):
                # A new call (some providers reuse index 0 with a fresh id).
                if known is not None:
                    builder.end_call(index, out)
                call_id = call_id if isinstance(call_id, str) and call_id else f"call_{len(self._calls)}_{index}"
                self._calls[index] = call_id
                builder.call_start(index, call_id, fn.get("name") or "", out)
            if isinstance(fn.get("arguments"), str):
                builder.call_arguments(index, fn["arguments"], out)

    def _complete(self, out: list) -> None:
        self.builder.finish(self._counts, out, incomplete=_INCOMPLETE_FINISH.get(self._finish))
        self._done = True

    def _end_cut_short(self, out: list, message: str = TRUNCATED_MESSAGE) -> None:
        self.builder.fail(502, message, self._counts, out)
