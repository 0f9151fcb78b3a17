"""Two checkouts of Switchyard side by side in one run: wrk against the bench's upstream through
each one's filter path and fast path, JSON and SSE answers, in interleaved rounds (medians), with
bare Envoy in the same rounds. For the cost of a change that `make bench` cannot show alone:

    git worktree add /tmp/before COMMIT && ln -s $PWD/.venv /tmp/before/.venv \
        && cp envoy/*.wasm /tmp/before/envoy/
    flock /tmp/switchyard-bench.lock .venv/bin/python -m bench.ab_checkouts /tmp/before . --rounds 3 --seconds 5

(the README's stream-guard figures). `--ttfb N` adds the streaming time to first byte: N
sequential streaming requests per gateway, interleaved request by request, medians (as `make
bench` measures it). Each gateway runs its checkout's own filter/ and envoy/.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import tests.gateway as harness
from bench.perf_load import StreamClient, lua_script, run_wrk
from bench.perf_procs import BUILD, Fleet, chat_body


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--ttfb", type=int, default=0, help="sequential streaming requests per gateway")
    args = parser.parse_args()
    work = BUILD / "ab-run"
    work.mkdir(parents=True, exist_ok=True)
    fleet = Fleet(work)
    try:
        up = fleet.upstream()
        systems = {"envoy": fleet.bare_envoy(up)}
        for name, repo in (("before", args.before), ("after", args.after)):
            harness.REPO = repo.resolve()  # the gateway starts from this checkout
            for fast in (False, True):
                systems[f"{name}-{'fast' if fast else 'filter'}"] = fleet.switchyard(
                    f"{name}{int(fast)}", up, workers=1, engine="none", fast_path=fast)
        results: dict[tuple[str, bool], list[float]] = {}
        keys = list(systems)
        for r in range(args.rounds):
            for key in keys[r % len(keys):] + keys[:r % len(keys)]:
                model = "gpt-4o-mini" if key == "envoy" else "fast"
                for stream in (False, True):
                    script = lua_script("/v1/chat/completions", chat_body(model, stream=stream), vary=False, delay_ms=None)
                    res = run_wrk(systems[key].url + "/v1/chat/completions", script, work, seconds=args.seconds,
                                  connections=args.connections, threads=2)
                    assert res.errors == 0 and res.non2xx == 0, (key, stream, res)
                    results.setdefault((key, stream), []).append(res.rps)
        for stream in (False, True):
            for key in keys:
                xs = results[(key, stream)]
                print(f"{'SSE ' if stream else 'JSON'} {key:14} {statistics.median(xs):8.0f} req/s  rounds {[round(x) for x in xs]}")
        if args.ttfb:
            clients = {key: StreamClient(systems[key].url, "/v1/chat/completions",
                                         chat_body("gpt-4o-mini" if key == "envoy" else "fast", stream=True))
                       for key in keys}
            for client in clients.values():  # warm the connections
                for _ in range(5):
                    client.ttfb()
            firsts: dict[str, list[float]] = {key: [] for key in keys}
            for _ in range(args.ttfb):
                for key, client in clients.items():
                    firsts[key].append(client.ttfb() * 1000)
            for key in keys:
                xs = sorted(firsts[key])
                print(f"TTFB {key:14} p50 {statistics.median(xs):.3f} ms  p90 {xs[int(len(xs) * 0.9)]:.3f} ms  "
                      f"({statistics.median(xs) - statistics.median(firsts['envoy']):+.3f} ms vs bare Envoy)")
    finally:
        fleet.stop_all()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
