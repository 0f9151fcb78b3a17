"""The rendered Envoy bootstrap: Envoy itself accepts it, and it has the shape the design needs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from filter.config import load_config, parse_config
from filter.render.bootstrap import render_bootstrap, render_yaml
from filter.render.fast_path import ext_proc_config
from filter.runtime.supervisor import envoy_binary

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def example_env(path: Path) -> dict[str, str]:
    """A dummy value for every $VAR the example references."""
    return {name: f"dummy-{name.lower()}" for name in re.findall(r"\$([A-Z_][A-Z0-9_]*)", path.read_text())}


def envoy_validate(bootstrap_yaml: str, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "bootstrap.yaml"
    path.write_text(bootstrap_yaml)
    return subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path), "--disable-hot-restart",
                           "--log-level", "error"], capture_output=True, text=True, timeout=60)


def key_files(env: dict[str, str], tmp_path: Path) -> Path:
    """A directory with one file per variable, as the Secret's mount gives Envoy in Kubernetes
    (`envoy --mode validate` opens the files the bootstrap names)."""
    keys = tmp_path / "keys"
    keys.mkdir(exist_ok=True)
    for name, value in env.items():
        (keys / name).write_text(value)
    return keys


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_envoy_accepts_the_rendered_bootstrap_of_every_example(example, tmp_path):
    env = example_env(example)
    config = load_config(example, env=env)
    rendered = render_yaml(config, key_files(env, tmp_path))
    result = envoy_validate(rendered, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
    for value in env.values():
        assert value not in rendered


def test_render_command_shows_no_secret_values(tmp_path):
    example = REPO / "examples" / "providers.yaml"
    env = {**example_env(example), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "filter.runtime.cli", "render", str(example)], cwd=REPO,
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    for value in env.values():
        if value.startswith("dummy-"):
            assert value not in result.stdout


def _config(**gateway):
    return parse_config(
        {
            "listeners": {"egress_traffic": {"address": "127.0.0.1", "port": 18080, "timeout": "45s"}},
            "llm_providers": [
                {"model": "openai/gpt-4o", "access_key": "k", "default": True},
                {"model": "local/m", "base_url": "http://127.0.0.1:9999/v1"},
                {"model": "echo/e"},
            ],
            "routing": {"timeout": "2s"},
            "gateway": gateway,
        },
        "t.yaml",
        {},
    )


def test_one_cluster_per_forwarded_provider_with_tls_only_for_https():
    bootstrap = render_bootstrap(_config())
    clusters = {c["name"]: c for c in bootstrap["static_resources"]["clusters"]}
    openai_cluster = clusters["provider_openai_gpt-4o"]
    tls = openai_cluster["transport_socket"]["typed_config"]
    assert tls["sni"] == "api.openai.com"
    assert "transport_socket" not in clusters["provider_local_m"]
    assert "provider_echo_e" not in clusters  # answered inside the gateway


def test_routes_match_the_routing_header_and_rewrite_the_host():
    bootstrap = render_bootstrap(_config())
    manager = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    routes = [r for r in manager["route_config"]["virtual_hosts"][0]["routes"]
              if not r["name"].startswith("fast:")]  # the fast path's routes come first
    first = routes[0]
    assert first["match"]["headers"][0] == {"name": "x-switchyard-provider", "string_match": {"exact": "provider_openai_gpt-4o"}}
    assert first["route"]["host_rewrite_literal"] == "api.openai.com"
    assert first["route"]["timeout"] == "45.000s"
    assert routes[1]["route"]["host_rewrite_literal"] == "127.0.0.1:9999"
    assert routes[-1]["direct_response"]["status"] == 500  # never forward an unrouted request


def test_ext_proc_filter_is_configured_as_the_design_says():
    config = _config(workers=3, max_request_bytes=12345678)
    bootstrap = render_bootstrap(config)
    listener = bootstrap["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 18080}
    # Room for the default 64 MiB answer too; the filter holds requests to 12345678 bytes.
    assert listener["per_connection_buffer_limit_bytes"] == 64 * 1024 * 1024
    bigger = render_bootstrap(_config(max_request_bytes=100_000_000))["static_resources"]["listeners"][0]
    assert bigger["per_connection_buffer_limit_bytes"] == 100_000_000
    filters = listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
    ext_proc = ext_proc_config(next(f for f in filters if f["name"] == "envoy.filters.http.ext_proc"))
    assert ext_proc["failure_mode_allow"] is False
    assert ext_proc["processing_mode"]["request_body_mode"] == "BUFFERED"
    assert ext_proc["processing_mode"]["response_header_mode"] == "SKIP"
    assert ext_proc["processing_mode"]["response_body_mode"] == "NONE"
    assert ext_proc["allow_mode_override"] is True
    assert ext_proc["message_timeout"] == "3.000s"  # router deadline + a session's two store operations + margin
    assert ext_proc["metadata_options"]["receiving_namespaces"]["untyped"] == ["switchyard"]
    filter_cluster = bootstrap["static_resources"]["clusters"][0]
    sockets = [e["endpoint"]["address"]["pipe"]["path"]
               for e in filter_cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]]
    # No port to pick (or clash): one Unix socket per worker, in the shared socket directory.
    assert sockets == ["/run/switchyard/filter-1.sock", "/run/switchyard/filter-2.sock", "/run/switchyard/filter-3.sock"]
    assert bootstrap["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"


def test_rendered_yaml_round_trips():
    text = render_yaml(_config())
    assert yaml.safe_load(text) == render_bootstrap(_config())


FOREIGN_BOOTSTRAP = """
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 19901}}
static_resources:
  listeners:
  - name: team_listener
    address: {socket_address: {address: 0.0.0.0, port_value: 18000}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: team
          route_config:
            name: team_routes
            virtual_hosts:
            - name: team_app
              domains: ["app.internal"]
              routes:
              - match: {prefix: /}
                route: {cluster: team_app}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: team_app
    type: STATIC
    load_assignment:
      cluster_name: team_app
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8080}}}
"""


def test_fragments_merge_into_a_foreign_bootstrap_that_envoy_accepts(tmp_path):
    """What the README tells teams to do with `switchyard render --fragments`."""
    example = REPO / "examples" / "providers.yaml"
    env = example_env(example)
    keys = key_files(env, tmp_path)
    result = subprocess.run([sys.executable, "-m", "filter.runtime.cli", "render", "--fragments", "--keys-dir", str(keys),
                             str(example)], cwd=REPO, capture_output=True, text=True, timeout=60,
                            env={**env, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    fragments = yaml.safe_load(result.stdout)
    bootstrap = yaml.safe_load(FOREIGN_BOOTSTRAP)
    manager = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    manager["http_filters"][:0] = fragments["http_filters"]  # before the team's router
    virtual_host = fragments["virtual_host"]
    virtual_host["domains"] = ["llm.internal"]  # the team picks where the gateway answers
    manager["route_config"]["virtual_hosts"].append(virtual_host)
    manager["local_reply_config"] = fragments["local_reply_config"]
    manager["access_log"] = fragments["access_log"]
    # Without tracing, no access log streams to the filter: Envoy counts the metrics itself.
    assert {a["name"] for a in fragments["access_log"]} == {"envoy.access_loggers.stdout"}
    bootstrap["stats_config"] = {"stats_tags": fragments["stats_tags"]}
    team_host = manager["route_config"]["virtual_hosts"][0]
    team_host["typed_per_filter_config"] = fragments["typed_per_filter_config_for_other_hosts"]
    bootstrap["static_resources"]["clusters"].extend(fragments["clusters"])
    bootstrap["static_resources"]["secrets"] = fragments["secrets"]
    validated = envoy_validate(yaml.safe_dump(bootstrap), tmp_path)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    names = {f["name"] for f in fragments["http_filters"]}
    assert {"envoy.filters.http.ext_proc", "switchyard.extension", "switchyard.fast_path"} <= names
    # The fast path comes along: its routes, and key files (never keys) for the providers it serves.
    assert any(r["name"].startswith("fast:") for r in virtual_host["routes"])
    assert {s["generic_secret"]["secret"]["filename"] for s in fragments["secrets"]} <= {str(keys / n) for n in env}
    for value in env.values():
        assert value not in result.stdout
    assert {c["name"] for c in fragments["clusters"]} >= {"switchyard_filter", "provider_openai_gpt-4o"}
