"""OpenAI Chat Completions <-> Anthropic Messages translation.

Pure functions and small stream state machines: dicts in, dicts out; bytes in,
bytes out.  No I/O, no shared mutable state.

Modules, one job each:

* ``requests``  -- request bodies (and the translated / dropped field lists)
* ``responses`` -- non-streaming response bodies
* ``streams``   -- SSE stream translators
* ``errors``    -- error bodies
* ``usage``     -- normalised token usage
* ``sse``       -- incremental SSE parsing
* ``common``    -- ids, stop reasons, reasoning-effort mapping
"""

from .common import EFFORT_TO_BUDGET, FINISH_TO_STOP_REASON, STOP_REASON_TO_FINISH, TranslationError
from .errors import ANTHROPIC_ERROR_TYPES, error_to_chat, error_to_messages
from .requests import (
    DROPPED_CHAT_FIELDS,
    DROPPED_MESSAGES_FIELDS,
    TRANSLATED_CHAT_FIELDS,
    TRANSLATED_MESSAGES_FIELDS,
    chat_request_to_messages,
    messages_request_to_chat,
)
from .responses import chat_response_to_messages, messages_response_to_chat
from .streams import ChatStreamToMessages, MessagesStreamToChat
from .usage import Usage, usage_from_chat, usage_from_messages

__all__ = [
    "ANTHROPIC_ERROR_TYPES",
    "ChatStreamToMessages",
    "DROPPED_CHAT_FIELDS",
    "DROPPED_MESSAGES_FIELDS",
    "EFFORT_TO_BUDGET",
    "FINISH_TO_STOP_REASON",
    "MessagesStreamToChat",
    "STOP_REASON_TO_FINISH",
    "TRANSLATED_CHAT_FIELDS",
    "TRANSLATED_MESSAGES_FIELDS",
    "TranslationError",
    "Usage",
    "chat_request_to_messages",
    "chat_response_to_messages",
    "error_to_chat",
    "error_to_messages",
    "messages_request_to_chat",
    "messages_response_to_chat",
    "usage_from_chat",
    "usage_from_messages",
]
