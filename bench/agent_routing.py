"""`python -m bench.agent_routing`: what reading only the user's words does to the embedded engine.

Each labelled prompt is sent in the shapes coding agents give it (tests/agent_shapes.py, written
from Claude Code's and Roo Code's real requests), and the embedded engine decides on two inputs:

- **before**: the request's messages as the router got them before turn-aware routing — harness
  envelopes (Claude Code's `<system-reminder>`, Roo Code's `<environment_details>`) included;
- **after**: `filter/sessions`' view — the user's words and the assistant's text only.

A loop step (`…_step`) is labelled with its turn's task: that is what a pinned step is served by,
and what a cold step is decided on. Sets: CLINC150 test + oos_test (`../shared/data/clinc150`,
5,500 cases, its ten routes) and the coding-agent set (`bench/data/coding_agent_routes.yaml`).
Writes the table into README.md (`agent-routing` block); `--limit N` scores N cases per set.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path
from typing import Callable

import yaml

from bench.readme_block import replace_block
from filter.config import Routing
from filter.errors import ClientApi
from filter.sessions.conversation import read_conversation
from filter.sessions.envelopes import Envelopes
from filter.sessions.view import router_view
from router_model.clinc150 import OTHER, load_cases
from router_model.embedded import EmbeddedEngine
from router_model.embedded_text import routing_text
from router_model.engine import Route
from tests.agent_shapes import claude_code_request, roo_code_request

REPO = Path(__file__).resolve().parent.parent
ENVELOPES = Envelopes(Routing().harness_envelopes)
EARLIER_TASK = "add logging to the upload handler"

# shape → (API, body for a prompt)
SHAPES: dict[str, tuple[ClientApi, Callable[[str], dict]]] = {
    "plain": (ClientApi.CHAT, lambda q: {"messages": [{"role": "user", "content": q}]}),
    "claude_code": (ClientApi.MESSAGES, lambda q: claude_code_request(q, 0)),
    "claude_code_step": (ClientApi.MESSAGES, lambda q: claude_code_request(q, 2, reminder_beside_results=True)),
    "claude_code_follow_up": (ClientApi.MESSAGES, lambda q: claude_code_request(EARLIER_TASK, 2, follow_up=q)),
    "roo_code": (ClientApi.CHAT, lambda q: roo_code_request(q, 0)),
    "roo_code_step": (ClientApi.CHAT, lambda q: roo_code_request(q, 2)),
    "roo_code_follow_up": (ClientApi.CHAT, lambda q: roo_code_request(EARLIER_TASK, 2, follow_up=q)),
}


def before(api: ClientApi, body: dict) -> list[dict]:
    return body["messages"]  # what the processor handed the router until now


def after(api: ClientApi, body: dict) -> list[dict]:
    return router_view(read_conversation(api, body), ENVELOPES)


class Scorer:
    """The embedded engine's decisions, many at once (`EmbeddedEngine.score_many`): each distinct
    text it decides on (`routing_text`) is scored once. A sample is checked against `decide`."""

    def __init__(self, engine: EmbeddedEngine, routes: list[Route]):
        self.engine, self.routes, self.memo = engine, routes, {}

    def decide_all(self, conversations: list[list[dict]]) -> list[str]:
        texts = [routing_text(m) for m in conversations]
        first: dict[str, list[dict]] = {}
        for text, messages in zip(texts, conversations):
            if text and text not in self.memo:
                first.setdefault(text, messages)
        pending = list(first.items())
        for start in range(0, len(pending), 256):
            chunk = pending[start:start + 256]
            for (text, _), scored in zip(chunk, self.engine.score_many([(self.routes, m) for _, m in chunk])):
                self.memo[text] = OTHER if scored is None or scored.route is None else scored.route
        return [self.memo.get(t, OTHER) for t in texts]


def score(scorer: Scorer, cases: list[tuple[str, str]]) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    sample = random.Random(7).sample(range(len(cases)), min(10, len(cases)))
    for shape, (api, build) in SHAPES.items():
        row = {}
        for name, view in (("before", before), ("after", after)):
            conversations = [view(api, build(query)) for query, _ in cases]
            decided = scorer.decide_all(conversations)
            for i in sample:
                assert decided[i] == (scorer.engine.decide(scorer.routes, conversations[i]) or OTHER), (shape, name)
            row[name] = sum(got == expected for got, (_, expected) in zip(decided, cases)) / len(cases)
        table[shape] = row
        print(f"  {shape:24s} before {100 * row['before']:5.1f} %   after {100 * row['after']:5.1f} %", flush=True)
    return table


def clinc(data: Path, limit: int | None) -> tuple[list[Route], list[tuple[str, str]]]:
    routes = [Route(r["name"], r["description"]) for r in yaml.safe_load((data / "routes.yaml").read_text())["routes"]]
    cases = [(c["messages"][0]["content"], c["expected"]) for c in load_cases(data, "test")]
    if limit:
        cases = random.Random(1).sample(cases, limit)
    return routes, cases


def coding() -> tuple[list[Route], list[tuple[str, str]]]:
    spec = yaml.safe_load((REPO / "bench" / "data" / "coding_agent_routes.yaml").read_text())
    routes = [Route(r["name"], r["description"]) for r in spec["routes"]]
    cases = [(q, route) for route, prompts in spec["cases"].items() for q in prompts]
    return routes, cases


def main() -> int:
    parser = argparse.ArgumentParser()
    # shared/ lies beside the checkout (or beside the folder of worktrees).
    found = [p / "shared" / "data" / "clinc150" for p in (REPO.parent, REPO.parent.parent)]
    parser.add_argument("--data", type=Path, default=next((p for p in found if p.exists()), found[0]))
    parser.add_argument("--limit", type=int, default=None, help="CLINC150 cases to score (default: all 5,500)")
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    started = time.monotonic()
    engine = EmbeddedEngine()
    results = {}
    for name, (routes, cases) in (("coding-agent set", coding()), ("CLINC150", clinc(args.data, args.limit))):
        print(f"{name}: {len(cases)} cases", flush=True)
        results[name] = (len(cases), score(Scorer(engine, routes), cases))
    (REPO / "build").mkdir(exist_ok=True)
    (REPO / "build" / "agent_routing.json").write_text(json.dumps(results, indent=2))
    lines = ["| request shape | " + " | ".join(f"{n} ({c} cases): before → after" for n, (c, _) in results.items()) + " |",
             "| --- |" + " --- |" * len(results)]
    for shape in SHAPES:
        cells = [f"{100 * t[shape]['before']:.1f} % → {100 * t[shape]['after']:.1f} %" for _, t in results.values()]
        lines.append(f"| {shape.replace('_', ' ')} | " + " | ".join(cells) + " |")
    lines += ["", f"Measured by `python -m bench.agent_routing{' --limit ' + str(args.limit) if args.limit else ''}` "
                  f"on {time.strftime('%Y-%m-%d')} ({platform.machine()}, {time.monotonic() - started:.0f} s)."]
    body = "\n".join(lines)
    if not args.no_readme:
        replace_block("agent-routing", body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
