"""Configuration checks: every error names the file and the key path, and nothing starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from filter.config import ConfigError, load_config, parse_config
from filter.providers import Interface

REPO = Path(__file__).resolve().parents[2]
ENV = {"OPENAI_API_KEY": "sk-env-value", "EMPTY": ""}


def base(**extra) -> dict:
    config = {"llm_providers": [{"model": "openai/gpt-4o", "access_key": "$OPENAI_API_KEY", "default": True}]}
    config.update(extra)
    return config


def error_of(raw) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, "gateway.yaml", ENV)
    return str(caught.value)


def test_a_plano_file_builds_typed_objects_with_defaults():
    config = parse_config(
        {
            "version": "v0.1.0",
            "listeners": {"egress_traffic": {"address": "0.0.0.0", "port": 12000, "message_format": "openai", "timeout": "30s"}},
            "llm_providers": [
                {"model": "openai/gpt-4o", "access_key": "$OPENAI_API_KEY", "default": True},
                {"model": "groq/llama-3", "access_key": "literal-key",
                 "routing_preferences": [{"name": "code", "description": "writing code"}]},
                {"model": "anthropic/claude-sonnet-4-5", "access_key": "k2"},
            ],
            "model_aliases": {"fast-model": {"target": "llama-3"}},
        },
        "plano.yaml",
        ENV,
    )
    gpt, llama, claude = config.providers
    assert gpt.access_key.reveal() == "sk-env-value"
    assert "sk-env-value" not in repr(gpt)  # keys never print
    assert gpt.upstream.host == "api.openai.com" and gpt.upstream.tls
    assert llama.upstream.path_prefix == "/openai/v1"
    assert claude.interface is Interface.ANTHROPIC
    assert config.aliases["fast-model"] is llama
    assert config.route_owner["code"] is llama
    assert config.listener.timeout_s == 30.0
    assert (config.gateway.admin_port, config.gateway.workers) == (9901, 1)
    assert config.gateway.max_request_bytes == 16_777_216  # the README: 16 MiB
    assert config.routing.engine == "embedded" and config.routing.routed_models == ("auto",)


@pytest.mark.parametrize(
    "raw, expected",
    [
        (base(telemetry={"x": 1}), "gateway.yaml: telemetry: unknown key"),
        # Plano's own sections are accepted (and reported as ignored), but a typo inside one is not.
        (base(tracing={"x": 1}), "gateway.yaml: tracing.x: unknown key (allowed: exporters,"),
        ({"llm_providers": [{"model": "openai/gpt-4o", "access_key": "k", "defualt": True}]},
         "llm_providers[0].defualt: unknown key"),
        (base(gateway={"admin_port": "9901"}), "gateway.admin_port: expected a port number, got a string"),
        (base(gateway={"workers": True}), "gateway.workers: expected an integer, got a boolean"),
        (base(listeners={"egress_traffic": {"timeout": "soon"}}), "listeners.egress_traffic.timeout: bad duration 'soon'"),
        (base(routing={"timeout": "-1s"}), "routing.timeout: bad duration"),
        ({"llm_providers": [{"model": "openai/gpt-4o", "access_key": "k"}, {"model": "openai/gpt-4o", "access_key": "k"}]},
         "llm_providers[1].model: duplicate model 'openai/gpt-4o'"),
        (base(model_aliases={"fast": {"target": "gpt-5"}}), "model_aliases.fast.target: 'gpt-5' matches no configured provider"),
        (base(model_aliases={"a": {"target": "b"}, "b": {"target": "a"}}), "model_aliases.a.target: alias cycle: a -> b -> a"),
        ({"llm_providers": [{"model": "openai/a", "access_key": "k", "default": True},
                            {"model": "openai/b", "access_key": "k", "default": True}]},
         "llm_providers[1].default: two providers are default: true"),
        ({"llm_providers": [{"model": "openai/a", "access_key": "$NOT_SET_ANYWHERE"}]},
         "llm_providers[0].access_key: environment variable $NOT_SET_ANYWHERE is not set"),
        ({"llm_providers": [{"model": "openai/a", "access_key": "$EMPTY"}]},
         "environment variable $EMPTY is not set"),
        ({"llm_providers": [{"model": "acme/model-1"}]}, "llm_providers[0].model: unknown provider 'acme': set base_url"),
        ({"llm_providers": [{"model": "gpt-4o", "access_key": "k"}]}, "llm_providers[0].model: 'gpt-4o' must be provider/model-id"),
        ({"llm_providers": [{"model": "azure_openai/dep", "access_key": "k"}]}, "llm_providers[0].base_url: is required"),
        ({"llm_providers": [{"model": "openai/a"}]}, "llm_providers[0].access_key: is required for provider 'openai'"),
        ({"llm_providers": [{"model": "local/m", "base_url": "ftp://x"}]}, "llm_providers[0].base_url: 'ftp://x' is not an http(s) URL"),
        ({"llm_providers": [{"model": "openai/a", "access_key": "k", "routing_preferences": [{"name": "x", "description": "y"}]}]},
         "no provider is default: true"),
        (base(routing={"engine": "arch-router"}), "routing.endpoint: is required when routing.engine is arch-router"),
        (base(routing={"unknown_model": "guess"}), "routing.unknown_model: 'guess' is not one of reject, route, default"),
        ({"llm_providers": []}, "llm_providers: at least one provider is required"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_each_configuration_error_names_file_and_key_path(raw, expected):
    assert expected in error_of(raw)


def test_secret_values_never_appear_in_errors():
    message = error_of({"llm_providers": [{"model": "openai/a", "access_key": "$OPENAI_API_KEY"},
                                          {"model": "openai/a", "access_key": "$OPENAI_API_KEY"}]})
    assert "sk-env-value" not in message


def test_yaml_syntax_errors_name_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("llm_providers:\n  - model: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: not valid YAML at line \d+"):
        load_config(path)


def _cli(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "filter.runtime.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env=env)


def test_validate_command_exits_non_zero_with_the_message(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(base(model_aliases={"fast": {"target": "nope"}})))
    result = _cli("validate", str(bad), env={"OPENAI_API_KEY": "x", "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert f"{bad}: model_aliases.fast.target: 'nope' matches no configured provider" in result.stderr


def test_validate_command_accepts_the_demo():
    result = _cli("validate", "examples/demo.yaml")
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_up_refuses_to_start_on_a_bad_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"llm_providers": [{"model": "openai/a", "access_key": "$UNSET_KEY_X"}]}))
    result = _cli("up", str(bad))
    assert result.returncode != 0
    assert "environment variable $UNSET_KEY_X is not set" in result.stderr
