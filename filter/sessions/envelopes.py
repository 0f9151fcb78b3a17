"""Harness envelopes: blocks an agent harness writes into user messages, not the user's words.

Claude Code adds `<system-reminder>…</system-reminder>` (commit attribution, todo lists, file
changes) and `<user-prompt-submit-hook>…</user-prompt-submit-hook>` (hook output); Roo Code adds
`<environment_details>…</environment_details>` (open files, time, cost) to every user message.
The tag names are `routing.harness_envelopes`.

Only a complete `<tag …>…</tag>` pair is removed: a lone `<system-reminder>` that a user types
stays text. The scan is linear in the text for each tag (`str.find`, no backtracking regex), so a
hostile body with many unclosed tags costs no more than reading it.
"""

from __future__ import annotations

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_:.")
# What may follow `<tag` in an opening tag: its end, or attributes after white space.
_AFTER_NAME = frozenset("> \t\r\n/")


def valid_tag(name: str) -> bool:
    return bool(name) and all(c in _NAME_CHARS for c in name)


class Envelopes:
    """The configured envelope tags, ready to strip. Built once per configuration."""

    __slots__ = ("tags", "_markers")

    def __init__(self, tags: tuple[str, ...]):
        for tag in tags:
            if not valid_tag(tag):
                raise ValueError(f"envelope tag {tag!r} must be letters, digits, '-', '_', ':' or '.'")
        self.tags = tags
        self._markers = tuple((f"<{t}", f"</{t}>") for t in tags)

    def strip(self, text: str) -> str:
        """`text` without its envelopes (the blocks and their content)."""
        if "<" not in text:
            return text
        for opening, closing in self._markers:
            if opening in text:
                text = _remove(text, opening, closing)
        return text

    def user_words(self, text: str) -> str:
        """What is left of a user's text once envelopes are gone, trimmed; "" if nothing."""
        return self.strip(text).strip()


def _remove(text: str, opening: str, closing: str) -> str:
    kept: list[str] = []
    position = 0
    while True:
        start = text.find(opening, position)
        if start < 0:
            break
        after = start + len(opening)
        if after < len(text) and text[after] not in _AFTER_NAME:  # `<system-reminders>`: another tag
            kept.append(text[position:after])
            position = after
            continue
        end = text.find(closing, after)
        if end < 0:  # no closing tag after this point: nothing further can be an envelope
            break
        kept.append(text[position:start])
        position = end + len(closing)
    kept.append(text[position:])
    return "".join(kept)
