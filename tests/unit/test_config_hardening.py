"""A careless or hostile configuration gets one key-path error, fast and in bounded memory —
never a traceback, an open gateway or a setting Envoy would read differently."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from filter.config import ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]
BASE = {"llm_providers": [{"model": "openai/gpt-4o", "access_key": "k", "default": True}]}


def error_of(raw, env=None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, "g.yaml", env or {})
    return str(caught.value)


@pytest.mark.parametrize("raw, expected", [
    ({**BASE, "routing": {"timeout": float("inf")}}, "routing.timeout: bad duration inf"),
    ({**BASE, "routing": {"timeout": ".inf"}}, "routing.timeout: bad duration '.inf'"),
    ({**BASE, "routing": {"timeout": float("nan")}}, "routing.timeout: bad duration nan"),
    ({**BASE, "routing": {"timeout": "0.0001ms"}}, "routing.timeout: duration '0.0001ms' is shorter than 1ms"),
    ({**BASE, "listeners": {"egress_traffic": {"timeout": "100000h"}}},
     "listeners.egress_traffic.timeout: duration '100000h' is longer than the maximum of 24h"),
    ({**BASE, "failover": {"cooldown": 10**12}}, "failover.cooldown: duration 1000000000000 is longer than the maximum"),
    ({**BASE, "gateway": {"workers": 100000}}, "gateway.workers: must be at most 64, got 100000"),
    ({**BASE, "gateway": {"max_request_bytes": 10**15}}, "gateway.max_request_bytes: must be at most"),
    ({**BASE, "listeners": {"egress_traffic": {"address": "0.0.0.0\n  evil: true"}}},
     "listeners.egress_traffic.address: must not contain line breaks"),
    ({**BASE, "listeners": {"egress_traffic": {"address": "0.0.0.0 }, evil"}}},
     "listeners.egress_traffic.address: '0.0.0.0 }, evil' is not an IP address or a host name"),
    ({**BASE, "listeners": {"egress_traffic": {"port": 9901}}}, "gateway.admin_port: port 9901 is also listeners's"),
    ({**BASE, "gateway": {"metrics_port": 12000}}, "gateway.metrics_port: port 12000 is also listeners's"),
    ({**BASE, "model_aliases": [[1]]}, "model_aliases: expected a mapping, got a list"),
    ({**BASE, "model_aliases": {1: {"target": "gpt-4o"}}}, "model_aliases: names must be strings"),
    ({**BASE, "gateway": {"client_keys": [["a"]]}}, "gateway.client_keys[0]: expected a string, got a list"),
    ({"llm_providers": [{"model": "openai/gpt-4o", "access_key": "$K", "default": True}]},
     "llm_providers[0].access_key: the value of $K contains whitespace or a control character (a trailing newline?)"),
])
def test_careless_values_get_a_key_path_error(raw, expected):
    assert expected in error_of(raw, {"K": "sk-abc\n"})


def test_the_key_itself_is_never_in_the_error():
    message = error_of({"llm_providers": [{"model": "openai/gpt-4o", "access_key": "$K"}]}, {"K": "sk-very-secret\n"})
    assert "sk-very-secret" not in message


def test_ephemeral_ports_never_clash():
    config = parse_config({**BASE, "listeners": {"egress_traffic": {"port": 0}},
                           "gateway": {"admin_port": 0, "metrics_port": 0}}, "g.yaml", {})
    assert (config.listener.port, config.gateway.admin_port) == (0, 0)


BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
llm_providers:
  - model: openai/gpt-4o
    access_key: k
routing:
  timeout: *h
"""


def _limited_memory() -> None:
    limit = 512 * 1024 * 1024  # far below what expanding the bomb takes (gigabytes)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def test_an_alias_bomb_is_refused_without_expanding_it(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    with pytest.raises(ConfigError, match=r"bomb.yaml: not accepted as YAML: YAML anchors \(&a\) are not accepted at line 1"):
        load_config(path, env={})
    # The CLI under a memory limit the expansion would blow: a clean error, no traceback.
    result = subprocess.run([sys.executable, "-m", "filter.runtime.cli", "validate", str(path)], cwd=REPO,
                            capture_output=True, text=True, timeout=60, preexec_fn=_limited_memory)
    assert result.returncode == 2, result.stderr
    assert "YAML anchors (&a) are not accepted" in result.stderr and "Traceback" not in result.stderr


def test_deep_nesting_and_huge_files_are_refused(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("llm_providers: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="deep.yaml: not accepted as YAML: nested deeper than 64 levels"):
        load_config(deep, env={})
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (2 * 1024 * 1024) + "\n")
    with pytest.raises(ConfigError, match="big.yaml: not accepted as YAML: larger than 1048576 bytes"):
        load_config(big, env={})


def test_a_file_that_is_not_utf8_is_a_clean_error(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("llm_providers: [{model: openai/caf\xe9}]\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="latin1.yaml: not valid UTF-8"):
        load_config(path, env={})
