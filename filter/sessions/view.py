"""What the router reads: the user's own words and the assistant's replies, nothing else.

Both engines get this view. Left out: system prompts and system messages, tool definitions,
tool calls and tool results, attachments, reasoning, and harness envelopes inside user messages
(a user message that was only envelopes disappears); a user turn that is a single tag around the
words (Roo Code's `<task>…</task>`) is read without the tag. Each turn is `{"role", "content":
text}`, the shape the engines already read.
"""

from __future__ import annotations

import re

from filter.sessions.conversation import Conversation
from filter.sessions.envelopes import Envelopes

# A user turn that is one tag around the user's words (Roo Code's `<task>…</task>`,
# `<feedback>…</feedback>`): the router reads the words without the markup.
_WRAPPED = re.compile(r"\A<([A-Za-z][\w.:-]{0,63})>(.*)</\1>\Z", re.DOTALL)


def router_view(conversation: Conversation, envelopes: Envelopes) -> list[dict]:
    view = []
    for said in conversation.said:
        if said.role == "user":
            text = "\n".join(unwrapped(w) for w in (envelopes.user_words(t) for t in said.texts) if w)
        elif said.role == "assistant":
            text = "\n".join(t for t in (t.strip() for t in said.texts) if t)
        else:
            continue
        if text:
            view.append({"role": said.role, "content": text})
    return view


def unwrapped(text: str) -> str:
    match = _WRAPPED.match(text)
    return match.group(2).strip() or text if match else text
