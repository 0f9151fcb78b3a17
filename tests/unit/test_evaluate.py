"""The eval harness: scoring math on hand-made labels, and the CLI's output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router_model import clinc150
from router_model.evaluate import format_report, latency_summary, main, parse_cases, percentile, score, worst_routes


def test_score_on_a_tiny_hand_made_set() -> None:
    expected = ["a", "a", "b", "b", "other", "other", "other", "a"]
    predicted = ["a", "b", "b", "other", "other", "a", "other", "a"]
    r = score(expected, predicted, ["a", "b"])
    assert r["n"] == 8
    assert r["accuracy"] == pytest.approx(5 / 8)
    assert r["in_scope_accuracy"] == pytest.approx(3 / 5)
    assert r["out_of_scope_recall"] == pytest.approx(2 / 3, abs=1e-4)
    # "a": chosen 3 times (2 right), expected 3 times (2 found).
    assert r["per_route"]["a"] == {"precision": pytest.approx(2 / 3, abs=1e-4), "recall": pytest.approx(2 / 3, abs=1e-4), "support": 3}
    assert r["per_route"]["b"] == {"precision": 0.5, "recall": 0.5, "support": 2}
    assert r["confusion"] == {"a -> b": 1, "b -> other": 1, "other -> a": 1}


def test_score_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError):
        score(["a"], [])


def test_worst_routes_rank_by_recall() -> None:
    per_route = {
        "a": {"precision": 1.0, "recall": 0.9, "support": 10},
        "b": {"precision": 1.0, "recall": 0.2, "support": 10},
        "c": {"precision": 1.0, "recall": 0.5, "support": 10},
        "unused": {"precision": 0.0, "recall": 0.0, "support": 0},
    }
    assert worst_routes(per_route, k=2) == ["b", "c"]


def test_percentiles_interpolate() -> None:
    assert percentile([1, 2, 3, 4], 50) == pytest.approx(2.5)
    assert percentile([5], 95) == 5
    assert percentile([], 50) == 0.0
    assert latency_summary([0.001, 0.002, 0.003]) == {"p50": 2.0, "p95": 2.9, "max": 3.0}


def test_parse_cases_reports_the_bad_line_and_honours_the_limit() -> None:
    good = json.dumps({"messages": [{"role": "user", "content": "hi"}], "expected": "other"})
    assert len(parse_cases([good, "", good, good], limit=2)) == 2
    with pytest.raises(ValueError, match="line 2"):
        parse_cases([good, '{"messages": []}'])


def test_report_names_the_worst_route_and_where_it_went() -> None:
    r = score(["a", "a", "b", "other"], ["b", "b", "b", "other"], ["a", "b"])
    r.update(engine="embedded", errors=0, latency_ms={"p50": 1.0, "p95": 2.0, "max": 3.0})
    text = format_report(r)
    assert "accuracy: 50.0%" in text
    assert "a (recall 0.0%): b 2" in text


def _write_fixture(tmp_path: Path) -> tuple[Path, Path]:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "routes:\n"
        "  - name: travel\n    description: 'travel: flights, hotels, visas'\n"
        "  - name: cooking\n    description: 'cooking and food: recipes, ingredients, baking'\n"
    )
    cases = tmp_path / "cases.jsonl"
    rows = [
        ("book me a flight to Rome", "travel"),
        ("do I need a visa for Japan", "travel"),
        ("how do I bake bread", "cooking"),
        ("who won the 1998 world cup", "other"),
    ]
    cases.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q}], "expected": e}) + "\n" for q, e in rows))
    return routes, cases


def test_cli_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    routes, cases = _write_fixture(tmp_path)
    assert main(["--routes", str(routes), "--cases", str(cases), "--engine", "embedded", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 4
    assert result["accuracy"] == 1.0
    assert set(result["latency_ms"]) >= {"p50", "p95"}
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p95"]
    assert {"in_scope_accuracy", "out_of_scope_recall", "per_route", "confusion", "errors"} <= set(result)


def test_cli_limit_and_text_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    routes, cases = _write_fixture(tmp_path)
    assert main(["--routes", str(routes), "--cases", str(cases), "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "cases: 2" in out and "latency ms: p50" in out


def test_cli_arch_router_needs_an_endpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    routes, cases = _write_fixture(tmp_path)
    assert main(["--routes", str(routes), "--cases", str(cases), "--engine", "arch-router"]) == 2
    assert "--endpoint" in capsys.readouterr().err


def test_clinc150_conversion_maps_intents_to_domains(tmp_path: Path) -> None:
    (tmp_path / "data_full.json").write_text(
        json.dumps({"test": [["what's my balance", "balance"]], "oos_test": [["how tall is everest", "oos"]]})
    )
    (tmp_path / "domains.json").write_text(json.dumps({"banking": ["balance"]}))
    out = tmp_path / "build" / "cases.jsonl"
    assert clinc150.main(["--data", str(tmp_path), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == [
        {"messages": [{"role": "user", "content": "what's my balance"}], "expected": "banking"},
        {"messages": [{"role": "user", "content": "how tall is everest"}], "expected": "other"},
    ]


# --- calibration -----------------------------------------------------------------------------

from router_model.evaluate import calibration  # noqa: E402


def test_calibration_finds_the_threshold_that_serves_the_cases_best() -> None:
    expected = ["a", "a", "b", "other", "other"]
    best = ["a", "a", "b", "b", "a"]
    sure = [0.30, 0.25, 0.60, 0.40, 0.20]
    cal = calibration(expected, best, sure, current=0.5, route_names=["a", "b"])
    # 0.5 sends the two right "a" answers to the default; 0.25 routes them (and one out-of-scope
    # case wrongly), still sending the weakest to the default.
    assert cal["current"]["accuracy"] == 0.6
    assert cal["best"]["min_confidence"] == 0.25 and cal["best"]["accuracy"] == 0.8
    assert cal["to_a_route"] == {"cases": 3, "now_right": 2}
    assert cal["to_other"] == {"cases": 0, "now_right": 0}
    assert cal["recall"]["a"] == {"current": 0.0, "best": 1.0}


def test_calibration_keeps_the_current_threshold_when_nothing_is_better() -> None:
    cal = calibration(["a", "other"], ["a", "a"], [0.9, 0.1], current=0.5, route_names=["a"])
    assert cal["best"]["min_confidence"] == 0.5 and cal["best"]["accuracy"] == 1.0


def test_eval_calibrate_prints_the_setting_to_use(tmp_path, capsys) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text("routes:\n  - {name: travel, description: 'travel: flights, hotels, visas'}\n"
                      "  - {name: cooking, description: 'cooking: recipes, baking, ingredients'}\n")
    cases = tmp_path / "cases.jsonl"
    cases.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": q}], "expected": e}) for q, e in [
        ("book me a flight to Rome", "travel"), ("how long do I bake bread", "cooking"),
        ("who won the 1998 world cup", "other")]) + "\n")
    assert main(["--routes", str(routes), "--cases", str(cases), "--calibrate"]) == 0
    out = capsys.readouterr().out
    assert "(best for these cases)" in out and "routing:\n  min_confidence:" in out
    assert main(["--routes", str(routes), "--cases", str(cases), "--calibrate", "--engine", "arch-router",
                 "--endpoint", "http://127.0.0.1:1/v1"]) == 2
    assert main(["--routes", str(routes), "--cases", str(cases), "--min-confidence", "1.5"]) == 2
