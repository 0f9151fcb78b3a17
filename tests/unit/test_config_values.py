"""Every setting reaches the runtime objects with the value the file gives, or the README's
default when it gives none; Plano's ignored keys each get their warning line. Fixed values."""

from __future__ import annotations

import pytest

from filter.config import ConfigError, parse_config

PROVIDER = [{"model": "openai/gpt-4o", "access_key": "k", "default": True}]


def build(**sections):
    return parse_config({"llm_providers": PROVIDER, **sections}, "t.yaml", {"KEY": "secret-value"})


def error(**sections) -> str:
    with pytest.raises(ConfigError) as caught:
        build(**sections)
    return str(caught.value)


def fields(obj, names):
    return {name: getattr(obj, name) for name in names}


GATEWAY = ["admin_port", "filter_port", "workers", "metrics_port", "metrics_address", "max_request_bytes",
           "max_response_bytes", "log_level", "usage_metrics", "fast_path", "client_keys", "otlp_endpoint",
           "service_name", "max_connections", "request_headers_timeout_s", "idle_timeout_s", "socket_dir"]


def test_defaults_are_the_readmes():
    config = build()
    assert fields(config.listener, ["address", "port", "timeout_s", "message_format"]) == {
        "address": "0.0.0.0", "port": 12000, "timeout_s": 30.0, "message_format": "openai"}
    assert fields(config.gateway, GATEWAY) == {
        "admin_port": 9901, "filter_port": 50051, "workers": 1, "metrics_port": 9090,
        "metrics_address": "127.0.0.1", "max_request_bytes": 16_777_216, "max_response_bytes": 67_108_864,
        "log_level": "info", "usage_metrics": True, "fast_path": True, "client_keys": (), "otlp_endpoint": None,
        "service_name": "switchyard", "max_connections": 4096, "request_headers_timeout_s": 10.0,
        "idle_timeout_s": 300.0, "socket_dir": None}
    assert fields(config.failover, ["retries", "first_byte_timeout_s", "cooldown_s", "failures_before_cooldown"]) == {
        "retries": 1, "first_byte_timeout_s": 15.0, "cooldown_s": 30.0, "failures_before_cooldown": 3}
    assert config.gateway.store.url is None and config.gateway.store.key_prefix == "switchyard:"
    assert config.warnings == ()


def test_every_setting_given_is_the_setting_used():
    config = build(
        listeners={"egress_traffic": {"address": "127.0.0.2", "port": 0, "timeout": "45s", "message_format": "openai"}},
        gateway={"admin_port": 0, "filter_port": 6000, "workers": 3, "metrics_port": 0, "metrics_address": "0.0.0.0",
                 "max_request_bytes": 2048, "max_response_bytes": 4096, "log_level": "debug", "usage_metrics": False,
                 "fast_path": False, "tracing": {"otlp_endpoint": "http://127.0.0.1:4318/v1/traces",
                                                 "service_name": "edge"},
                 "max_connections": 100, "request_headers_timeout": "3s", "idle_timeout": "1m",
                 "socket_dir": "/run/switchyard", "store": {"url": "redis://127.0.0.1:6379/2", "key_prefix": "t:"}},
        failover={"retries": 0, "first_byte_timeout": "2s", "cooldown": "5s", "failures_before_cooldown": 7},
    )
    assert fields(config.listener, ["address", "port", "timeout_s"]) == {"address": "127.0.0.2", "port": 0,
                                                                        "timeout_s": 45.0}
    assert fields(config.gateway, GATEWAY) == {
        "admin_port": 0, "filter_port": 6000, "workers": 3, "metrics_port": 0, "metrics_address": "0.0.0.0",
        "max_request_bytes": 2048, "max_response_bytes": 4096, "log_level": "debug", "usage_metrics": False,
        "fast_path": False, "client_keys": (), "otlp_endpoint": "http://127.0.0.1:4318/v1/traces",
        "service_name": "edge", "max_connections": 100, "request_headers_timeout_s": 3.0, "idle_timeout_s": 60.0,
        "socket_dir": "/run/switchyard"}
    assert (config.gateway.store.url, config.gateway.store.key_prefix) == ("redis://127.0.0.1:6379/2", "t:")
    assert fields(config.failover, ["retries", "first_byte_timeout_s", "cooldown_s", "failures_before_cooldown"]) == {
        "retries": 0, "first_byte_timeout_s": 2.0, "cooldown_s": 5.0, "failures_before_cooldown": 7}


def test_a_list_listener_of_type_model_is_the_listener():
    config = parse_config({"version": "v0.4.0", "model_providers": PROVIDER, "listeners": [
        {"type": "model", "name": "llm", "address": "127.0.0.3", "port": 10000, "timeout": "10s"}]}, "t.yaml", {})
    assert fields(config.listener, ["address", "port", "timeout_s"]) == {"address": "127.0.0.3", "port": 10000,
                                                                        "timeout_s": 10.0}
    bare = parse_config({"version": "v0.4.0", "model_providers": PROVIDER, "listeners": [
        {"type": "model", "name": "llm"}]}, "t.yaml", {})
    assert fields(bare.listener, ["address", "port", "timeout_s"]) == {"address": "0.0.0.0", "port": 12000,
                                                                      "timeout_s": 30.0}


def test_plano_listener_settings_switchyard_ignores_are_named_one_line_each():
    legacy = build(listeners={"egress_traffic": {"port": 12000}, "ingress_traffic": {"port": 10000}})
    assert legacy.warnings == (
        "t.yaml: listeners.ingress_traffic: ignored — Plano's prompt gateway listener, which Switchyard does not "
        "implement",)
    listed = parse_config({"version": "v0.4.0", "model_providers": PROVIDER, "listeners": [
        {"type": "model", "name": "llm", "max_retries": 2}]}, "t.yaml", {})
    assert listed.warnings == (
        "t.yaml: listeners[0].max_retries: ignored — Plano's per-listener retries (Switchyard's are "
        "failover.retries), which Switchyard does not implement",)


@pytest.mark.parametrize("sections, expected", [
    ({"gateway": {"tracing": {"otlp_endpoint": "ftp://collector"}}},
     "t.yaml: gateway.tracing.otlp_endpoint: 'ftp://collector' is not an http(s) URL with a host"),
    ({"gateway": {"store": {"url": "http://cache"}}},
     "t.yaml: gateway.store.url: 'http://cache' is not a redis://, rediss:// or unix:// URL"),
    ({"routing": {"session_cache": {"type": "redis", "url": "http://cache"}}},
     "t.yaml: routing.session_cache.url: 'http://cache' is not a redis://, rediss:// or unix:// URL"),
])
def test_errors_name_the_key_that_was_written(sections, expected):
    assert expected in error(**sections)
