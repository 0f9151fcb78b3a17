"""Which Prometheus metric names a Grafana dashboard's PromQL queries use.

`dashboard_metric_names(path)` reads every `expr` of every panel (rows and nested panels
included) and every Prometheus query variable, and returns the metric names they select, with
the histogram series suffixes `_bucket`, `_sum` and `_count` removed. Function names, aggregation
operators, keywords, label names, label values, strings, numbers, durations and Grafana variables
are not metric names. This is a small PromQL reader, not a full parser: a query it cannot read
safely (a `{__name__=...}` selector) raises ValueError rather than answering wrongly.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# Words PromQL gives a meaning of its own; they are never metric names where they stand as words.
_KEYWORDS = {
    # aggregation operators (`sum by (x) (...)`: followed by `by`, not directly by `(`)
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
    # modifiers and binary keywords
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
    "and", "or", "unless", "atan2",
    # number literals
    "inf", "nan",
}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\]")
_RANGE = re.compile(r"\[[^\]]*\]")  # [5m], [1h:5m] and what is left of [$__rate_interval]
_MATCHERS = re.compile(r"\{[^{}]*\}")  # label matchers, after strings are gone
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)(?:ms|[smhdwy])*")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL_VALUES = re.compile(r"^\s*label_values\s*\((?P<args>.*)\)\s*$", re.DOTALL)
_OTHER_VARIABLE_QUERY = re.compile(r"^\s*(?:label_names|metrics)\s*\(", re.DOTALL)
_QUERY_RESULT = re.compile(r"^\s*query_result\s*\((?P<query>.*)\)\s*$", re.DOTALL)


def promql_metric_names(expr: str) -> set[str]:
    """Metric names selected by one PromQL expression (histogram suffixes kept)."""
    if "__name__" in expr:
        raise ValueError(f"cannot tell the metric names of a __name__ selector: {expr!r}")
    text = _STRING.sub(" ", expr)
    text = _GRAFANA_VARIABLE.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    if "{" in text or "}" in text:
        raise ValueError(f"unbalanced label matchers in {expr!r}")
    names: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group(0)
        rest = text[match.end():].lstrip()
        if rest.startswith("("):  # a function call: rate(, histogram_quantile(, ...
            continue
        if word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names


def base_metric_name(name: str) -> str:
    """`x_bucket`, `x_sum`, `x_count` → `x`; any other name unchanged."""
    for suffix in _HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _variable_query_exprs(query: str) -> list[str]:
    """PromQL inside a Grafana Prometheus variable query (label_values, query_result)."""
    match = _LABEL_VALUES.match(query)
    if match:
        args = _split_top_level(match.group("args"))
        # label_values(label) has no metric; label_values(selector, label) selects one.
        return args[:-1] if len(args) > 1 else []
    match = _QUERY_RESULT.match(query)
    if match:
        return [match.group("query")]
    if _OTHER_VARIABLE_QUERY.match(query):
        return []
    return [query]


def _split_top_level(args: str) -> list[str]:
    parts, depth, current, quote = [], 0, [], ""
    for char in args:
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
            continue
        if char in "\"'`":
            quote = char
        elif char in "({[":
            depth += 1
        elif char in ")}]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard: panel targets and query variables."""
    exprs: list[str] = []
    for panel in _panels(dashboard.get("panels") or []):
        for target in panel.get("targets") or []:
            expr = target.get("expr")
            if isinstance(expr, str) and expr.strip():
                exprs.append(expr)
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query") or query.get("expr") or ""
        if isinstance(query, str) and query.strip():
            exprs.extend(_variable_query_exprs(query))
    return exprs


def dashboard_metric_names(path: str | Path) -> set[str]:
    """Base metric names (histogram suffixes stripped) that the dashboard at `path` queries."""
    dashboard = json.loads(Path(path).read_text(encoding="utf-8"))
    names: set[str] = set()
    for expr in dashboard_exprs(dashboard):
        names |= {base_metric_name(n) for n in promql_metric_names(expr)}
    return names
