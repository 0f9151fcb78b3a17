"""Real clients the tests drive, pinned by tests/clients/package-lock.json and installed by
`make test`. A missing one skips its tests on a developer's machine, and fails them under CI
(`CI=true`): a run that silently skipped Claude Code would pass without ever testing it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CLIENTS = Path(__file__).resolve().parent / "clients" / "node_modules" / ".bin"


def require_client(name: str) -> Path:
    """The path of the pinned CLI `name`; skips (fails under CI) when it is not installed."""
    path = CLIENTS / name
    if not path.exists():
        message = f"{path} is missing: `make test` installs it (npm ci in tests/clients)"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path
