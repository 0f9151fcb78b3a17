"""Scoring of a query against a list of routes for the embedded engine: pure functions.

A route list is compiled once into a ``RouteIndex`` (embeddings of each description phrase in a
few phrasings, the whole description, the phrase centroid and the route's vocabulary). A query
then gets, for each route, a short vector of route-agnostic similarity features; a fixed
weighting (``Knobs.weights``) fuses them into one score per route, and the best route wins
unless its score is under ``Knobs.threshold`` ("other").

The weights and the threshold are global: the same for every route and every route list. They
were fitted on CLINC150 train/val by ``python -m router_model.embedded_tune`` (see there).
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


class Encoder(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class Knobs:
    """Global fusion weights (one per feature, in ``FEATURES`` order) and the "other" threshold."""

    weights: tuple[float, ...]
    threshold: float

    def __post_init__(self) -> None:
        if len(self.weights) != len(FEATURES):
            raise ValueError(f"expected {len(FEATURES)} weights, got {len(self.weights)}")


# Fitted by `python -m router_model.embedded_tune --data <clinc150>` (train: weights; val: threshold).
DEFAULT_KNOBS = Knobs(weights=(3.774, 2.697, 1.957, 4.934, 2.381, 0.982, 3.63, 0.4), threshold=5.227)


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


def phrase_views(name: str, description: str) -> list[list[str]]:
    """Texts to embed for one route: for each view, one text per phrase."""
    head, phrases = split_description(description)
    label = route_label(name)
    head = head or label
    return [[view.format(phrase=p, label=label, head=head) for p in phrases] for view in PHRASE_VIEWS]


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)


def build_index(routes: Sequence[tuple[str, str]], encoder: Encoder) -> RouteIndex:
    """Compile ``(name, description)`` pairs; all texts go to the encoder in one batch."""
    per_route = [phrase_views(name, desc) for name, desc in routes]
    counts = np.array([len(views[0]) for views in per_route], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    texts: list[str] = []
    for v in range(len(PHRASE_VIEWS)):
        for views in per_route:
            texts.extend(views[v])
    fulls = [f"{route_label(name)}: {desc}" for name, desc in routes]
    emb = encoder.encode(texts + fulls)
    total = int(counts.sum())
    phrases = emb[: total * len(PHRASE_VIEWS)].reshape(len(PHRASE_VIEWS), total, -1)
    centroid = _unit(np.add.reduceat(phrases[0], starts, axis=0) / counts[:, None])
    vocab = tuple(frozenset(content_words(f"{route_label(n)} {d}")) for n, d in routes)
    df: dict[str, int] = {}
    for words in vocab:
        for w in words:
            df[w] = df.get(w, 0) + 1
    # Words that many routes share say little about which one is meant.
    idf = {w: math.log(1.0 + len(routes) / n) for w, n in df.items()}
    return RouteIndex(
        names=tuple(name for name, _ in routes),
        phrases=np.ascontiguousarray(phrases, dtype=np.float32),
        starts=starts,
        counts=counts,
        full=np.ascontiguousarray(emb[total * len(PHRASE_VIEWS) :], dtype=np.float32),
        centroid=centroid.astype(np.float32),
        vocab=vocab,
        idf=idf,
    )


def lexical_overlap(words: set[str], index: RouteIndex) -> np.ndarray:
    """Per route: sum of the idf of the query's content words found in the route's text."""
    return np.array([sum(index.idf[w] for w in words & vocab) for vocab in index.vocab], dtype=np.float32)


def route_features(query: np.ndarray, words: set[str], index: RouteIndex) -> np.ndarray:
    """(routes, len(FEATURES)) similarity features of one unit-length query embedding."""
    sims = index.phrases @ query  # (views, phrases_total)
    best = np.maximum.reduceat(sims, index.starts, axis=1)  # (views, routes)
    # Second-best bare-phrase match: a route hit by two phrases is a safer bet than one hit once.
    bare = sims[0].copy()
    top_at = np.array([s + int(np.argmax(bare[s : s + c])) for s, c in zip(index.starts, index.counts)])
    bare[top_at] = -1.0
    second = np.maximum.reduceat(bare, index.starts)
    second = np.where(index.counts > 1, second, best[0])
    return np.column_stack(
        [
            best[0],
            best[1],
            best[2],
            best[3],
            second,
            index.full @ query,
            index.centroid @ query,
            lexical_overlap(words, index),
        ]
    ).astype(np.float32)


def fuse(features: np.ndarray, knobs: Knobs) -> np.ndarray:
    """One score per route (rows of ``features``)."""
    return features @ np.asarray(knobs.weights, dtype=np.float32)


def pick(scores: np.ndarray, threshold: float) -> int | None:
    """Index of the best route, or None when even the best scores under the threshold."""
    if scores.size == 0:
        return None
    best = int(np.argmax(scores))
    return best if float(scores[best]) >= threshold else None
