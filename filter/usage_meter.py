"""Reading token usage out of a provider's response as it streams past, without changing it.

The response is in the upstream's wire format (OpenAI chat completions or Anthropic messages),
JSON or SSE. Only events that mention usage are parsed.
"""

from __future__ import annotations

import orjson

from filter.errors import ClientApi
from filter.translation import Usage, usage_from_chat, usage_from_messages
from filter.translation.sse import SSEParser


class UsageMeter:
    def __init__(self, api: ClientApi, streaming: bool):
        self.api = api
        self.streaming = streaming
        self._parser = SSEParser() if streaming else None
        self._body: list[bytes] = []
        self._chat_usage: dict | None = None
        self._start_usage: dict = {}  # Anthropic message_start usage (input and cache tokens)
        self._delta_usage: dict = {}  # Anthropic message_delta usage (output tokens, running total)

    def feed(self, chunk: bytes) -> None:
        if self._parser is None:
            self._body.append(chunk)
            return
        for event in self._parser.feed(chunk):
            if b'"usage"' in event.data:
                self._read_event(event.data)

    def _read_event(self, data: bytes) -> None:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(payload, dict):
            return
        if self.api is ClientApi.CHAT:
            if isinstance(payload.get("usage"), dict):
                self._chat_usage = payload["usage"]
        elif payload.get("type") == "message_start":
            self._start_usage = (payload.get("message") or {}).get("usage") or {}
        elif payload.get("type") == "message_delta" and isinstance(payload.get("usage"), dict):
            self._delta_usage = payload["usage"]

    def usage(self) -> Usage | None:
        """The usage the response reported, or None when it reported none."""
        if self._parser is None:
            try:
                body = orjson.loads(b"".join(self._body))
            except orjson.JSONDecodeError:
                return None
            if not isinstance(body, dict) or not isinstance(body.get("usage"), dict):
                return None
            return usage_from_chat(body) if self.api is ClientApi.CHAT else usage_from_messages(body)
        if self.api is ClientApi.CHAT:
            return usage_from_chat({"usage": self._chat_usage}) if self._chat_usage else None
        if not self._start_usage and not self._delta_usage:
            return None
        return usage_from_messages({"usage": {**self._start_usage, **self._delta_usage}})
