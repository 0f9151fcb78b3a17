"""The embedded routing engine: routes in-process with a small sentence encoder, no LLM call.

One ``EmbeddedEngine`` per worker process: the constructor loads the encoder (under 1 s, about
150 MB resident with numpy); each distinct route list is compiled once (1-2 s for ten routes:
call ``index_for(routes)`` at start-up for configured lists) and kept in a small LRU cache. Decisions
run on a single worker thread so the event loop never waits on numpy.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from router_model.embedded_encoder import MiniLMEncoder
from router_model.embedded_scoring import DEFAULT_KNOBS, Encoder, Knobs, RouteIndex, build_index, fuse, pick, route_features
from router_model.embedded_text import content_words, routing_text
from router_model.engine import Message, Route, RouterError

RouteKey = tuple[tuple[str, str], ...]


class EmbeddedEngine:
    """RouterEngine that scores the latest user intent against route descriptions."""

    name = "embedded"

    def __init__(
        self,
        encoder: Encoder | None = None,
        knobs: Knobs = DEFAULT_KNOBS,
        cache_size: int = 32,
    ) -> None:
        self._encoder: Encoder = encoder if encoder is not None else MiniLMEncoder()
        self._knobs = knobs
        self._cache_size = max(1, cache_size)
        self._indexes: OrderedDict[RouteKey, RouteIndex] = OrderedDict()
        self._lock = threading.Lock()  # decide() may be called from several threads
        # One thread: numpy already uses the cores for matmuls; more threads only contend.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedded-router")
        self._closed = False

    @property
    def cached_route_lists(self) -> int:
        return len(self._indexes)

    def index_for(self, routes: Sequence[Route]) -> RouteIndex:
        """The compiled route list, built on first use and kept in a bounded LRU cache."""
        key: RouteKey = tuple((r.name, r.description) for r in routes)
        with self._lock:
            index = self._indexes.get(key)
            if index is not None:
                self._indexes.move_to_end(key)
                return index
            index = build_index(key, self._encoder)
            self._indexes[key] = index
            while len(self._indexes) > self._cache_size:
                self._indexes.popitem(last=False)
            return index

    def _fused(self, routes: Sequence[Route], messages: Sequence[Message]) -> tuple[RouteIndex, np.ndarray] | None:
        text = routing_text(messages)
        if not routes or not text:
            return None
        index = self.index_for(routes)
        query = self._encoder.encode([text])[0]
        return index, fuse(route_features(query, content_words(text), index), self._knobs)

    def scores(self, routes: Sequence[Route], messages: Sequence[Message]) -> dict[str, float]:
        """Fused score of every route for this conversation (for logs and the eval harness)."""
        result = self._fused(routes, messages)
        if result is None:
            return {}
        index, fused = result
        return {name: float(s) for name, s in zip(index.names, fused)}

    def decide(self, routes: Sequence[Route], messages: Sequence[Message]) -> str | None:
        """The route for the latest user intent, or None ("other"). Synchronous, CPU-bound."""
        result = self._fused(routes, messages)
        if result is None:
            return None
        index, fused = result
        best = pick(fused, self._knobs.threshold)
        return None if best is None else index.names[best]

    async def choose(self, routes: Sequence[Route], messages: Sequence[Message]) -> str | None:
        if self._closed:
            raise RouterError("embedded engine is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self.decide, list(routes), list(messages))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bad input must fall back, never break the request
            raise RouterError(f"embedded routing failed: {exc}") from exc

    async def aclose(self) -> None:
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
