"""The figure of `make bench`: `python bench/perf_plot.py results.json results.png`.

Runs in the benchmark's own virtual environment (build/bench-venv, where matplotlib is pinned), so
the project's environment stays as `make install` made it. Reads only the JSON that bench/perf.py
wrote.
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SHORT = {
    "direct": "upstream\ndirect", "envoy": "bare\nEnvoy", "noop": "Envoy +\nno-op\nPython filter", "native": "Envoy alone\nroutes on\nmodel (study)", "fast_alias": "SY fast path\nalias", "fast_literal": "SY fast path\nliteral", "alias": "SY alias\n1 worker", "literal": "SY literal\n1 worker",
    "alias2": "SY alias\n2 workers", "alias_nometrics": "SY alias\nno usage\nmetrics",
    "pref_uncached": "SY auto\nembedded\nuncached", "pref_uncached2": "SY auto\n2 workers\nuncached", "pref_cached": "SY auto\nembedded\ncached", "litellm": "LiteLLM\n2 workers",
}
COLOURS = {"direct": "#999999", "envoy": "#4c72b0", "noop": "#8172b3", "native": "#937860", "fast_alias": "#dd8452", "fast_literal": "#dd8452", "litellm": "#c44e52"}


def main(src: str, dst: str) -> None:
    res = json.loads(open(src).read())
    rows = res["rows"]
    keys = [r["key"] for r in rows]
    labels = [SHORT.get(k, k) for k in keys]
    colours = [COLOURS.get(k, "#55a868") for k in keys]
    fig, axes = plt.subplots(2, 2, figsize=(15, 10))

    ax = axes[0][0]
    bars = ax.bar(labels, [r["rps"] for r in rows], color=colours)
    for bar, r in zip(bars, rows):
        text = f"{r['rps']:.0f}\n{r['vs_envoy']:.2f}× Envoy"
        if r.get("vs_litellm"):
            text += f"\n{r['vs_litellm']:.1f}× LiteLLM"
        ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("requests / s (log)")
    ax.set_title(f"Throughput, {res['connections']} connections (median of {res['rounds']} rounds)")
    ax.set_ylim(top=max(r["rps"] for r in rows) * 8)
    ax.tick_params(axis="x", labelsize=7)

    ax = axes[0][1]
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r["p50_ms"] for r in rows], width=0.4, label="p50", color="#4c72b0")
    ax.bar([i + 0.2 for i in x], [r["p99_ms"] for r in rows], width=0.4, label="p99", color="#dd8452")
    ax.set_xticks(list(x), labels, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("latency ms (log)")
    ax.set_title(f"Latency at {res['connections']} connections")
    ax.legend()

    ax = axes[1][0]
    cpu_rows = [r for r in rows if r["key"] != "direct"]
    processes = []
    for r in cpu_rows:
        for k in r["cpu_per_1k"]:
            if k not in processes and not k.startswith("wrk"):
                processes.append(k)
    bottom = [0.0] * len(cpu_rows)
    cmap = plt.get_cmap("tab20")
    for i, proc in enumerate(processes):
        values = [r["cpu_per_1k"].get(proc, 0.0) for r in cpu_rows]
        ax.bar([SHORT.get(r["key"], r["key"]) for r in cpu_rows], values, bottom=bottom, label=proc, color=cmap(i))
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.01)
    ax.set_ylabel("CPU s per 1,000 requests (log, stacked)")
    ax.set_title("CPU cost by process")
    ax.legend(fontsize=7, ncol=2)
    ax.tick_params(axis="x", labelsize=7)

    ax = axes[1][1]
    paced = res["paced"]
    ttfb = res["ttfb"]
    names = [f"paced {p['rate']:.0f}/s\n{p['key']}" for p in paced] + [f"TTFB\n{t['key']}" for t in ttfb]
    p50 = [p["p50_ms"] for p in paced] + [t["p50_ms"] or 0 for t in ttfb]
    p99 = [p["p99_ms"] for p in paced] + [t["p99_ms"] or 0 for t in ttfb]
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], p50, width=0.4, label="p50", color="#4c72b0")
    ax.bar([i + 0.2 for i in x], p99, width=0.4, label="p99", color="#dd8452")
    for i, v in enumerate(p50):
        ax.annotate(f"{v:.2f}", (i - 0.2, v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(x), names, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("ms (log)")
    ax.set_title("Latency at 25 % of each Switchyard path's max, and streaming TTFB")
    ax.legend()

    fig.suptitle(f"Switchyard `make bench` — {res['date']}, {res['machine']}", fontsize=11)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
