"""A periodic step runs at its interval, at once when woken, when it says its next work is due,
and survives a failing pass."""

from __future__ import annotations

import threading
import time

from appliance.runtime.periodic import NextPassIn, Periodic


def test_the_first_pass_runs_at_start_and_wake_runs_the_next_without_waiting_for_the_interval():
    passes = threading.Semaphore(0)
    periodic = Periodic("test", 60.0, lambda _stop: passes.release())
    periodic.start()
    try:
        assert passes.acquire(timeout=5)  # at start
        assert not passes.acquire(timeout=0.3)  # the interval is a minute: nothing more yet
        periodic.wake()
        assert passes.acquire(timeout=5)
    finally:
        started = time.monotonic()
        periodic.stop(timeout=5)
        assert time.monotonic() - started < 5  # stop does not wait out the interval either


def _wait_for_passes(passes: list, count: int, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while len(passes) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_failing_pass_does_not_end_the_thread():
    passes: list[int] = []

    def step(_stop: threading.Event) -> None:
        passes.append(1)
        if len(passes) == 1:
            raise RuntimeError("a bad pass")

    periodic = Periodic("test", 0.01, step)
    periodic.start()
    try:
        _wait_for_passes(passes, 3)
        assert len(passes) >= 3
    finally:
        periodic.stop(timeout=5)


def test_a_step_that_knows_its_next_due_time_runs_then_not_at_the_interval():
    passes: list[float] = []

    def step(_stop: threading.Event) -> NextPassIn:
        passes.append(time.monotonic())
        return NextPassIn(0.05 if len(passes) < 3 else 3600.0)

    periodic = Periodic("test", 60.0, step)
    periodic.start()
    try:
        _wait_for_passes(passes, 3)
        assert len(passes) == 3  # the two passes after the first came when due, not a minute later
        time.sleep(0.3)
        assert len(passes) == 3  # then nothing is due for longer than the interval: it waits that
    finally:
        periodic.stop(timeout=5)
