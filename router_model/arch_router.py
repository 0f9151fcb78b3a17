"""The Arch-Router engine: asks an OpenAI-compatible server running Arch-Router-1.5B.

One ``choose`` is one ``POST {endpoint}/chat/completions`` carrying the exact training prompt
as a single user message. Every failure (connection, HTTP status, unreadable body or answer)
becomes ``RouterError`` so the caller can fall back to the default model.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import httpx
import orjson

from router_model.arch_prompt import build_prompt, parse_route_answer, trim_conversation
from router_model.engine import Message, Route, RouterError

# vLLM's HTTP server (uvicorn) drops idle keep-alive connections after 5 s by default; expiring
# ours a little earlier avoids reusing a socket the server is closing.
_KEEPALIVE_EXPIRY_S = 4.0
_MAX_CONNECTIONS = 64


class ArchRouterEngine:
    """RouterEngine backed by Arch-Router served at an OpenAI-compatible ``endpoint``."""

    name = "arch-router"

    def __init__(
        self,
        endpoint: str,
        model: str = "Arch-Router",
        timeout: float = 1.0,
        *,
        max_tokens: int = 32,
        temperature: float = 0.01,
        headers: Mapping[str, str] | None = None,
        token_budget: int = 2048,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._url = endpoint.rstrip("/") + "/chat/completions"
        self._model = model
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._token_budget = token_budget
        base_headers = {"content-type": "application/json", "accept": "application/json"}
        base_headers.update(headers or {})
        # One pooled HTTP/1.1 client for the engine's life: a decision must not pay a TCP
        # handshake. trust_env=False: the router is an in-cluster service, and proxy variables
        # or .netrc meant for upstream providers must not reroute or authenticate it.
        self._client = httpx.AsyncClient(
            headers=base_headers,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(
                max_connections=_MAX_CONNECTIONS,
                max_keepalive_connections=_MAX_CONNECTIONS,
                keepalive_expiry=_KEEPALIVE_EXPIRY_S,
            ),
            trust_env=False,
            follow_redirects=False,
        )

    def request_body(self, routes: Sequence[Route], messages: Sequence[Message]) -> dict[str, Any]:
        """The chat-completions body ``choose`` sends (exposed for tests and debugging)."""
        prompt = build_prompt(routes, self.select(messages))
        return {
            "model": self._model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": self._temperature,
            "max_tokens": self._max_tokens,
            "stream": False,
        }

    async def choose(
        self,
        routes: Sequence[Route],
        messages: Sequence[Message],
        *,
        headers: Mapping[str, str] | None = None,
    ) -> str | None:
        """The chosen route's name, or None; ``headers`` are extra ones for this call only
        (e.g. ``traceparent``). Raises RouterError on any failure; cancellation propagates."""
        if not routes:
            return None
        if self._client.is_closed:
            raise RouterError("router engine is closed")
        body = orjson.dumps(self.request_body(routes, messages))
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise RouterError(f"router timeout ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            # The class name only: messages may carry URLs, and header values never belong here.
            raise RouterError(f"router connection error ({type(exc).__name__})") from None

        if response.status_code >= 400:
            raise RouterError(f"router HTTP {response.status_code}")
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise RouterError("router response is not JSON") from None
        try:
            content = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise RouterError("router response has no choices[0].message") from None
        if content is not None and not isinstance(content, str):
            raise RouterError("router response content is not a string")
        return self.read_answer(content, routes)

    def read_answer(self, content: str | None, routes: Sequence[Route]) -> str | None:
        """The route the model's answer names (engines of another protocol override this)."""
        return parse_route_answer(content, {r.name for r in routes})

    def select(self, messages: Sequence[Message]) -> list[dict]:
        """What of the conversation this engine's prompt holds (the decision cache keys on it)."""
        return trim_conversation(messages, token_budget=self._token_budget)

    async def aclose(self) -> None:
        """Close pooled connections; later ``choose`` calls raise RouterError."""
        await self._client.aclose()
