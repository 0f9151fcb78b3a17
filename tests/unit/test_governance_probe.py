"""The bench's governance probes (bench/governance_floor.c) stand in for the governance's Wasm
filter to split its cost into the filter itself and its host calls; the split only holds if a
probe gets every callback the real extension gets: Envoy skips a callback a module does not
export, so a probe with fewer would measure a cheaper filter than the one shipped."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.fast_path_costs import GOVERNANCE_PROBES, _governance_probes

ROOT = Path(__file__).resolve().parents[2]


def _leb(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def exported_functions(wasm: bytes) -> set[str]:
    """The names in a Wasm module's export section that name functions (kind 0)."""
    assert wasm[:4] == b"\0asm"
    at, names = 8, set()
    while at < len(wasm):
        section, size_at = wasm[at], at + 1
        size, at = _leb(wasm, size_at)
        end = at + size
        if section == 7:
            count, at = _leb(wasm, at)
            for _ in range(count):
                length, at = _leb(wasm, at)
                name = wasm[at:at + length].decode()
                kind = wasm[at + length]
                _, at = _leb(wasm, at + length + 1)
                if kind == 0:
                    names.add(name)
        at = end
    return names


@pytest.fixture(scope="module")
def shipped() -> set[str]:
    module = ROOT / "envoy" / "switchyard_governance.wasm"
    subprocess.run(["make", "-s", str(module.relative_to(ROOT))], cwd=ROOT, check=True)
    return exported_functions(module.read_bytes())


def test_each_probe_gets_every_callback_the_governance_gets(shipped):
    probes = _governance_probes()
    assert set(probes) == set(GOVERNANCE_PROBES)
    for name, path in probes.items():
        exports = exported_functions(path.read_bytes())
        # The probes leave out what only a limit near or reached needs (ticks, calls to the workers).
        missing = {e for e in shipped - exports
                   if not e.startswith(("proxy_on_tick", "proxy_on_grpc", "proxy_on_queue"))}
        assert not missing, f"{name} lacks {sorted(missing)}"
        assert exports <= shipped | {"_initialize"}, f"{name} exports more than the governance"


def test_the_export_reader_reads_a_real_module(shipped):
    assert {"proxy_on_request_headers", "proxy_on_log", "proxy_on_tick"} <= shipped
