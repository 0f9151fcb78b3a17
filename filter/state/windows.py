"""Counter keys for fixed time windows and calendar periods: pure functions on a timestamp.

Rate limits count in fixed windows (`fixed_window(..., 60)`: requests or tokens per minute, as
the peers count them); budgets in calendar periods in UTC (`calendar_period(..., "day")`). The key
names the window, so a new window is a new counter, and the counter's TTL (the window's length
plus a margin) removes the old one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

# Counters outlive their window a little, so a read at the boundary still finds them.
MARGIN_S = 60.0


@dataclass(frozen=True, slots=True)
class Window:
    key: str  # the counter for this window
    resets_at: float  # Unix time at which the next window starts
    ttl_s: float  # for Increment.ttl_s


def fixed_window(name: str, length_s: float, now: float) -> Window:
    """The window of `length_s` seconds that holds `now` (windows start at multiples of it)."""
    if length_s <= 0:
        raise ValueError("a window has a positive length")
    index = int(now // length_s)
    return Window(f"{name}:w{int(length_s)}:{index}", (index + 1) * length_s, length_s + MARGIN_S)


def calendar_period(name: str, period: str, now: float) -> Window:
    """The UTC day (`day`) or month (`month`) that holds `now`."""
    moment = datetime.fromtimestamp(now, timezone.utc)
    if period == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        label = start.strftime("%Y-%m-%d")
        length_s = 86_400.0
    elif period == "month":
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        label = start.strftime("%Y-%m")
        nxt = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
        length_s = (nxt - start).total_seconds()
    else:
        raise ValueError(f"period must be day or month, got {period!r}")
    resets_at = start.timestamp() + length_s
    return Window(f"{name}:{label}", resets_at, resets_at - now + MARGIN_S)
