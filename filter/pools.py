"""A route's pool of models in the order that serves it (Plano's `selection_policy`).

The first model of the order serves the route; the others are its failover chain, in order.
- `none`: the order as written.
- `cheapest`: by price per token (input + output, as Plano ranks its cost feed) from the model
  table (`filter/catalog.py`, a pinned registry package, overridable per entry), fixed at
  start-up; models without a price come last, in their written order.
- `fastest`: by the latency Envoy observed for each model (its per-cluster request times, read by
  `filter/latency.py`), at run time; models not observed yet come last, in their written order.

Envoy serves each order through its own aggregate cluster, so every order that may be chosen is
rendered at start-up: all of them for pools of up to `MAX_PERMUTED` models, else one per model
(that model first, the others as written). Pure functions.
"""

from __future__ import annotations

from itertools import permutations
from typing import Mapping, Sequence

from filter.config import Provider, RoutePool

MAX_PERMUTED = 4  # 4! = 24 aggregate clusters for one pool at most


def price_per_token(provider: Provider) -> float | None:
    """USD for one input and one output token, from the model table; None when it has no price."""
    from filter.catalog import build_entry  # the table reads the configuration package

    prices = build_entry(provider).prices
    return None if prices is None else (prices.input + prices.output) / 1e6


def by_metric(models: Sequence[Provider], metric: Mapping[str, float]) -> tuple[Provider, ...]:
    """Ascending by `metric[slug]`; models without a value keep their order, after the others."""
    known = [p for p in models if metric.get(p.slug) is not None]
    unknown = [p for p in models if metric.get(p.slug) is None]
    return tuple(sorted(known, key=lambda p: metric[p.slug])) + tuple(unknown)


def static_order(models: Sequence[Provider], prefer: str) -> tuple[Provider, ...]:
    """The order before anything is observed: by price for `cheapest`, else as written."""
    if prefer != "cheapest":
        return tuple(models)
    prices = {p.slug: price for p in models if (price := price_per_token(p)) is not None}
    return by_metric(models, prices)


def renderable_orders(pool: RoutePool) -> list[tuple[Provider, ...]]:
    """Every order this pool may be served in (each needs its aggregate cluster)."""
    if len(pool.models) < 2:
        return []
    if pool.prefer != "fastest":
        return [pool.order]
    if len(pool.models) <= MAX_PERMUTED:
        return [tuple(order) for order in permutations(pool.models)]
    return [_first_then_written(pool, p) for p in pool.models]


def order(pool: RoutePool, latency: Mapping[str, float] | None = None) -> tuple[Provider, ...]:
    """The order that serves the route now (one of `renderable_orders` for pools of two or more)."""
    if pool.prefer != "fastest" or not latency:
        return pool.order
    ranked = by_metric(pool.order, latency)
    if len(pool.models) <= MAX_PERMUTED:
        return ranked
    return _first_then_written(pool, ranked[0])


def _first_then_written(pool: RoutePool, first: Provider) -> tuple[Provider, ...]:
    return (first, *(p for p in pool.models if p is not first))


def slugs(models: Sequence[Provider]) -> tuple[str, ...]:
    return tuple(p.slug for p in models)
