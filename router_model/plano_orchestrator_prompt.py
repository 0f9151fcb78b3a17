"""The Plano-Orchestrator protocol (Plano 0.4.19 and later), as pure functions.

Plano replaced Arch-Router's prompt with this one: the router model is told the routes, one JSON
object per line, and the conversation as indented JSON, and answers a *list* of route names
(`{"route": ["name", ...]}`, an empty list for "no route"). ``build_prompt`` reproduces Plano's
text byte for byte (a SHA-256 test checks it), ``select_conversation`` its trimming, and
``parse_routes_answer`` reads the answer the way Plano does, and more tolerantly.
"""

from __future__ import annotations

import json
from typing import Any, Collection, Sequence

from router_model.engine import Message, Route, RouterError
from router_model.router_answer import UNREADABLE, literal, unfenced, value_of

# The exact text (it starts and ends with a newline). The placeholders are filled by plain string
# replacement, so the doubled braces of the response-format line reach the model doubled, as in
# Plano. Do not reformat.
TEMPLATE = """
You are a helpful assistant that selects the most suitable routes based on user intent.
You are provided with a list of available routes enclosed within <routes></routes> XML tags:
<routes>
{routes}
</routes>

You are also given the conversation context enclosed within <conversation></conversation> XML tags:
<conversation>
{conversation}
</conversation>

## Instructions
1. Analyze the latest user intent from the conversation.
2. Compare it against the available routes to find which routes can help fulfill the request.
3. Respond only with the exact route names from <routes>.
4. If no routes can help or the intent is already fulfilled, return an empty list.

## Response Format
Return your answer strictly in JSON as follows:
{{"route": ["route_name_1", "route_name_2", "..."]}}
If no routes are needed, return an empty list for `route`.
"""

# Plano's defaults: the most recent 16 messages, 8,192 tokens counted as UTF-8 bytes / 4.
MAX_TURNS = 16
TOKEN_BUDGET = 8192
_BYTES_PER_TOKEN = 4
TRIM_MARKER = "…"  # U+2026, where the middle of an over-long user message was cut
_SKIPPED_ROLES = frozenset({"system", "developer", "tool"})
# Every route carries an empty parameter schema, key order as Plano serialises it.
_PARAMETERS = {"type": "object", "properties": {}, "required": []}


def routes_text(routes: Sequence[Route]) -> str:
    """One route per line: `{"name": …, "description": …, "parameters": {…}}`, spaced separators
    and non-ASCII kept as it is (Python's `json.dumps(..., ensure_ascii=False)`)."""
    return "\n".join(
        json.dumps({"name": r.name, "description": r.description, "parameters": _PARAMETERS}, ensure_ascii=False)
        for r in routes
    )


def build_prompt(routes: Sequence[Route], conversation: Sequence[Message]) -> str:
    """The prompt for ``routes`` and a conversation already selected by ``select_conversation``."""
    text = json.dumps(list(conversation), indent=4, ensure_ascii=False)
    return TEMPLATE.replace("{routes}", routes_text(routes)).replace("{conversation}", text)


def text_of(content: Any) -> str:
    """A message's text: a string, or its text parts joined with newlines (empty parts too)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"] for part in content
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        )
    return ""


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _is_boundary(data: bytes, i: int) -> bool:
    return i <= 0 or i >= len(data) or (data[i] & 0xC0) != 0x80


def trim_middle(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes: about 60 % of the head, ``…``, 40 % of the
    tail, on character boundaries (the ask often sits after a long paste); head only when even the
    marker does not fit."""
    data = _utf8(text)
    if len(data) <= max_bytes:
        return text
    marker = _utf8(TRIM_MARKER)
    if max_bytes <= len(marker):
        end = max_bytes
        while end > 0 and not _is_boundary(data, end):
            end -= 1
        return data[:end].decode("utf-8", "surrogatepass")
    available = max_bytes - len(marker)
    head = available * 3 // 5
    while head > 0 and not _is_boundary(data, head):
        head -= 1
    tail_start = max(len(data) - (available - head), 0)
    while tail_start < len(data) and not _is_boundary(data, tail_start):
        tail_start += 1
    return (data[:head] + marker + data[tail_start:]).decode("utf-8", "surrogatepass")


def select_conversation(messages: Sequence[Message], token_budget: int = TOKEN_BUDGET,
                        max_turns: int = MAX_TURNS) -> list[dict]:
    """What of a conversation the orchestrator reads, oldest first, as Plano selects it:

    - system, developer and tool messages, and messages without text, are left out;
    - of the rest, the last ``max_turns``;
    - walking back from the newest, each message costs ``len(utf8) // 4`` tokens against
      ``token_budget``, which the template's own length is charged to first; the message that
      overflows is kept only if it is the user's, cut in the middle to the bytes that remain, and
      the walk stops there;
    - when nothing fits, the newest message is kept whole.
    """
    turns = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role not in ("user", "assistant"):
            continue  # system, developer and tool; Plano's request types know no other roles
        text = text_of(message.get("content"))
        if text:
            turns.append((role, text))
    turns = turns[-max_turns:] if max_turns > 0 else []

    used = len(_utf8(TEMPLATE)) // _BYTES_PER_TOKEN
    selected: list[dict] = []
    for role, text in reversed(turns):
        cost = len(_utf8(text)) // _BYTES_PER_TOKEN
        if used + cost > token_budget:
            remaining = max(token_budget - used, 0)
            if role == "user" and remaining > 0:
                selected.append({"role": "user", "content": trim_middle(text, remaining * _BYTES_PER_TOKEN)})
            break
        used += cost
        selected.append({"role": role, "content": text})
    if not selected and turns:
        role, text = turns[-1]
        selected.append({"role": role, "content": text})
    selected.reverse()
    return selected


# --- The answer -------------------------------------------------------------------------------
_MAX_ANSWER_CHARS = 4096  # a list of route names; anything longer is not an answer


def _load(text: str) -> Any:
    repaired = text.replace("'", '"').replace("\\n", "")  # Plano's own repair, tried before a Python literal
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return json.loads(repaired)
    except ValueError:
        return literal(text)


def parse_routes_answer(text: str | None, route_names: Collection[str]) -> str | None:
    """The first route of the answer that is one of ``route_names``, or None for "no route".

    Expected: ``{"route": ["name", ...]}``. Also read: single quotes, literal ``\\n`` sequences,
    a ```json fence, an object inside a line of text, a single name instead of a list. "No
    route": an empty answer, an empty list, ``null``, a missing ``route`` key, or names none of
    which is a route. Raises RouterError when the answer cannot be read at all.
    """
    if text is None:
        return None
    answer = unfenced(text, _MAX_ANSWER_CHARS, "orchestrator answer")
    if not answer:
        return None
    value = value_of(answer, _load)
    if value is UNREADABLE:
        raise RouterError("unparseable orchestrator answer")
    if isinstance(value, dict):
        value = value.get("route")
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise RouterError(f"unexpected orchestrator answer type: {type(value).__name__}")
    for name in value:
        if isinstance(name, str) and name.strip() in route_names:
            return name.strip()
    return None
