"""SIGTERM drains for at most 30 s (the README's promise), on a clock the test drives.

The supervisor asks Envoy's admin to stop accepting, then polls its count of active requests. The
admin is a stand-in here and the clock advances only when the supervisor sleeps, so the 30 s are
checked exactly and the test takes no time.
"""

from __future__ import annotations

import pytest

from filter.runtime import supervisor as sup


class Clock:
    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Admin:
    """Envoy's admin: /drain_listeners, then the active-request gauge, which reaches 0 at `done_at`."""

    def __init__(self, clock: Clock, done_at: float | None):
        self.clock = clock
        self.done_at = done_at
        self.drained = False
        self.polls = 0

    def urlopen(self, request, timeout=None):
        assert request.full_url.endswith("/drain_listeners") and request.get_method() == "POST"
        self.drained = True

        class Answer:
            def close(self):
                pass

        return Answer()

    def stats(self, path: str):
        assert "downstream_rq_active" in path
        self.polls += 1
        active = 0 if self.done_at is not None and self.clock.now >= self.done_at else 2
        return {"stats": [{"name": "http.switchyard.downstream_rq_active", "value": active}]}


@pytest.fixture
def drain(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(sup, "time", clock)

    def run(done_after: float | None) -> tuple[float, Admin]:
        admin = Admin(clock, None if done_after is None else clock.now + done_after)
        monkeypatch.setattr(sup.urllib.request, "urlopen", admin.urlopen)
        supervisor = sup.Supervisor.__new__(sup.Supervisor)  # only what _drain reads
        supervisor.admin_port = 9901  # Envoy's admin, as reported by Envoy once it listens
        supervisor._admin_json = admin.stats
        start = clock.now
        supervisor._drain()
        return clock.now - start, admin

    return run


def test_a_request_that_never_ends_is_waited_for_30_seconds_then_no_longer(drain):
    waited, admin = drain(done_after=None)
    assert admin.drained
    assert 30.0 <= waited <= 30.2
    assert admin.polls > 100  # it kept checking rather than sleeping the 30 s in one go


def test_draining_ends_as_soon_as_the_last_request_finishes(drain):
    waited, admin = drain(done_after=4.0)
    assert 4.0 <= waited <= 4.2


def test_nothing_in_flight_stops_at_once(drain):
    waited, admin = drain(done_after=0.0)
    assert waited == 0.0 and admin.polls == 1
