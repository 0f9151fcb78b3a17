"""Rewriting a provider's answer into the client's API family, chunk by chunk as it arrives.

Used by the filter when a request was translated (an Anthropic client served by an OpenAI-style
model, the reverse, or a Responses client served by either). Streams are translated event by
event; JSON answers and errors are collected and translated whole at the end.
"""

from __future__ import annotations

from typing import Callable

import orjson

from filter.translation import (
    ChatStreamToMessages,
    ChatStreamToResponses,
    MessagesStreamToChat,
    MessagesStreamToResponses,
    chat_response_to_messages,
    chat_response_to_responses,
    error_to_chat,
    error_to_messages,
    error_to_responses,
    messages_response_to_chat,
    messages_response_to_responses,
)
from filter.upstream import ResponsesContext, ResponseTranslation

# translation -> (stream translator, whole-answer translator, error translator)
_TRANSLATORS = {
    ResponseTranslation.MESSAGES_TO_CHAT: (MessagesStreamToChat, messages_response_to_chat, error_to_chat),
    ResponseTranslation.CHAT_TO_MESSAGES: (ChatStreamToMessages, chat_response_to_messages, error_to_messages),
    ResponseTranslation.CHAT_TO_RESPONSES: (ChatStreamToResponses, chat_response_to_responses, error_to_responses),
    ResponseTranslation.MESSAGES_TO_RESPONSES: (MessagesStreamToResponses, messages_response_to_responses,
                                                error_to_responses),
}


DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024


class ResponseRewriter:
    def __init__(self, translation: ResponseTranslation, *, stream: bool, model: str,
                 responses: ResponsesContext | None = None, max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
                 usage_chunk: bool = False):
        self.stream = stream
        self.max_bytes = max_bytes  # gateway.max_response_bytes: what a whole answer may hold here
        self._size = 0
        self.model = model
        self.responses = responses  # set for Responses clients: what their answer repeats and keeps
        stream_class, self._convert, self._to_error = _TRANSLATORS[translation]
        extra = {"echo": responses.echo, "tools": responses.tools} if responses is not None else {}
        # usage_chunk: a Chat client asked for the last chunk with the usage (stream_options.include_usage)
        options = {"include_usage": usage_chunk} if translation is ResponseTranslation.MESSAGES_TO_CHAT else {}
        self._new_stream: Callable = lambda: stream_class(model=model, **extra, **options)
        self._extra = extra
        self._stream_translator = None
        self._buffered: list[bytes] = []
        self._error_status: int | None = None
        self.finished_response: dict | None = None  # a Responses answer, once whole and not failed
        self._noted = False

    def on_headers(self, status: int) -> tuple[list[tuple[str, str]], list[str]]:
        """Headers to set and to remove: the translated body has another type and length."""
        if status >= 400:
            self._error_status = status
            content_type = "application/json"
        elif self.stream:
            self._stream_translator = self._new_stream()
            content_type = "text/event-stream"
        else:
            content_type = "application/json"
        return [("content-type", content_type)], ["content-length"]

    def on_body(self, chunk: bytes, end_of_stream: bool) -> bytes:
        if self._stream_translator is not None:
            out = self._stream_translator.feed(chunk)
            if end_of_stream:
                out += self._stream_translator.finish()
            self._note_finished(getattr(self._stream_translator, "response", None))
            return out
        self._size += len(chunk)
        if self._size <= self.max_bytes:
            self._buffered.append(chunk)
        else:
            self._buffered.clear()  # held no longer; the client gets an error in its shape instead
        if not end_of_stream:
            return b""
        if self._size > self.max_bytes:
            return self._to_error(502, orjson.dumps({"error": {"message": (
                f"the provider's answer is larger than the gateway's limit ({self.max_bytes} bytes, "
                "gateway.max_response_bytes)"), "type": "server_error"}}))
        return self._translate_whole(b"".join(self._buffered))

    @property
    def streaming(self) -> bool:
        """Whether the answer is being translated as a stream (an SSE answer, not an error)."""
        return self._stream_translator is not None

    def cut(self, message: str) -> bytes:
        """The gateway ends a translated stream itself (filter/stream_guard.py): the error and
        terminal event in the client's format."""
        assert self._stream_translator is not None
        return self._stream_translator.cut(message)

    def _translate_whole(self, body: bytes) -> bytes:
        if self._error_status is not None:
            return self._to_error(self._error_status, body)
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return self._to_error(502, body)
        answer = self._convert(parsed, model=self.model, **self._extra)
        self._note_finished(answer if self.responses is not None else None)
        return orjson.dumps(answer)

    def _note_finished(self, response: dict | None) -> None:
        """Hand a finished Responses answer to the caller once (filter/responses_store.py keeps it)."""
        if response is not None and not self._noted and response.get("status") in ("completed", "incomplete"):
            self._noted = True
            self.finished_response = response
