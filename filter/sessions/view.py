"""What the router reads: the user's own words and the assistant's replies, nothing else.

Both engines get this view. Left out: system prompts and system messages, tool definitions,
tool calls and tool results, attachments, reasoning, and harness envelopes inside user messages
(a user message that was only envelopes disappears). Each turn is `{"role", "content": text}`,
the shape the engines already read.
"""

from __future__ import annotations

from filter.sessions.conversation import Conversation
from filter.sessions.envelopes import Envelopes


def router_view(conversation: Conversation, envelopes: Envelopes) -> list[dict]:
    view = []
    for said in conversation.said:
        if said.role == "user":
            text = "\n".join(w for w in (envelopes.user_words(t) for t in said.texts) if w)
        elif said.role == "assistant":
            text = "\n".join(t for t in (t.strip() for t in said.texts) if t)
        else:
            continue
        if text:
            view.append({"role": said.role, "content": text})
    return view
