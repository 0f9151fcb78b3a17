"""Arch-Router's prompt and answer format, as pure functions.

The model was fine-tuned on one exact prompt, so ``build_prompt`` reproduces it byte for byte
(checked by a SHA-256 test). ``trim_conversation`` decides what part of a conversation the
router sees, and ``parse_route_answer`` turns the model's short JSON answer into a route name.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Collection, Sequence

from router_model.engine import Message, Route, RouterError
from router_model.router_answer import UNREADABLE, unfenced, value_of

# --- The prompt -------------------------------------------------------------------------------
# The template split around its two holes once at import, so a request only pays for two
# json.dumps calls and a concatenation. Every "\n", the double space before "Follow" and the
# trailing spaces are part of what the model was trained on: do not reformat these strings.
_TASK_HEAD = (
    "\nYou are a helpful assistant designed to find the best suited route.\n"
    "You are provided with route description within <routes></routes> XML tags:\n"
    "<routes>\n\n"
)
_TASK_MIDDLE = "\n\n</routes>\n\n<conversation>\n\n"
_TASK_TAIL = "\n\n</conversation>\n"
_FORMAT_PART = (
    "\nYour task is to decide which route is best suit with user intent on the conversation in"
    " <conversation></conversation> XML tags.  Follow the instruction:\n"
    "1. If the latest intent from user is irrelevant or user intent is full filled, response with"
    ' other route {"route": "other"}.\n'
    "2. You must analyze the route descriptions and find the best match route for user latest"
    " intent. \n"
    "3. You only response the name of the route that best matches the user's request, use the"
    " exact name in the <routes></routes>.\n\n"
    "Based on your analysis, provide your response in the following JSON formats if you decide to"
    " match any route:\n"
    '{"route": "route_name"} \n'
)
_PROMPT_TAIL = _TASK_TAIL + _FORMAT_PART

# The route name the model answers when no route fits.
OTHER_ROUTE = "other"


def routes_payload(routes: Sequence[Route]) -> list[dict[str, str]]:
    """The ``[{name, description}]`` list the model sees, key order fixed (it is hashed)."""
    return [{"name": r.name, "description": r.description} for r in routes]


def build_prompt(routes: Sequence[Route], messages: Sequence[Message]) -> str:
    """The exact Arch-Router prompt for ``routes`` and an already trimmed conversation.

    ``messages`` is dumped as given: pass the output of ``trim_conversation`` so that only
    ``{"role", "content"}`` pairs with text reach the model. Both lists use ``json.dumps``
    defaults (``", "`` / ``": "`` separators, ``ensure_ascii=True``) as in training.
    """
    return "".join(
        (
            _TASK_HEAD,
            json.dumps(routes_payload(routes)),
            _TASK_MIDDLE,
            json.dumps(list(messages)),
            _PROMPT_TAIL,
        )
    )


# --- The conversation -------------------------------------------------------------------------
_ROUTED_ROLES = frozenset({"user", "assistant"})
_CHARS_PER_TOKEN = 4
# Put where the middle of an over-long message was removed; counted in the budget.
CUT_MARKER = "\n...\n"


def _estimate_tokens(text: str) -> int:
    # chars / 4 rounded up, as the reference gateway estimates; no tokenizer on the hot path.
    return -(-len(text) // _CHARS_PER_TOKEN)


def _text_of(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a multi-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text":
                text = part.get("text")
                if isinstance(text, str):
                    texts.append(text)
        # Parts are separate blocks of the same turn; a newline keeps their words apart.
        return "\n".join(t for t in texts if t)
    return ""


def cut_middle(text: str, max_chars: int) -> str:
    """``text`` shortened to at most ``max_chars`` by removing its middle.

    The head and the tail are kept (the head a character longer when the split is odd) with
    ``CUT_MARKER`` between them: a request's ask usually sits at its start ("summarise this:")
    or at its end (a question after a pasted document), rarely in the middle.
    """
    if len(text) <= max_chars:
        return text
    keep = max_chars - len(CUT_MARKER)
    if keep <= 0:
        return text[:max_chars]
    head = (keep + 1) // 2
    tail = keep - head
    return text[:head] + CUT_MARKER + (text[len(text) - tail :] if tail else "")


def trim_conversation(messages: Sequence[Message], *, token_budget: int = 2048) -> list[dict]:
    """The part of a conversation Arch-Router routes on, oldest first.

    - Only ``user`` and ``assistant`` turns with non-blank text are kept; ``system`` and
      ``tool`` messages (and assistant turns that only call tools) are left out. Multi-part
      content keeps its text parts, joined by newlines; images and other parts are dropped.
    - Token cost is estimated as ``ceil(chars / 4)``. The latest user message is always kept
      and is charged first; if it alone exceeds the budget its middle is cut (``cut_middle``)
      so it fits exactly. Then turns are taken walking back from the latest message while they
      fit; the walk stops at the first turn that does not fit, so the kept history is the
      newest contiguous run (turns after the latest user message, if any, come first).
    - Each kept turn is ``{"role": ..., "content": <text>}`` in that key order.
    """
    if token_budget <= 0:
        raise ValueError("token_budget must be positive")

    turns: list[tuple[str, str]] = []
    for message in messages:
        role = message.get("role") if isinstance(message, dict) else None
        if role not in _ROUTED_ROLES:
            continue
        text = _text_of(message.get("content"))
        if text.strip():
            turns.append((role, text))
    if not turns:
        return []

    anchor = next((i for i in range(len(turns) - 1, -1, -1) if turns[i][0] == "user"), None)
    kept: dict[int, str] = {}
    used = 0
    if anchor is not None:
        text = cut_middle(turns[anchor][1], token_budget * _CHARS_PER_TOKEN)
        kept[anchor] = text
        used = _estimate_tokens(text)

    for i in range(len(turns) - 1, -1, -1):
        if i == anchor:
            continue
        cost = _estimate_tokens(turns[i][1])
        if used + cost > token_budget:
            break
        kept[i] = turns[i][1]
        used += cost

    return [{"role": turns[i][0], "content": kept[i]} for i in sorted(kept)]


def conversation_cache_key(routes: Sequence[Route], trimmed_messages: Sequence[Message]) -> bytes:
    """A 16-byte digest of everything the prompt depends on, for a bounded decision cache.

    Two requests with equal keys get the same prompt, hence (at temperature ~0) the same
    answer. The digest keeps the cache's memory per entry small whatever the conversation size.
    """
    material = json.dumps(
        [routes_payload(routes), list(trimmed_messages)],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.blake2b(material.encode("utf-8", "surrogatepass"), digest_size=16).digest()


# --- The answer -------------------------------------------------------------------------------
# Answers are a few tokens; anything longer is not an answer and is not worth parsing.
_MAX_ANSWER_CHARS = 2048


def _route_from_name(name: str, route_names: Collection[str]) -> str | None:
    name = name.strip()
    if not name or name == OTHER_ROUTE or name not in route_names:
        return None
    return name


def parse_route_answer(text: str | None, route_names: Collection[str]) -> str | None:
    """The route named by the model's answer, or ``None`` for "no route".

    Accepts ``{"route": "<name>"}`` with single or double quotes, inside a ```json fence or not,
    with stray whitespace or newlines, and (leniently) a bare or quoted route name, or an
    object embedded in a line of text. "No route" is: ``other``, an empty answer, ``""``,
    ``null``, an object without ``route``, or a name not in ``route_names``.

    Raises ``RouterError`` when the answer cannot be read at all.
    """
    if text is None:
        return None
    answer = unfenced(text, _MAX_ANSWER_CHARS, "router answer")
    if not answer:
        return None
    value = value_of(answer)
    if value is UNREADABLE:
        # A bare name without quotes or braces is the only plain text we accept.
        if answer == OTHER_ROUTE:
            return None
        if answer in route_names:
            return answer
        raise RouterError("unparseable router answer")

    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get("route")
        if value is None:
            return None
    if isinstance(value, str):
        return _route_from_name(value, route_names)
    raise RouterError(f"unexpected router answer type: {type(value).__name__}")
