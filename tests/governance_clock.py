"""The wall clock of a gateway under test, stepped forward by the test (tests/clock/sitecustomize.py
is what the gateway's Python processes run; Envoy follows the workers' clock)."""

from __future__ import annotations

import math
import os
import time
from datetime import datetime, timezone
from pathlib import Path

CLOCK_DIR = Path(__file__).resolve().parent / "clock"


class GatewayClock:
    def __init__(self, directory: Path):
        self.path = Path(directory) / "clock"
        self.offset = 0.0
        self._write()

    @property
    def env(self) -> dict[str, str]:
        path = os.pathsep.join(p for p in (str(CLOCK_DIR), os.environ.get("PYTHONPATH", "")) if p)
        return {"PYTHONPATH": path, "SWITCHYARD_TEST_CLOCK_FILE": str(self.path)}

    def now(self) -> float:
        return time.time() + self.offset

    def step_to(self, moment: float) -> None:
        """Move the gateway's clock forward to `moment` (Unix seconds); never backward."""
        self.offset = max(self.offset, moment - time.time())
        self._write()

    def next_minute(self) -> float:
        return (math.floor(self.now() / 60) + 1) * 60

    def next_day(self) -> float:
        return (math.floor(self.now() / 86400) + 1) * 86400

    def next_month(self) -> float:
        moment = datetime.fromtimestamp(self.now(), timezone.utc)
        year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
        return datetime(year, month, 1, tzinfo=timezone.utc).timestamp()

    def _write(self) -> None:
        staging = self.path.with_suffix(".staging")
        staging.write_text(repr(self.offset))
        staging.replace(self.path)
