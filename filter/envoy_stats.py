"""Envoy's per-request counters read back as Prometheus families.

They come in two forms, with the same families and labels:
- the Wasm extension's (envoy/switchyard_metrics.c under `switchyard render`, and the governance's
  cost wherever its filter runs) are plain Envoy counters whose names carry their labels as `;name=.=value;.;`
  (values percent-encoded), read from `/stats?format=json`;
- the native module's (envoy/switchyard_request_metrics.c under `switchyard up`, the cost too
  where no limit or budget is configured) are Envoy's
  labelled counters, read from `/stats/prometheus` (its JSON form joins label values with dots,
  which is ambiguous).
Either way `switchyard_requests_total…` counts requests, and each histogram is
`<family>_bin…{le}` (the observations that fell in that bucket, not cumulative) and
`<family>_sum…` (in nanoseconds for durations). This module turns them into the families of
`filter.metrics.REQUEST_FAMILIES`: cumulative buckets, `_count`, sums in seconds. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections import defaultdict
from urllib.parse import unquote

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from filter.metrics import REQUEST_FAMILIES, Family

PREFIX = "wasmcustom."  # Envoy's namespace for counters that Wasm code defines
# The admin query that returns exactly those counters.
STATS_PATH = "/stats?format=json&usedonly&filter=%5Ewasmcustom%5C."
_TAG = re.compile(r";([A-Za-z_]+)=\.=(.*?);\.;")
DROPPED = "switchyard_metrics_dropped_total"
NATIVE_PREFIX = "envoy_dynamicmodulescustom_"  # Envoy's Prometheus name for a dynamic module's counters
PROMETHEUS_PATH = "/stats/prometheus?usedonly&filter=%5Edynamicmodulescustom%5C."
Counted = tuple[str, dict[str, str], int]  # a counter's name (without the prefix), labels, value


def parse_name(name: str) -> tuple[str, dict[str, str]]:
    """`wasmcustom.x_bin;a=.=1;.;le=.=0.5;.;` → ("x_bin", {"a": "1", "le": "0.5"})."""
    name = name.removeprefix(PREFIX)
    base, _, tags = name.partition(";")
    return base, {key: unquote(value) for key, value in _TAG.findall(";" + tags)}


def native_counters(text: str) -> list[Counted]:
    """Envoy's `/stats/prometheus` text → the native module's counters. A malformed text is a
    ValueError (the scrape then reads Envoy as down)."""
    found = []
    for family in text_string_to_metric_families(text):
        if family.type != "counter" or not family.name.startswith(NATIVE_PREFIX):
            continue
        base = family.name.removeprefix(NATIVE_PREFIX)
        if not base.endswith(("_bin", "_sum")):
            base += "_total"  # the parser names a counter's family without its `_total`
        found.extend((base, dict(sample.labels), int(sample.value)) for sample in family.samples)
    return found


def wasm_counters(stats: dict) -> list[Counted]:
    """Envoy's `/stats?format=json` answer → the Wasm extension's counters."""
    found = []
    for stat in stats.get("stats", []):
        if not isinstance(stat, dict) or not isinstance(stat.get("value"), int) or "name" not in stat:
            continue  # histograms and text stats: not ours
        base, labels = parse_name(stat["name"])
        found.append((base, labels, stat["value"]))
    return found


def families(stats: dict, native: list[Counted] | tuple = ()) -> list[Metric]:
    """Envoy's `/stats?format=json` answer and the native module's counters (`native_counters`)
    → the request families (and the extension's own counter of label sets it could not define,
    when there are any)."""
    counters: dict[str, dict[tuple[str, ...], float]] = defaultdict(lambda: defaultdict(float))
    bins: dict[str, dict[tuple[str, ...], dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    sums: dict[str, dict[tuple[str, ...], int]] = defaultdict(lambda: defaultdict(int))
    by_stat = {f"{f.name}_total" if f.buckets is None else f.name: f for f in REQUEST_FAMILIES}
    dropped = 0
    for base, labels, value in [*wasm_counters(stats), *native]:
        if base == DROPPED:
            dropped += value
            continue
        for suffix, into in (("_bin", bins), ("_sum", sums)):
            family = by_stat.get(base.removesuffix(suffix)) if base.endswith(suffix) else None
            if family is not None and family.buckets is not None:
                key = tuple(labels.get(label, "") for label in family.labels)
                if suffix == "_bin":
                    into[family.name][key][labels.get("le", "+Inf")] += value
                else:
                    into[family.name][key] += value
                break
        else:
            family = by_stat.get(base)
            if family is not None and family.buckets is None:
                counters[family.name][tuple(labels.get(label, "") for label in family.labels)] += value

    out: list[Metric] = []
    for family in REQUEST_FAMILIES:
        if family.optional and not counters[family.name]:
            continue
        if family.buckets is None:
            metric = CounterMetricFamily(family.name, family.help, labels=family.labels)
            for key, value in sorted(counters[family.name].items()):
                metric.add_metric(key, value * family.scale)
            if not family.labels and not counters[family.name]:
                metric.add_metric((), 0)  # a counter without labels is exported from zero, as prometheus_client does
        else:
            metric = HistogramMetricFamily(family.name, family.help, labels=family.labels)
            keys = set(bins[family.name]) | set(sums[family.name])
            for key in sorted(keys):
                metric.add_metric(key, _cumulative(family, bins[family.name][key]),
                                  _sum(family, sums[family.name][key]))
        out.append(metric)
    if dropped:
        metric = CounterMetricFamily("switchyard_metrics_dropped", "Request observations Envoy could not count: "
                                     "too many distinct label sets")
        metric.add_metric([], dropped)
        out.append(metric)
    return out


def _cumulative(family: Family, counts: dict[str, int]) -> list[tuple[str, float]]:
    assert family.buckets is not None
    running, buckets = 0, []
    for bound in family.buckets:
        running += counts.get(bound, 0)
        buckets.append((floatToGoString(float(bound)), running))  # `le` as prometheus_client writes it
    buckets.append(("+Inf", running + counts.get("+Inf", 0)))
    return buckets


def _sum(family: Family, total: int) -> float:
    return total / 1e9 if family.seconds else float(total)
