"""Preference routing for one worker: the engine, its deadline, a bounded decision cache.

The router never fails a request: a deadline miss, an engine error or an unreadable answer
becomes "no route", the default model serves, and the outcome is logged and counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Mapping, Sequence

from filter.config import Routing
from router_model.arch_prompt import conversation_cache_key, trim_conversation
from router_model.engine import Message, Route, RouterEngine, RouterError

log = logging.getLogger("switchyard.routing")


@dataclass(frozen=True, slots=True)
class RouterAnswer:
    route: str | None
    outcome: str  # "route" | "other" | "timeout" | "error" | "cached"
    elapsed_ms: float


def build_router(settings: Routing) -> "Router | None":
    """The configured router, its engine loaded once per worker at start-up; None for `none`."""
    if settings.engine == "none":
        return None
    return Router(build_engine(settings), settings)


def build_engine(settings: Routing) -> RouterEngine:
    if settings.engine == "arch-router":
        from router_model.arch_router import ArchRouterEngine

        assert settings.endpoint is not None
        return ArchRouterEngine(settings.endpoint, settings.model, settings.timeout_s, headers=_endpoint_headers(settings),
                                **({"token_budget": settings.token_budget} if settings.token_budget else {}))
    if settings.engine == "plano-orchestrator":
        from router_model.plano_orchestrator import PlanoOrchestratorEngine

        assert settings.endpoint is not None
        return PlanoOrchestratorEngine(settings.endpoint, settings.model, settings.timeout_s,
                                       headers=_endpoint_headers(settings),
                                       **({"token_budget": settings.token_budget} if settings.token_budget else {}))
    from router_model.embedded import EmbeddedEngine

    # One engine per worker; concurrent decisions share its encoder calls (micro-batching).
    return EmbeddedEngine(min_confidence=settings.min_confidence)


def _endpoint_headers(settings: Routing) -> dict[str, str]:
    """The router endpoint's credential, when the router is a configured provider that has a key."""
    if settings.endpoint_credential is None:
        return {}
    name, secret = settings.endpoint_credential
    return {name: secret.reveal()}


class Router:
    def __init__(self, engine: RouterEngine, settings: Routing):
        self.engine = engine
        self.timeout_s = settings.timeout_s
        self._cache: OrderedDict[object, str | None] = OrderedDict()
        self._cache_size = settings.cache_size

    def prepare(self, routes: Sequence[Route]) -> None:
        """Compile a route list ahead of the first request (the embedded engine embeds every
        description once: seconds, which a 1 s deadline must not pay). Blocking: call in a thread."""
        compile_routes = getattr(self.engine, "index_for", None)  # engines without this need none
        if compile_routes is not None and routes:
            compile_routes(routes)

    async def choose(
        self, routes: Sequence[Route], messages: Sequence[Message], headers: Mapping[str, str] | None = None
    ) -> RouterAnswer:
        start = time.perf_counter()
        # What the engine's prompt holds of the conversation (each protocol trims its own way).
        trimmed = getattr(self.engine, "select", trim_conversation)(messages)
        # Examples are not part of the Arch-Router payload the key hashes, but they change
        # the embedded engine's answer.
        key = (conversation_cache_key(routes, trimmed), tuple(r.examples for r in routes))
        if key in self._cache:
            self._cache.move_to_end(key)
            return RouterAnswer(self._cache[key], "cached", _ms(start))
        try:
            async with asyncio.timeout(self.timeout_s):
                route = await self._ask(routes, trimmed, headers)
        except TimeoutError:
            log.warning("router %s missed its %.0f ms deadline; serving the default model", self.engine.name, self.timeout_s * 1000)
            return RouterAnswer(None, "timeout", _ms(start))
        except RouterError as exc:
            log.warning("router %s failed (%s); serving the default model", self.engine.name, exc)
            return RouterAnswer(None, "error", _ms(start))
        self._remember(key, route)
        return RouterAnswer(route, "route" if route else "other", _ms(start))

    async def _ask(self, routes, trimmed, headers) -> str | None:
        if headers and self.engine.name in ("arch-router", "plano-orchestrator"):
            return await self.engine.choose(routes, trimmed, headers=headers)  # type: ignore[call-arg]
        return await self.engine.choose(routes, trimmed)

    def _remember(self, key: object, route: str | None) -> None:
        if self._cache_size <= 0:
            return
        self._cache[key] = route
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def aclose(self) -> None:
        await self.engine.aclose()


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
