# Switchyard: `make run` starts the gateway on the demo configuration, `make test` runs the suite.
# Both set everything up themselves on a fresh clone.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= examples/demo.yaml
# Envoy's compiled extensions (request metrics and governance, envoy/switchyard_*.c; in the
# default configuration both in one module, envoy/switchyard_extension.c), built from source with
# Debian's clang for wasm32-wasi; the toolchain is installed when missing.
EXTENSIONS := envoy/switchyard_extension.wasm envoy/switchyard_metrics.wasm envoy/switchyard_governance.wasm
# Envoy dynamic modules (shared objects Envoy loads under `switchyard up`: the fast path and its stream
# guard, the token counts, the request metrics), built with the same clang for this machine.
DYNAMIC_MODULES := envoy/libswitchyard_stream_guard.so envoy/libswitchyard_usage.so envoy/libswitchyard_request_metrics.so envoy/libswitchyard_fast_path.so
WASM_CFLAGS := --target=wasm32-wasi --sysroot=/usr -O2 -Wall -Wextra -Werror
WASM_CC := clang $(WASM_CFLAGS) -mexec-model=reactor -Wl,--strip-all
# The callbacks each part of the combined module renames (<part>_<callback>) for its dispatcher.
PART_CALLBACKS := proxy_abi_version_0_2_1 proxy_on_memory_allocate proxy_on_context_create proxy_on_vm_start \
  proxy_on_configure proxy_on_tick proxy_on_request_headers proxy_on_request_body proxy_on_response_headers \
  proxy_on_log proxy_on_delete proxy_on_grpc_receive_initial_metadata proxy_on_grpc_receive_trailing_metadata \
  proxy_on_grpc_receive proxy_on_grpc_close
WASM_HEADERS := envoy/proxy_wasm_abi.h envoy/wasm_support.h
WASM_PACKAGES := clang lld wasi-libc libclang-rt-14-dev-wasm32
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Real clients the tests drive (Claude Code, Codex CLI), pinned by tests/clients/package-lock.json.
CLIENTS := tests/clients/node_modules/.installed

.PHONY: wasm-toolchain install run test validate render bench-routing soak bench mutation clean

install: $(STAMP) $(EXTENSIONS) $(DYNAMIC_MODULES)

# Re-installs only when the pins change; otherwise a no-op.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

wasm-toolchain:
	@command -v clang >/dev/null && command -v wasm-ld >/dev/null && test -f /usr/lib/wasm32-wasi/libc.a \
	  && ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1 \
	  || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $(WASM_PACKAGES))

envoy/%.wasm: envoy/%.c $(WASM_HEADERS) | wasm-toolchain
	$(WASM_CC) -o $@ $<

build/wasm/%.o: envoy/switchyard_%.c $(WASM_HEADERS) | wasm-toolchain
	@mkdir -p build/wasm
	clang $(WASM_CFLAGS) -DSWITCHYARD_PART $(foreach c,$(PART_CALLBACKS),-D$(c)=$*_$(c)) -c -o $@ $<

envoy/switchyard_extension.wasm: envoy/switchyard_extension.c build/wasm/metrics.o build/wasm/governance.o $(WASM_HEADERS) | wasm-toolchain
	$(WASM_CC) -o $@ $< build/wasm/metrics.o build/wasm/governance.o

# The bench's governance probes (bench/governance_floor.c): built only by `make bench`'s cost table.
GOVERNANCE_PROBES := build/bench/governance_floor.wasm build/bench/governance_floor_host_calls.wasm

build/bench/governance_floor.wasm: bench/governance_floor.c envoy/proxy_wasm_abi.h | wasm-toolchain
	@mkdir -p build/bench
	$(WASM_CC) -Ienvoy -o $@ $<

build/bench/governance_floor_host_calls.wasm: bench/governance_floor.c envoy/proxy_wasm_abi.h | wasm-toolchain
	@mkdir -p build/bench
	$(WASM_CC) -Ienvoy -DHOST_CALLS -o $@ $<

envoy/libswitchyard_%.so: envoy/switchyard_%.c envoy/dynamic_module_abi.h envoy/dynamic_module_unused.h | wasm-toolchain
	clang -O2 -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden -pthread -o $@ $< -lm

run: install
	$(VENV)/bin/switchyard up $(CONFIG)

$(CLIENTS): tests/clients/package.json tests/clients/package-lock.json
	cd tests/clients && npm ci --no-audit --no-fund --loglevel=error
	test -x tests/clients/node_modules/.bin/claude && test -x tests/clients/node_modules/.bin/codex
	touch $@

# The tests start their own redis-server (a Unix socket each); Debian's package, installed when
# missing and never started as a service (RUNLEVEL=1).
REDIS_SERVER := /usr/bin/redis-server

$(REDIS_SERVER):
	command -v redis-server >/dev/null || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends redis-server)

# The end-to-end suite runs twice: as configured (the fast path is on by default), then with
# gateway.fast_path off wherever a test does not choose (tests/gateway.py).
PROMETHEUS := /usr/bin/prometheus

$(PROMETHEUS):
	command -v prometheus >/dev/null || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends prometheus)

test: install $(CLIENTS) $(REDIS_SERVER) $(PROMETHEUS)
	$(PY) -m pytest -q
	SWITCHYARD_TEST_FAST_PATH=0 $(PY) -m pytest -q tests/e2e

validate: install
	$(VENV)/bin/switchyard validate $(CONFIG)

render: install
	$(VENV)/bin/switchyard render $(CONFIG)

# A bounded mixed load (2 minutes, loopback only) against a real gateway; figures into README.md.
# SOAK_ARGS=--flood: the same mix beside a flood of idle and slowloris connections (README).
SOAK_ARGS ?=
soak: install
	$(PY) bench/soak.py --seconds 120 $(SOAK_ARGS)

# The CLINC150 domain routing benchmark (../shared/data/clinc150); writes its figures into README.md.
bench-routing: install
	$(PY) -m bench.routing
	$(PY) -m bench.agent_routing

# Request-path performance side by side (upstream alone, bare Envoy, Switchyard, LiteLLM) with wrk:
# bench/results.md and bench/results.png. Not part of `make test`. `make bench BENCH_ARGS=--quick`
# (~3 min), `BENCH_ARGS=--profile` (py-spy flame graph of a filter worker → bench/profile.svg).
BENCH_ARGS ?=
BENCH_VENV := build/bench-venv
LITELLM_VENV := build/litellm-venv

$(BENCH_VENV)/.installed:
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --disable-pip-version-check matplotlib==3.11.2 py-spy==0.4.3 uvloop==0.23.0
	touch $@

$(LITELLM_VENV)/.installed:
	test -x $(LITELLM_VENV)/bin/python || $(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/pip install -q --disable-pip-version-check 'litellm[proxy]==1.106.2'
	touch $@

bench: install $(BENCH_VENV)/.installed $(LITELLM_VENV)/.installed
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) -m bench.perf $(BENCH_ARGS)

# Mutation testing of the pure request-path modules against the unit tests (tests/mutation.py,
# settings in pyproject.toml [tool.mutmut]). Not part of `make test`; mutmut (pinned) lives in its
# own venv that also sees the project's packages. Results are kept in mutants/ between runs.
# `make mutation MUTATION_ARGS="resolve inbound"` runs some modules; `--readme` writes the score.
MUTATION_ARGS ?=
MUTATION_VENV := build/mutation-venv

$(MUTATION_VENV)/.installed: $(STAMP)
	test -x $(MUTATION_VENV)/bin/python || $(PYTHON) -m venv $(MUTATION_VENV)
	$(MUTATION_VENV)/bin/pip install -q --disable-pip-version-check mutmut==3.8.1
	$(MUTATION_VENV)/bin/python tests/mutation.py --link "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
	touch $@

mutation: install $(MUTATION_VENV)/.installed
	nice -n 15 $(MUTATION_VENV)/bin/python tests/mutation.py $(MUTATION_ARGS)

clean:
	rm -rf $(VENV) build mutants *.egg-info $(EXTENSIONS) $(DYNAMIC_MODULES)
