"""Scoring of a query against a list of routes for the embedded engine: pure functions.

A route list is compiled once into a ``RouteIndex`` (embeddings of each description phrase in a
few phrasings, the whole description, the phrase centroid, the route's vocabulary and, when the
routes have them, their examples). A query then gets, for each route, a short vector of
route-agnostic similarity features; a fixed weighting (``Knobs.weights``) fuses them into one
score per route. The best route wins unless its *confidence* is under the threshold ("other"):
its share of ``softmax(scores / temperature)`` over the list's routes plus one more competitor,
"other", with a constant score; below a floor score the confidence fades quickly.

Why a share rather than the score itself: a score's scale depends on how a route list is written
(many short comma-separated phrases score higher than one sentence), so a score threshold fitted
on one benchmark sends most requests of differently written routes to "other"; the share mostly
says how clearly the best route beats the rest, which carries over. The constant "other" keeps a
short list (two or three routes, where the best always has a large share of the routes alone)
able to say "other" to a request that matches none of them; the floor catches small talk that a
short list's best route wins by default. Measured in ``embedded_tune --compare``: CLINC150,
SNIPS and a coding-route set, whole and cut into three-route lists.

The weights, the temperature and the threshold are global: the same for every route and every
route list. They were fitted on CLINC150 train/val by ``python -m router_model.embedded_tune``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from router_model.embedded_text import content_words, route_label, split_description

# Phrasings of one description phrase that each give a similarity feature. The bare phrase
# matches the keyword; the labelled ones give it the route's context ("rewards" of a credit
# card); the question form is closer to how users write.
PHRASE_VIEWS: tuple[str, ...] = ("{phrase}", "{label}: {phrase}", "{head}: {phrase}", "i have a question about {phrase}")
FEATURES: tuple[str, ...] = (
    "max_phrase",
    "max_label_phrase",
    "max_head_phrase",
    "max_question_phrase",
    "second_phrase",
    "full_description",
    "centroid",
    "lexical",
)
# Used when the routes carry examples (``Route.examples``).
EXAMPLE_FEATURES: tuple[str, ...] = ("nearest_example", "nearest_two_examples", "example_centroid")


class Encoder(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class Knobs:
    """Global fusion weights (one per feature, in ``FEATURES`` order, then ``EXAMPLE_FEATURES``
    for route lists with examples) and the "other" threshold."""

    weights: tuple[float, ...]
    threshold: float  # minimum confidence of the best route, 0..1
    temperature: float = 2.0
    other_score: float = 4.0  # the constant score of "other" in the confidence
    floor: float = 3.75  # under this best score, the confidence fades (e^(2 * (score - floor)))

    def __post_init__(self) -> None:
        if len(self.weights) not in (len(FEATURES), len(FEATURES) + len(EXAMPLE_FEATURES)):
            raise ValueError(f"expected {len(FEATURES)} or {len(FEATURES) + len(EXAMPLE_FEATURES)} weights, got {len(self.weights)}")


# Fitted by `python -m router_model.embedded_tune --data <clinc150>` (train: weights; val:
# threshold; the temperature chosen across CLINC150 val, SNIPS train and the coding dev set).
DEFAULT_KNOBS = Knobs(weights=(3.813, 2.777, 1.881, 4.904, 2.375, 0.996, 3.637, 0.411), threshold=0.222, temperature=2.0,
                      other_score=4.0)
# Route lists with examples: the same features, then EXAMPLE_FEATURES.
EXAMPLE_KNOBS = Knobs(weights=(3.469, 1.946, 1.645, 3.899, 1.414, 0.215, 2.375, 0.386, 3.807, 2.49, 2.338), threshold=0.241,
                      temperature=2.0, other_score=4.0)


@dataclass(frozen=True, slots=True)
class RouteIndex:
    """Everything about a route list that does not depend on the query."""

    names: tuple[str, ...]
    # Embeddings of all phrases of all routes, one block per view: (views, phrases_total, dim).
    phrases: np.ndarray
    # Start offset of each route's phrases in the phrase axis (for np.maximum.reduceat).
    starts: np.ndarray
    counts: np.ndarray
    full: np.ndarray  # (routes, dim): "label: description"
    centroid: np.ndarray  # (routes, dim): normalised mean of the bare phrase embeddings
    vocab: tuple[frozenset[str], ...]
    idf: dict[str, float]
    # The routes' examples, all routes' in one block: (examples_total, dim), with offsets and
    # counts per route (0 for a route without examples). Empty when no route has any.
    examples: np.ndarray
    example_starts: np.ndarray
    example_counts: np.ndarray

    @property
    def has_examples(self) -> bool:
        return bool(self.example_counts.sum())


def phrase_views(name: str, description: str) -> list[list[str]]:
    """Texts to embed for one route: for each view, one text per phrase."""
    head, phrases = split_description(description)
    label = route_label(name)
    head = head or label
    return [[view.format(phrase=p, label=label, head=head) for p in phrases] for view in PHRASE_VIEWS]


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)


def _offsets(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


def build_index(routes: Sequence[tuple[str, str] | tuple[str, str, Sequence[str]]], encoder: Encoder) -> RouteIndex:
    """Compile ``(name, description[, examples])`` tuples; all texts go to the encoder in one batch."""
    routes = [(r[0], r[1], tuple(r[2]) if len(r) > 2 else ()) for r in routes]
    per_route = [phrase_views(name, desc) for name, desc, _ in routes]
    counts = np.array([len(views[0]) for views in per_route], dtype=np.int64)
    starts = _offsets(counts)
    texts: list[str] = []
    for v in range(len(PHRASE_VIEWS)):
        for views in per_route:
            texts.extend(views[v])
    fulls = [f"{route_label(name)}: {desc}" for name, desc, _ in routes]
    examples = [e for _, _, ex in routes for e in ex]
    emb = encoder.encode(texts + fulls + examples)
    total = int(counts.sum())
    phrases = emb[: total * len(PHRASE_VIEWS)].reshape(len(PHRASE_VIEWS), total, -1)
    centroid = _unit(np.add.reduceat(phrases[0], starts, axis=0) / counts[:, None])
    full_at = total * len(PHRASE_VIEWS)
    vocab = tuple(frozenset(content_words(f"{route_label(n)} {d}")) for n, d, _ in routes)
    df: dict[str, int] = {}
    for words in vocab:
        for w in words:
            df[w] = df.get(w, 0) + 1
    # Words that many routes share say little about which one is meant.
    idf = {w: math.log(1.0 + len(routes) / n) for w, n in df.items()}
    example_counts = np.array([len(ex) for _, _, ex in routes], dtype=np.int64)
    return RouteIndex(
        names=tuple(name for name, _, _ in routes),
        phrases=np.ascontiguousarray(phrases, dtype=np.float32),
        starts=starts,
        counts=counts,
        full=np.ascontiguousarray(emb[full_at : full_at + len(routes)], dtype=np.float32),
        centroid=centroid.astype(np.float32),
        vocab=vocab,
        idf=idf,
        examples=np.ascontiguousarray(emb[full_at + len(routes) :], dtype=np.float32),
        example_starts=_offsets(example_counts),
        example_counts=example_counts,
    )


def lexical_overlap(words: set[str], index: RouteIndex) -> np.ndarray:
    """Per route: sum of the idf of the query's content words found in the route's text."""
    return np.array([sum(index.idf[w] for w in words & vocab) for vocab in index.vocab], dtype=np.float32)


def _segment_top2(sims: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best and second-best row of each segment of ``sims`` (rows, queries); a one-row segment's
    second best is its best."""
    best = np.empty((len(starts), sims.shape[1]), dtype=np.float32)
    second = np.empty_like(best)
    for r, (s, c) in enumerate(zip(starts, counts)):
        block = sims[s : s + c]
        if c == 1:
            best[r] = second[r] = block[0]
            continue
        top = np.partition(block, c - 2, axis=0)[c - 2 :]
        best[r], second[r] = top[1], top[0]
    return best, second


def route_features_batch(queries: np.ndarray, words: Sequence[set[str]], index: RouteIndex) -> np.ndarray:
    """(queries, routes, features) for unit-length query embeddings (queries, dim); with
    examples in the index, ``EXAMPLE_FEATURES`` follow ``FEATURES``."""
    sims = index.phrases @ queries.T  # (views, phrases_total, queries)
    best = np.maximum.reduceat(sims, index.starts, axis=1)  # (views, routes, queries)
    # Second-best bare-phrase match: a route hit by two phrases is a safer bet than one hit once.
    _, second = _segment_top2(sims[0], index.starts, index.counts)
    lexical = np.stack([lexical_overlap(w, index) for w in words], axis=1)  # (routes, queries)
    columns = [best[0], best[1], best[2], best[3], second, index.full @ queries.T, index.centroid @ queries.T, lexical]
    if index.has_examples:
        columns += _example_features(queries, index, fallback=best[0])
    return np.stack(columns, axis=-1).transpose(1, 0, 2).astype(np.float32)


def _example_features(queries: np.ndarray, index: RouteIndex, fallback: np.ndarray) -> list[np.ndarray]:
    """Nearest example, mean of the two nearest, and the examples' centroid, per route; a route
    without examples gets its best description phrase in their place."""
    sims = index.examples @ queries.T  # (examples_total, queries)
    nearest = fallback.copy()
    near2 = fallback.copy()
    centre = fallback.copy()
    for r, (s, c) in enumerate(zip(index.example_starts, index.example_counts)):
        if not c:
            continue
        block = sims[s : s + c]
        top = np.sort(block, axis=0)[::-1]
        nearest[r] = top[0]
        near2[r] = top[: min(2, c)].mean(axis=0)
        centre[r] = _unit(index.examples[s : s + c].mean(axis=0)) @ queries.T
    return [nearest, near2, centre]


def route_features(query: np.ndarray, words: set[str], index: RouteIndex) -> np.ndarray:
    """(routes, features) similarity features of one unit-length query embedding."""
    return route_features_batch(query[None, :], [words], index)[0]


def fuse(features: np.ndarray, knobs: Knobs) -> np.ndarray:
    """One score per route (last axis of ``features``: the features)."""
    if features.shape[-1] != len(knobs.weights):
        raise ValueError(f"{features.shape[-1]} features but {len(knobs.weights)} weights")
    return features @ np.asarray(knobs.weights, dtype=np.float32)


def confidence(scores: np.ndarray, temperature: float, other_score: float = -np.inf) -> np.ndarray:
    """Each route's share of softmax over (scores, other_score) / temperature, along the last
    axis (routes); the share of "other" itself is left out."""
    other = np.full(scores.shape[:-1] + (1,), other_score, dtype=np.float64)
    z = np.concatenate([scores.astype(np.float64), other], axis=-1) / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return (z[..., :-1] / z.sum(axis=-1, keepdims=True)).astype(np.float32)


FLOOR_SHARPNESS = 2.0  # per unit of score under the floor


def best_confidence(scores: np.ndarray, knobs: "Knobs") -> np.ndarray:
    """Confidence of the best route (last axis: routes): its share, faded under the floor."""
    best = scores.max(axis=-1)
    fade = np.minimum(1.0, np.exp(FLOOR_SHARPNESS * (best - knobs.floor)))
    return confidence(scores, knobs.temperature, knobs.other_score).max(axis=-1) * fade


def pick(scores: np.ndarray, knobs: "Knobs", threshold: float | None = None) -> int | None:
    """Index of the best route, or None when its confidence is under the threshold (the knobs'
    unless given)."""
    if scores.size == 0:
        return None
    sure = float(best_confidence(scores, knobs))
    return int(np.argmax(scores)) if sure >= (knobs.threshold if threshold is None else threshold) else None
