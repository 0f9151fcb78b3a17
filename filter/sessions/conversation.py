"""A request's conversation in one shape, whichever API family it came in.

Turn detection, the router's view and the session key all ask the same questions of a request —
who said what, in words or in attachments, and which messages carry tool output — so each API's
body is read once into `Conversation` here. Pure functions; nothing is copied but text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from filter.errors import ClientApi

# Parts a user attaches that are input without being words (an uncaptioned screenshot routes).
_CHAT_MEDIA = frozenset({"image_url", "input_audio", "file"})
_MESSAGES_MEDIA = frozenset({"image", "document"})
_RESPONSES_MEDIA = frozenset({"input_image", "input_file", "input_audio"})
_RESPONSES_TOOL_OUTPUT = frozenset({
    "function_call_output", "custom_tool_call_output", "local_shell_call_output", "computer_call_output",
    "mcp_approval_response", "apply_patch_call_output", "shell_call_output",
})
_INSTRUCTION_ROLES = frozenset({"system", "developer"})


@dataclass(frozen=True, slots=True)
class Said:
    """One message (or Responses input item)."""

    role: str  # "user" | "assistant" | "system" (system and developer) | "tool"
    texts: tuple[str, ...] = ()  # its text parts as written, envelopes still in
    media: tuple[Any, ...] = ()  # attachments (images, documents, audio, files), as sent
    tool_output: bool = False  # a tool message, tool_result blocks, a function_call_output


@dataclass(frozen=True, slots=True)
class Conversation:
    said: tuple[Said, ...]
    system: str  # the instructions that frame the conversation (system prompt, leading system messages)
    tools: tuple[str, ...]  # names of the tools offered, sorted


def read_conversation(api: ClientApi | str, body: dict) -> Conversation:
    """`api`: a ClientApi member (CHAT, MESSAGES, RESPONSES) or its name in lower case."""
    kind = getattr(api, "name", str(api)).lower()
    if kind == "messages":
        return _messages(body)
    if kind == "responses":
        return _responses(body)
    return _chat(body)


# --------------------------------------------------------------------------- OpenAI Chat Completions


def _chat(body: dict) -> Conversation:
    said = []
    system: list[str] = []
    leading = True
    for message in _list(body.get("messages")):
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        content = message.get("content")
        if role in _INSTRUCTION_ROLES:
            texts = _chat_texts(content)
            if leading:
                system.extend(texts)
            said.append(Said("system", texts))
            continue
        leading = False
        if role in ("tool", "function"):
            said.append(Said("tool", tool_output=True))
        elif role == "assistant":
            said.append(Said("assistant", _chat_texts(content)))
        elif role == "user":
            media = tuple(p for p in _list(content) if isinstance(p, dict) and p.get("type") in _CHAT_MEDIA)
            said.append(Said("user", _chat_texts(content), media))
    return Conversation(tuple(said), "\n".join(system), _tool_names(body.get("tools")))


def _chat_texts(content: Any) -> tuple[str, ...]:
    if isinstance(content, str):
        return (content,)
    return tuple(p["text"] for p in _list(content)
                 if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str))


# --------------------------------------------------------------------------- Anthropic Messages


def _messages(body: dict) -> Conversation:
    said = []
    for message in _list(body.get("messages")):
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        content = message.get("content")
        if isinstance(content, str):
            blocks: list = [{"type": "text", "text": content}]
        else:
            blocks = [b for b in _list(content) if isinstance(b, dict)]
        texts = tuple(b["text"] for b in blocks if b.get("type") == "text" and isinstance(b.get("text"), str))
        if role == "user":
            media = tuple(b for b in blocks if b.get("type") in _MESSAGES_MEDIA)
            tool_output = any(b.get("type") == "tool_result" for b in blocks)
            said.append(Said("user", texts, media, tool_output))
        elif role == "assistant":
            said.append(Said("assistant", texts))
        elif role in _INSTRUCTION_ROLES:  # system messages inside `messages` (harness context)
            said.append(Said("system", texts))
    return Conversation(tuple(said), _system_text(body.get("system")), _tool_names(body.get("tools")))


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    return "\n".join(b["text"] for b in _list(system)
                     if isinstance(b, dict) and isinstance(b.get("text"), str))


# --------------------------------------------------------------------------- OpenAI Responses


def _responses(body: dict) -> Conversation:
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    said = []
    system = [body["instructions"]] if isinstance(body.get("instructions"), str) else []
    leading = True
    for item in _list(items):
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        role = item.get("role")
        if kind == "message" and role in _INSTRUCTION_ROLES:
            texts = _responses_texts(item.get("content"))
            if leading:
                system.extend(texts)
            said.append(Said("system", texts))
            continue
        leading = False
        if kind == "message" and role == "user":
            media = tuple(p for p in _list(item.get("content")) if isinstance(p, dict) and p.get("type") in _RESPONSES_MEDIA)
            said.append(Said("user", _responses_texts(item.get("content")), media))
        elif kind == "message" and role == "assistant":
            said.append(Said("assistant", _responses_texts(item.get("content"))))
        elif kind in _RESPONSES_TOOL_OUTPUT:
            said.append(Said("tool", tool_output=True))
        else:  # function_call, custom_tool_call, reasoning, …: the model's own steps
            said.append(Said("assistant"))
    return Conversation(tuple(said), "\n".join(system), _tool_names(body.get("tools")))


def _responses_texts(content: Any) -> tuple[str, ...]:
    if isinstance(content, str):
        return (content,)
    return tuple(p["text"] for p in _list(content) if isinstance(p, dict)
                 and p.get("type") in ("input_text", "output_text", "text") and isinstance(p.get("text"), str))


# --------------------------------------------------------------------------- shared


def _tool_names(tools: Any) -> tuple[str, ...]:
    names = set()
    for tool in _list(tools):
        if not isinstance(tool, dict):
            continue
        function = tool.get("function")
        name = function.get("name") if isinstance(function, dict) else tool.get("name")
        names.add(name if isinstance(name, str) else str(tool.get("type", "")))
    return tuple(sorted(names))


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []
