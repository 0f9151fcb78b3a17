"""Fit the embedded engine's global knobs on CLINC150 train/val (never on test).

    python -m router_model.embedded_tune --data ../shared/data/clinc150

- The fusion weights (one per feature, shared by all routes) maximise the likelihood of the right
  route among all routes on the in-scope ``train`` queries (a conditional logit: 8 numbers).
- The "other" threshold maximises accuracy on ``val`` + ``oos_val``, with out-of-scope queries
  weighted to the benchmark's mix (1,000 of 5,500) since val holds only 100 of them.

No query ever becomes an example of a route: the routes are known by their descriptions only.
Prints the ``Knobs`` to put in ``embedded_scoring.DEFAULT_KNOBS``. Takes a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

from router_model.clinc150 import OTHER, load_cases
from router_model.embedded_encoder import MiniLMEncoder
from router_model.embedded_scoring import FEATURES, Encoder, Knobs, RouteIndex, build_index, route_features
from router_model.embedded_text import content_words, routing_text

BENCHMARK_OOS_SHARE = 1000 / 5500


def feature_tensor(encoder: Encoder, index: RouteIndex, texts: Sequence[str]) -> np.ndarray:
    """(queries, routes, features) for many queries."""
    emb = encoder.encode(list(texts))
    return np.stack([route_features(e, content_words(t), index) for e, t in zip(emb, texts)])


def fit_weights(features: np.ndarray, labels: np.ndarray, ridge: float = 1e-3, steps: int = 50) -> np.ndarray:
    """Newton's method for the conditional logit P(route | query) ∝ exp(w · f(query, route)).

    ``features``: (n, routes, k); ``labels``: (n,) index of the right route (all in scope).
    """
    n, _, k = features.shape
    w = np.zeros(k)
    rows = np.arange(n)
    for _ in range(steps):
        z = features @ w
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        mean_f = np.einsum("nr,nrk->nk", p, features)
        grad = (mean_f - features[rows, labels]).mean(0) + ridge * w
        centred = features - mean_f[:, None, :]
        hess = np.einsum("nr,nrk,nrj->kj", p, centred, centred) / n + ridge * np.eye(k)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w


def weighted_accuracy(scores: np.ndarray, labels: np.ndarray, threshold: float, oos_share: float) -> float:
    """Accuracy with out-of-scope queries (label -1) weighted to ``oos_share`` of the total."""
    best = scores.argmax(1)
    pred = np.where(scores.max(1) >= threshold, best, -1)
    inscope = labels >= 0
    acc_in = float((pred[inscope] == labels[inscope]).mean()) if inscope.any() else 0.0
    acc_oos = float((pred[~inscope] == -1).mean()) if (~inscope).any() else 0.0
    return (1 - oos_share) * acc_in + oos_share * acc_oos


def best_threshold(scores: np.ndarray, labels: np.ndarray, oos_share: float = BENCHMARK_OOS_SHARE) -> float:
    """The threshold (among the observed top scores) with the best weighted accuracy."""
    candidates = np.unique(np.round(scores.max(1), 3))
    results = [(weighted_accuracy(scores, labels, t, oos_share), -t) for t in candidates]
    return -max(results)[1]


def labels_of(cases: Sequence[dict], names: Sequence[str]) -> np.ndarray:
    position = {n: i for i, n in enumerate(names)}
    return np.array([-1 if c["expected"] == OTHER else position[c["expected"]] for c in cases])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="embedded_tune", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="CLINC150 folder (data_full.json, routes.yaml)")
    parser.add_argument("--oos-share", type=float, default=BENCHMARK_OOS_SHARE)
    args = parser.parse_args(argv)

    routes = [(r["name"], r["description"]) for r in yaml.safe_load((args.data / "routes.yaml").read_text())["routes"]]
    names = [n for n, _ in routes]
    encoder = MiniLMEncoder()
    index = build_index(routes, encoder)

    train = [c for c in load_cases(args.data, "train") if c["expected"] != OTHER]
    val = load_cases(args.data, "val")
    f_train = feature_tensor(encoder, index, [routing_text(c["messages"]) for c in train])
    weights = fit_weights(f_train, labels_of(train, names))

    f_val = feature_tensor(encoder, index, [routing_text(c["messages"]) for c in val])
    y_val = labels_of(val, names)
    s_val = f_val @ weights
    threshold = best_threshold(s_val, y_val, args.oos_share)
    knobs = Knobs(weights=tuple(round(float(w), 3) for w in weights), threshold=round(float(threshold), 3))
    report = {
        "features": list(FEATURES),
        "weights": list(knobs.weights),
        "threshold": knobs.threshold,
        "val_weighted_accuracy": round(weighted_accuracy(s_val, y_val, threshold, args.oos_share), 4),
    }
    print(json.dumps(report, indent=2))
    print(f"DEFAULT_KNOBS = {knobs!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
