"""The inference process's heap: freed blocks reused without new pages, returned when asked."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from appliance import inference_worker

_PROBE = """
import ctypes, json, resource, sys
import psutil
from appliance import heap
if sys.argv[1] == "keep":
    heap.keep_freed_memory()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
size = 200_000_000
block = libc.malloc(size); ctypes.memset(block, 1, size); libc.free(block)
before = faults()
block = libc.malloc(size); ctypes.memset(block, 1, size)  # the same size again
again = faults() - before
libc.free(block)
held = psutil.Process().memory_info().rss
heap.return_freed_memory()
print(json.dumps({"faults": again, "returned": held - psutil.Process().memory_info().rss}))
"""


def _probe(mode: str) -> dict:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode],
        capture_output=True,
        text=True,
        cwd=root,
        check=True,
        timeout=120,
    )
    return json.loads(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_kept_block_is_reused_without_new_pages_and_returned_on_request() -> None:
    default, kept = _probe("default"), _probe("keep")
    pages = 200_000_000 // 4096
    assert default["faults"] > pages // 2  # glibc maps a fresh block, which the kernel zero-fills
    assert kept["faults"] < pages // 20  # the freed block is served again
    assert kept["returned"] > 150_000_000  # and handed back when asked


def test_the_worker_returns_freed_memory_only_when_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    returned = []
    monkeypatch.setattr(inference_worker, "return_freed_memory", lambda: returned.append(True))
    ready: queue.Queue = queue.Queue()
    ready.put("busy")
    assert inference_worker._next(ready, 0.05) == "busy"
    assert returned == []  # work waiting: the memory stays for it
    threading.Timer(0.3, ready.put, args=("later",)).start()
    assert inference_worker._next(ready, 0.05) == "later"
    assert returned == [True]  # idle past the limit: returned once, then waits on


def test_each_series_is_prepared_after_the_last_ones_free_memory_is_returned(home, monkeypatch) -> None:
    from appliance.context import open_appliance

    events: list[str] = []
    monkeypatch.setattr(inference_worker, "return_freed_memory", lambda: events.append("returned"))

    class Series:
        def __init__(self, _app, objects) -> None:  # type: ignore[no-untyped-def]
            events.append("read")
            self.headers = []

    monkeypatch.setattr(inference_worker, "_StoredSeries", Series)
    app = open_appliance(home)
    try:
        handler = inference_worker._Handler(app, "cpu")
        reply = handler.prepare({"job": 7, "objects": []})
    finally:
        app.close()
    assert events == ["returned", "read"]
    assert reply["kind"] == "failed" and "no stored instances" in reply["reason"]
