"""Does a request start a new user turn, or continue the one in progress (an agent loop's step)?

A turn starts when the latest message — past any system messages a harness appended — is the
user's own input: words that are not harness envelopes, or an attachment. Everything else
continues the turn: a tool result (OpenAI `role: tool`, Anthropic user content of `tool_result`
blocks only, a Responses `function_call_output`), an assistant step, a user message holding only
envelopes or nothing. New words beside a `tool_result` are a new turn.
"""

from __future__ import annotations

from filter.sessions.conversation import Conversation, Said
from filter.sessions.envelopes import Envelopes


def starts_user_turn(conversation: Conversation, envelopes: Envelopes) -> bool:
    latest = next((s for s in reversed(conversation.said) if s.role != "system"), None)
    return latest is not None and latest.role == "user" and has_user_input(latest, envelopes)


def has_user_input(said: Said, envelopes: Envelopes) -> bool:
    return bool(said.media) or any(envelopes.user_words(text) for text in said.texts)
