"""A wall clock the test moves: imported by every Python process of a gateway a test starts with
this directory on PYTHONPATH and SWITCHYARD_TEST_CLOCK_FILE set (tests/governance_clock.py).

`time.time()` and `time.time_ns()` become the machine's clock plus the number of seconds the file
holds, re-read at most every 20 ms, so a test can step the gateway's clock forward the way NTP
steps a machine's: to the end of a minute or of a budget period, without waiting for it. Monotonic
time is left alone (timers, timeouts and asyncio run as they would). Envoy takes the minute and
the period from the workers' clock, so the whole gateway moves.
"""

import os
import time

_path = os.environ.get("SWITCHYARD_TEST_CLOCK_FILE")
if _path:
    _real_time, _real_time_ns, _monotonic = time.time, time.time_ns, time.monotonic
    _state = {"offset": 0.0, "read": -1.0}

    def _offset() -> float:
        now = _monotonic()
        if now - _state["read"] > 0.02:
            _state["read"] = now
            try:
                with open(_path) as f:
                    _state["offset"] = float(f.read().strip() or 0)
            except (OSError, ValueError):
                pass
        return _state["offset"]

    time.time = lambda: _real_time() + _offset()
    time.time_ns = lambda: _real_time_ns() + int(_offset() * 1e9)
