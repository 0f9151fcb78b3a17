# Switchyard: `make run` starts the gateway on the demo configuration, `make test` runs the suite.
# Both set everything up themselves on a fresh clone.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= examples/demo.yaml
# Real clients the tests drive (Claude Code), pinned by tests/clients/package-lock.json.
CLIENTS := tests/clients/node_modules/.bin/claude

.PHONY: install run test validate render bench-routing soak clean

install: $(STAMP)

# Re-installs only when the pins change; otherwise a no-op.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

run: install
	$(VENV)/bin/switchyard up $(CONFIG)

$(CLIENTS): tests/clients/package.json tests/clients/package-lock.json
	cd tests/clients && npm ci --no-audit --no-fund --loglevel=error
	touch $@

test: install $(CLIENTS)
	$(PY) -m pytest -q

validate: install
	$(VENV)/bin/switchyard validate $(CONFIG)

render: install
	$(VENV)/bin/switchyard render $(CONFIG)

# A bounded mixed load (2 minutes, loopback only) against a real gateway; figures into README.md.
soak: install
	$(PY) bench/soak.py --seconds 120

# The CLINC150 domain routing benchmark (../shared/data/clinc150); writes its figures into README.md.
bench-routing: install
	$(PY) -m bench.routing

clean:
	rm -rf $(VENV) build *.egg-info
