"""A periodic step runs at its interval, at once when woken, and survives a failing pass."""

from __future__ import annotations

import threading
import time

from appliance.periodic import Periodic


def test_wake_runs_the_next_step_without_waiting_for_the_interval():
    ran = threading.Event()
    periodic = Periodic("test", 60.0, lambda _stop: ran.set())
    periodic.start()
    try:
        assert not ran.wait(0.3)  # the interval is a minute: nothing yet
        periodic.wake()
        assert ran.wait(5)
    finally:
        started = time.monotonic()
        periodic.stop(timeout=5)
        assert time.monotonic() - started < 5  # stop does not wait out the interval either


def test_a_failing_pass_does_not_end_the_thread():
    passes: list[int] = []

    def step(_stop: threading.Event) -> None:
        passes.append(1)
        if len(passes) == 1:
            raise RuntimeError("a bad pass")

    periodic = Periodic("test", 0.01, step)
    periodic.start()
    try:
        deadline = time.monotonic() + 5
        while len(passes) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(passes) >= 3
    finally:
        periodic.stop(timeout=5)
