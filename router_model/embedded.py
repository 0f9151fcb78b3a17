"""The embedded routing engine: routes in-process with a small sentence encoder, no LLM call.

One ``EmbeddedEngine`` per worker process: the constructor loads the encoder (ONNX Runtime, int8;
about 0.2 s and 80 MB resident once its graph is cached); each distinct route list is compiled
once (tens of ms: call ``index_for(routes)`` at start-up for configured lists) and kept in a
small LRU cache. Concurrent decisions are batched into one encoder call (``batching.py``) on a
single worker thread, so the event loop never waits on the encoder.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from router_model.batching import MicroBatcher
from router_model.embedded_scoring import (
    DEFAULT_KNOBS,
    EXAMPLE_KNOBS,
    Encoder,
    Knobs,
    RouteIndex,
    best_confidence,
    build_index,
    fuse,
    route_features_batch,
)
from router_model.embedded_text import content_words, routing_text
from router_model.engine import Message, Route, RouterError

RouteKey = tuple[tuple[str, str, tuple[str, ...]], ...]
# A batch waits this long for company when the encoder is idle (0: one turn of the event loop,
# which gathers the requests that arrived together); under load batches form while the previous
# one runs, without waiting. A timed wait costs a millisecond or more (the loop's timers are
# that coarse) and bought nothing measurable.
BATCH_WAIT_S = 0.0
MAX_BATCH = 32


@dataclass(frozen=True, slots=True)
class Scored:
    """One decision: the fused score of every route, the best route (whatever its confidence),
    its confidence (0..1) and the answer (None: "other")."""

    names: tuple[str, ...]
    scores: np.ndarray
    best: str
    confidence: float
    route: str | None


def limit_blas_threads() -> None:
    """numpy's BLAS pool (sized to the machine unless the environment says otherwise) spins on
    cores that Envoy and the other workers need; the engine's matrix products are small."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


class EmbeddedEngine:
    """RouterEngine that scores the latest user intent against route descriptions (and examples)."""

    name = "embedded"

    def __init__(
        self,
        encoder: Encoder | None = None,
        knobs: Knobs = DEFAULT_KNOBS,
        example_knobs: Knobs = EXAMPLE_KNOBS,
        cache_size: int = 32,
        min_confidence: float | None = None,
        batch_wait_s: float = BATCH_WAIT_S,
        max_batch: int = MAX_BATCH,
    ) -> None:
        limit_blas_threads()
        if encoder is None:
            from router_model.encoder_onnx import OnnxEncoder

            encoder = OnnxEncoder()
        self._encoder: Encoder = encoder
        self._knobs = knobs
        self._example_knobs = example_knobs
        self.min_confidence = min_confidence
        self._cache_size = max(1, cache_size)
        self._indexes: OrderedDict[RouteKey, RouteIndex] = OrderedDict()
        self._lock = threading.Lock()  # index_for() may be called from several threads
        # Tokenising and scoring on the event loop, the encoder call alone on the engine's thread.
        prepare = getattr(self._encoder, "prepare", None)
        run = getattr(self._encoder, "run", None)
        self._batcher: MicroBatcher[tuple[RouteIndex, str], Scored] = MicroBatcher(
            run if run is not None else self._encoder.encode, max_batch=max_batch, max_wait_s=batch_wait_s,
            prepare=lambda items: (prepare or list)([text for _, text in items]),
            finish=self._score, thread_name="embedded-router")
        self._closed = False

    @property
    def cached_route_lists(self) -> int:
        return len(self._indexes)

    @property
    def batcher(self) -> MicroBatcher:
        return self._batcher

    @staticmethod
    def _key(routes: Sequence[Route]) -> RouteKey:
        return tuple((r.name, r.description, tuple(r.examples)) for r in routes)

    def _cached(self, key: RouteKey) -> RouteIndex | None:
        with self._lock:
            index = self._indexes.get(key)
            if index is not None:
                self._indexes.move_to_end(key)
            return index

    def index_for(self, routes: Sequence[Route]) -> RouteIndex:
        """The compiled route list, built on first use and kept in a bounded LRU cache."""
        key = self._key(routes)
        index = self._cached(key)
        if index is not None:
            return index
        index = build_index(key, self._encoder)
        with self._lock:
            self._indexes[key] = index
            while len(self._indexes) > self._cache_size:
                self._indexes.popitem(last=False)
        return index

    def knobs_for(self, index: RouteIndex) -> Knobs:
        return self._example_knobs if index.has_examples else self._knobs

    def threshold_for(self, index: RouteIndex) -> float:
        """The least confidence that routes: ``routing.min_confidence`` when set, else the fitted one."""
        return self.min_confidence if self.min_confidence is not None else self.knobs_for(index).threshold

    def _score_batch(self, items: Sequence[tuple[RouteIndex, str]]) -> list[Scored]:
        """One encoder call for all texts, then each route list scores its own queries."""
        return self._score(items, self._encoder.encode([text for _, text in items]))

    def _score(self, items: Sequence[tuple[RouteIndex, str]], queries: np.ndarray) -> list[Scored]:
        texts = [text for _, text in items]
        results: list[Scored | None] = [None] * len(items)
        groups: dict[int, list[int]] = {}
        for i, (index, _) in enumerate(items):
            groups.setdefault(id(index), []).append(i)
        for positions in groups.values():
            index = items[positions[0]][0]
            features = route_features_batch(queries[positions], [content_words(texts[i]) for i in positions], index)
            knobs = self.knobs_for(index)
            fused = fuse(features, knobs)
            sure_of = best_confidence(fused, knobs)
            threshold = self.threshold_for(index)
            for row, i in enumerate(positions):
                best = int(np.argmax(fused[row]))
                sure = float(sure_of[row])
                route = index.names[best] if sure >= threshold else None
                results[i] = Scored(index.names, fused[row], index.names[best], sure, route)
        return results  # type: ignore[return-value]

    def score_many(self, requests: Sequence[tuple[Sequence[Route], Sequence[Message]]]) -> list[Scored | None]:
        """Synchronous scoring of many conversations in one encoder call (eval, tests); None where
        there is nothing to route on (no routes or no user text)."""
        items, where = [], []
        for i, (routes, messages) in enumerate(requests):
            text = routing_text(messages)
            if routes and text:
                items.append((self.index_for(routes), text))
                where.append(i)
        results: list[Scored | None] = [None] * len(requests)
        for i, scored in zip(where, self._score_batch(items) if items else []):
            results[i] = scored
        return results

    def scores(self, routes: Sequence[Route], messages: Sequence[Message]) -> dict[str, float]:
        """Fused score of every route for this conversation (for logs and the eval harness)."""
        scored = self.score_many([(routes, messages)])[0]
        return {} if scored is None else {n: float(s) for n, s in zip(scored.names, scored.scores)}

    def decide(self, routes: Sequence[Route], messages: Sequence[Message]) -> str | None:
        """The route for the latest user intent, or None ("other"). Synchronous, CPU-bound."""
        scored = self.score_many([(routes, messages)])[0]
        return None if scored is None else scored.route

    async def choose(self, routes: Sequence[Route], messages: Sequence[Message]) -> str | None:
        if self._closed:
            raise RouterError("embedded engine is closed")
        text = routing_text(messages)
        if not routes or not text:
            return None
        try:
            index = self._cached(self._key(routes))
            if index is None:  # a new list (per-request preferences): compile it off the loop
                index = await self._batcher.run_in_thread(self.index_for, list(routes))
            return (await self._batcher.submit((index, text))).route
        except RouterError:
            raise
        except Exception as exc:  # a bad input must fall back, never break the request
            raise RouterError(f"embedded routing failed: {exc}") from exc

    async def aclose(self) -> None:
        self._closed = True
        self._batcher.close()
