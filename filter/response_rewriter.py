"""Rewriting a provider's answer into the client's API family, chunk by chunk as it arrives.

Used by the filter when a request was translated (an Anthropic client served by an OpenAI-style
model, or the reverse). Streams are translated event by event; JSON answers and errors are
collected and translated whole at the end.
"""

from __future__ import annotations

import orjson

from filter.translation import (
    ChatStreamToMessages,
    MessagesStreamToChat,
    chat_response_to_messages,
    error_to_chat,
    error_to_messages,
    messages_response_to_chat,
)
from filter.upstream import ResponseTranslation


class ResponseRewriter:
    def __init__(self, translation: ResponseTranslation, *, stream: bool, model: str):
        self.to_chat = translation is ResponseTranslation.MESSAGES_TO_CHAT
        self.stream = stream
        self.model = model
        self._stream_translator: MessagesStreamToChat | ChatStreamToMessages | None = None
        self._buffered: list[bytes] = []
        self._error_status: int | None = None

    def on_headers(self, status: int) -> tuple[list[tuple[str, str]], list[str]]:
        """Headers to set and to remove: the translated body has another type and length."""
        if status >= 400:
            self._error_status = status
            content_type = "application/json"
        elif self.stream:
            self._stream_translator = (MessagesStreamToChat if self.to_chat else ChatStreamToMessages)(model=self.model)
            content_type = "text/event-stream"
        else:
            content_type = "application/json"
        return [("content-type", content_type)], ["content-length"]

    def on_body(self, chunk: bytes, end_of_stream: bool) -> bytes:
        if self._stream_translator is not None:
            out = self._stream_translator.feed(chunk)
            return out + self._stream_translator.finish() if end_of_stream else out
        self._buffered.append(chunk)
        if not end_of_stream:
            return b""
        return self._translate_whole(b"".join(self._buffered))

    def _translate_whole(self, body: bytes) -> bytes:
        to_error = error_to_chat if self.to_chat else error_to_messages
        if self._error_status is not None:
            return to_error(self._error_status, body)
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return to_error(502, body)
        convert = messages_response_to_chat if self.to_chat else chat_response_to_messages
        return orjson.dumps(convert(parsed, model=self.model))
