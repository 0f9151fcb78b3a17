"""Translation between the API families: Chat Completions, Anthropic Messages, OpenAI Responses.

Pure functions and small stream state machines: dicts in, dicts out; bytes in,
bytes out.  No I/O, no shared mutable state.

Modules, one job each:

* ``requests``  -- Chat <-> Messages request bodies (and the translated / dropped field lists)
* ``responses`` -- non-streaming response bodies
* ``streams``   -- SSE stream translators
* ``errors``    -- error bodies
* ``usage``     -- normalised token usage
* ``sse``       -- incremental SSE parsing
* ``common``    -- ids, stop reasons, reasoning-effort mapping
* ``responses_chat``     -- Responses <-> Chat Completions (requests, answers, streams)
* ``responses_messages`` -- Responses <-> Messages (requests, answers, streams)
* ``responses_common``   -- the Responses objects and SSE events both build
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
from .responses_chat import (
    DROPPED_RESPONSES_FIELDS,
    TRANSLATED_RESPONSES_FIELDS,
    ChatStreamToResponses,
    chat_response_to_responses,
    error_to_responses,
    responses_request_to_chat,
    responses_tool_names,
)
from .responses_common import ToolNames, response_echo, without_gateway_reasoning
from .responses_messages import (
    MessagesStreamToResponses,
    messages_response_to_responses,
    responses_request_to_messages,
)
from .streams import ChatStreamToMessages, MessagesStreamToChat
from .usage import Usage, usage_from_chat, usage_from_messages

__all__ = [
    "ANTHROPIC_ERROR_TYPES",
    "ChatStreamToMessages",
    "ChatStreamToResponses",
    "DROPPED_RESPONSES_FIELDS",
    "MessagesStreamToResponses",
    "TRANSLATED_RESPONSES_FIELDS",
    "ToolNames",
    "chat_response_to_responses",
    "error_to_responses",
    "messages_response_to_responses",
    "response_echo",
    "responses_request_to_chat",
    "responses_request_to_messages",
    "responses_tool_names",
    "without_gateway_reasoning",
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
