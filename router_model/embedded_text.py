"""What the embedded router reads from a conversation, and how it cuts route descriptions.

Pure functions on plain text: no model, no numpy.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

# A follow-up this short ("yes", "and tomorrow?") carries little intent on its own; the
# previous user turn gives it a topic.
SHORT_FOLLOW_UP_WORDS = 3

_WORD = re.compile(r"[a-z0-9]+")
_PHRASE_SEPARATORS = re.compile(r"[,;]")
# Words that say nothing about a topic; kept out of the lexical overlap signal.
_STOPWORDS = frozenset(
    "a an the of to for and or in on at by my me i im you your is are was be been do does did can "
    "could would will should what whats how when where which who why it its this that these those with "
    "from about please tell want need know get give let make some any there their our we us".split()
)


def content_text(content: Any) -> str:
    """Text of a message's ``content``: a string, or the text parts of an OpenAI parts list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") in ("text", "input_text")
        ]
        return " ".join(t for t in texts if t)
    return ""


def user_turns(messages: Sequence[dict]) -> list[str]:
    """Non-empty user texts in order; system, assistant and tool messages never decide a route."""
    turns = []
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "user":
            text = content_text(message.get("content")).strip()
            if text:
                turns.append(text)
    return turns


def routing_text(messages: Sequence[dict]) -> str:
    """The text whose intent picks the route: the latest user turn, with the previous one
    prepended when the latest is a very short follow-up."""
    turns = user_turns(messages)
    if not turns:
        return ""
    latest = turns[-1]
    if len(turns) > 1 and len(_WORD.findall(latest.lower())) <= SHORT_FOLLOW_UP_WORDS:
        return f"{turns[-2]} {latest}"
    return latest


def split_description(description: str) -> tuple[str, list[str]]:
    """Cut ``"topic: a, b, c or d"`` into its head (``"topic"``) and its phrases.

    A description without a colon has no head. Phrases are split on commas and semicolons only:
    splitting on "and"/"or" too breaks phrases such as "bills and payments" into less telling
    halves (measured: 73.1 % vs 72.4 % on CLINC150 with max similarity alone).
    """
    head, sep, rest = description.partition(":")
    if not sep:
        head, rest = "", description
    phrases = [p.strip(" .") for p in _PHRASE_SEPARATORS.split(rest)]
    phrases = [p for p in phrases if p]
    if not phrases:
        phrases = [description.strip()]
    return head.strip(), phrases


def stem(word: str) -> str:
    """A crude suffix stripper: enough to match "balances" with "balance" or "rentals" with
    "rental" in the lexical signal; no dictionary needed."""
    for suffix in ("ings", "ing", "ies", "es", "s", "ed", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def content_words(text: str) -> set[str]:
    """Stemmed, lower-cased words of a text without stopwords."""
    return {stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def route_label(name: str) -> str:
    """A route name as words: ``credit_cards`` -> ``credit cards``."""
    return re.sub(r"[_\-]+", " ", name).strip()
