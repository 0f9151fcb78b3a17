"""``switchyard eval``: measure a routing engine on labelled conversations.

    switchyard eval --routes ROUTES.yaml --cases CASES.jsonl [--engine embedded|arch-router|plano-orchestrator]
                    [--endpoint URL] [--model NAME] [--timeout SECONDS] [--limit N] [--json]
                    [--min-confidence X] [--calibrate]

ROUTES.yaml holds ``routes: [{name, description, examples?}]``; each CASES.jsonl line is
``{"messages": [...], "expected": "<route name or other>"}``. Prints accuracy (overall, in-scope,
out-of-scope recall), per-route precision/recall, the worst confusions and decision latency.
A decision that fails or misses the deadline counts as "other" (the default model would serve
it) and is counted under ``errors``.

``--calibrate`` (embedded engine): the ``routing.min_confidence`` that would serve these cases
best, and what it would change against the current one (the fitted default, or
``--min-confidence``): accuracy, requests moved to or from "other", per-route recall.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import yaml

from router_model.engine import Route, RouterEngine, RouterError

OTHER = "other"
ENGINES = ("embedded", "arch-router", "plano-orchestrator")


@dataclass(frozen=True, slots=True)
class Case:
    messages: list[dict]
    expected: str


# ---------------------------------------------------------------------------------------------
# Inputs


def load_routes(path: Path) -> list[Route]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    routes = [Route(name=str(r["name"]), description=str(r["description"]),
                    examples=tuple(str(e) for e in r.get("examples") or ()))
              for r in data.get("routes", [])]
    if not routes:
        raise ValueError(f"{path}: no routes")
    return routes


def parse_cases(lines: Iterable[str], limit: int | None = None) -> list[Case]:
    cases: list[Case] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            cases.append(Case(messages=list(row["messages"]), expected=str(row["expected"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"case line {number}: {exc}") from exc
        if limit is not None and len(cases) >= limit:
            break
    return cases


# ---------------------------------------------------------------------------------------------
# Scoring (pure)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def score(expected: Sequence[str], predicted: Sequence[str], route_names: Sequence[str] = ()) -> dict:
    """Accuracy figures for parallel lists of labels (route names or ``other``)."""
    if len(expected) != len(predicted):
        raise ValueError("expected and predicted differ in length")
    n = len(expected)
    correct = sum(e == p for e, p in zip(expected, predicted))
    inscope = [(e, p) for e, p in zip(expected, predicted) if e != OTHER]
    oos = [(e, p) for e, p in zip(expected, predicted) if e == OTHER]
    labels = list(dict.fromkeys([*route_names, *expected, *predicted]))
    per_route = {}
    for label in labels:
        tp = sum(e == label and p == label for e, p in zip(expected, predicted))
        support = sum(e == label for e in expected)
        chosen = sum(p == label for p in predicted)
        per_route[label] = {
            "precision": round(_ratio(tp, chosen), 4),
            "recall": round(_ratio(tp, support), 4),
            "support": support,
        }
    confusion = Counter((e, p) for e, p in zip(expected, predicted) if e != p)
    return {
        "n": n,
        "accuracy": round(_ratio(correct, n), 4),
        "in_scope_accuracy": round(_ratio(sum(e == p for e, p in inscope), len(inscope)), 4),
        "out_of_scope_recall": round(_ratio(sum(p == OTHER for _, p in oos), len(oos)), 4),
        "n_in_scope": len(inscope),
        "n_out_of_scope": len(oos),
        "per_route": per_route,
        "confusion": {f"{e} -> {p}": c for (e, p), c in confusion.most_common()},
    }


def worst_routes(per_route: dict, k: int = 3) -> list[str]:
    """The k labels with the lowest recall (ties: more support first)."""
    ranked = sorted((m["recall"], -m["support"], label) for label, m in per_route.items() if m["support"])
    return [label for _, _, label in ranked[:k]]


def latency_summary(seconds: Sequence[float]) -> dict:
    ms = [s * 1000.0 for s in seconds]
    return {
        "p50": round(percentile(ms, 50), 3),
        "p95": round(percentile(ms, 95), 3),
        "max": round(max(ms), 3) if ms else 0.0,
    }


def format_report(result: dict, top_confusions: int = 3) -> str:
    lines = [
        f"engine: {result.get('engine', '?')}   cases: {result['n']}   errors: {result.get('errors', 0)}",
        f"accuracy: {result['accuracy']:.1%}   in-scope: {result['in_scope_accuracy']:.1%} "
        f"(n={result['n_in_scope']})   out-of-scope recall: {result['out_of_scope_recall']:.1%} "
        f"(n={result['n_out_of_scope']})",
        f"latency ms: p50 {result['latency_ms']['p50']:.2f}   p95 {result['latency_ms']['p95']:.2f}   "
        f"max {result['latency_ms']['max']:.2f}",
        "",
        f"{'route':<28}{'precision':>10}{'recall':>10}{'support':>10}",
    ]
    for label, m in result["per_route"].items():
        lines.append(f"{label:<28}{m['precision']:>10.1%}{m['recall']:>10.1%}{m['support']:>10}")
    lines.append("")
    lines.append("worst routes and where their cases went:")
    for label in worst_routes(result["per_route"]):
        went = [(k.split(" -> ", 1)[1], c) for k, c in result["confusion"].items() if k.startswith(f"{label} -> ")]
        shown = ", ".join(f"{p} {c}" for p, c in went[:top_confusions]) or "-"
        lines.append(f"  {label} (recall {result['per_route'][label]['recall']:.1%}): {shown}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Running an engine


def make_engine(kind: str, endpoint: str | None, model: str, timeout: float,
                min_confidence: float | None = None) -> RouterEngine:
    if kind == "embedded":
        from router_model.embedded import EmbeddedEngine

        return EmbeddedEngine(min_confidence=min_confidence)
    if kind == "arch-router":
        if not endpoint:
            raise ValueError("--endpoint is required for --engine arch-router")
        from router_model.arch_router import ArchRouterEngine  # written alongside; imported only when asked

        return ArchRouterEngine(endpoint, model=model or "Arch-Router", timeout=timeout)
    if kind == "plano-orchestrator":
        if not endpoint:
            raise ValueError("--endpoint is required for --engine plano-orchestrator")
        from router_model.plano_orchestrator import PlanoOrchestratorEngine

        return PlanoOrchestratorEngine(endpoint, model=model or "Plano-Orchestrator", timeout=timeout)
    raise ValueError(f"unknown engine {kind!r}")


async def run_cases(
    engine: RouterEngine, routes: Sequence[Route], cases: Sequence[Case], timeout: float
) -> tuple[list[str], list[float], int]:
    """Predictions (route name or ``other``), per-decision seconds and the number of failures."""
    if cases:
        # Warm-up outside the clock: the embedded engine compiles the route list on first use.
        try:
            async with asyncio.timeout(max(timeout, 60.0)):
                await engine.choose(routes, cases[0].messages)
        except (RouterError, TimeoutError):
            pass
    predicted: list[str] = []
    seconds: list[float] = []
    errors = 0
    for case in cases:
        start = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                choice = await engine.choose(routes, case.messages)
        except (RouterError, TimeoutError):
            choice, errors = None, errors + 1
        seconds.append(time.perf_counter() - start)
        predicted.append(choice if choice is not None else OTHER)
    return predicted, seconds, errors


async def evaluate(args: argparse.Namespace) -> dict:
    routes = load_routes(args.routes)
    with args.cases.open(encoding="utf-8") as f:
        cases = parse_cases(f, args.limit)
    engine = make_engine(args.engine, args.endpoint, args.model, args.timeout, args.min_confidence)
    try:
        predicted, seconds, errors = await run_cases(engine, routes, cases, args.timeout)
    finally:
        await engine.aclose()
    result = {"engine": args.engine, **score([c.expected for c in cases], predicted, [r.name for r in routes])}
    result["errors"] = errors
    result["latency_ms"] = latency_summary(seconds)
    return result


# ---------------------------------------------------------------------------------------------
# Calibration (embedded engine)


def calibration(expected: Sequence[str], best: Sequence[str], sure: Sequence[float], current: float,
                route_names: Sequence[str]) -> dict:
    """The least confidence that would route these cases best, against ``current``.

    ``best``/``sure``: each case's best route and its confidence, whatever the threshold. Pure:
    every candidate threshold is one of the observed confidences (or 0: always route); ties go
    to the candidate nearest ``current``.
    """
    def predicted(threshold: float) -> list[str]:
        return [b if s >= threshold else OTHER for b, s in zip(best, sure)]

    candidates = sorted({0.0, current, *(round(float(s), 4) for s in sure)})
    ranked = [(score(expected, predicted(t))["accuracy"], -abs(t - current), t) for t in candidates]
    _, _, chosen = max(ranked)
    before, after = predicted(current), predicted(chosen)
    now, then = score(expected, before, route_names), score(expected, after, route_names)
    moved_to_route = [(e, a) for e, b, a in zip(expected, before, after) if b == OTHER and a != OTHER]
    moved_to_other = [(e, b) for e, b, a in zip(expected, before, after) if b != OTHER and a == OTHER]
    return {
        "current": {"min_confidence": round(current, 4), **{k: now[k] for k in ("accuracy", "in_scope_accuracy", "out_of_scope_recall")}},
        "best": {"min_confidence": round(chosen, 4), **{k: then[k] for k in ("accuracy", "in_scope_accuracy", "out_of_scope_recall")}},
        "to_a_route": {"cases": len(moved_to_route), "now_right": sum(e == a for e, a in moved_to_route)},
        "to_other": {"cases": len(moved_to_other), "now_right": sum(e == OTHER for e, _ in moved_to_other)},
        "recall": {r: {"current": now["per_route"][r]["recall"], "best": then["per_route"][r]["recall"]}
                   for r in route_names if now["per_route"].get(r, {}).get("support")},
    }


def format_calibration(cal: dict) -> str:
    cur, best = cal["current"], cal["best"]
    lines = [
        f"min_confidence {cur['min_confidence']:.3f} (current): accuracy {cur['accuracy']:.1%}, in-scope "
        f"{cur['in_scope_accuracy']:.1%}, out-of-scope recall {cur['out_of_scope_recall']:.1%}",
        f"min_confidence {best['min_confidence']:.3f} (best for these cases): accuracy {best['accuracy']:.1%}, in-scope "
        f"{best['in_scope_accuracy']:.1%}, out-of-scope recall {best['out_of_scope_recall']:.1%}",
        f"it would send {cal['to_a_route']['cases']} cases from the default model to a route "
        f"({cal['to_a_route']['now_right']} of them right) and {cal['to_other']['cases']} from a route to the default "
        f"model ({cal['to_other']['now_right']} of them right)",
        "",
        f"{'route':<28}{'recall now':>12}{'then':>10}",
    ]
    lines += [f"{r:<28}{v['current']:>12.1%}{v['best']:>10.1%}" for r, v in cal["recall"].items()]
    lines += ["", "to use it:", "routing:", f"  min_confidence: {best['min_confidence']:.3f}"]
    return "\n".join(lines)


async def calibrate(args: argparse.Namespace) -> dict:
    if args.engine != "embedded":
        raise ValueError("--calibrate needs --engine embedded (the only engine with a confidence)")
    from router_model.embedded import EmbeddedEngine

    routes = load_routes(args.routes)
    with args.cases.open(encoding="utf-8") as f:
        cases = parse_cases(f, args.limit)
    engine = EmbeddedEngine(min_confidence=args.min_confidence)
    try:
        scored = engine.score_many([(routes, c.messages) for c in cases])
        current = engine.threshold_for(engine.index_for(routes))
    finally:
        await engine.aclose()
    best = [s.best if s else OTHER for s in scored]
    sure = [s.confidence if s else 0.0 for s in scored]
    return calibration([c.expected for c in cases], best, sure, current, [r.name for r in routes])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchyard eval", description="Measure a routing engine on labelled cases.")
    parser.add_argument("--routes", type=Path, required=True, help="ROUTES.yaml with routes: [{name, description}]")
    parser.add_argument("--cases", type=Path, required=True, help='CASES.jsonl: {"messages": [...], "expected": ...}')
    parser.add_argument("--engine", choices=ENGINES, default="embedded")
    parser.add_argument("--endpoint", help="the router's OpenAI-compatible base URL (arch-router, plano-orchestrator)")
    parser.add_argument("--model", help="model name served at --endpoint (default: Arch-Router, Plano-Orchestrator)")
    parser.add_argument("--timeout", type=float, default=1.0, help="deadline of one decision, seconds")
    parser.add_argument("--limit", type=int, help="evaluate the first N cases only")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    parser.add_argument("--min-confidence", type=float, help="embedded engine: least confidence that routes (routing.min_confidence)")
    parser.add_argument("--calibrate", action="store_true",
                        help="embedded engine: report the min_confidence that would serve these cases best")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.min_confidence is not None and not 0.0 <= args.min_confidence <= 1.0:
        print("switchyard eval: --min-confidence must be between 0 and 1", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(calibrate(args) if args.calibrate else evaluate(args))
    except (OSError, ValueError, ImportError) as exc:
        print(f"switchyard eval: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        print(format_calibration(result) if args.calibrate else format_report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
