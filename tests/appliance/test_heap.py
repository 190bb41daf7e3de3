"""The inference process's heap: freed blocks reused without new pages, returned when asked."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from appliance.pipeline.inference import process
from appliance.pipeline.inference.messages import Failed, SeriesRequest

_PROBE = """
import ctypes, json, resource, sys
import psutil
from appliance.runtime import heap
if sys.argv[1] == "keep":
    heap.keep_freed_memory()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rss = lambda: psutil.Process().memory_info().rss
size = 24_000_000  # under the 32 MiB from which a block gets a mapping of its own
block = libc.malloc(size); ctypes.memset(block, 1, size); libc.free(block)
before = faults()
block = libc.malloc(size); ctypes.memset(block, 1, size)  # the same size again
again = faults() - before
libc.free(block)
held = rss()
heap.return_freed_memory()
returned = held - rss()
large = 200_000_000
block = libc.malloc(large); ctypes.memset(block, 1, large)
before = rss()
libc.free(block)
print(json.dumps({"faults": again, "returned": returned, "large_returned_on_free": before - rss()}))
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
def test_a_kept_block_is_reused_without_new_pages_and_a_large_one_returned_as_freed() -> None:
    default, kept = _probe("default"), _probe("keep")
    pages = 24_000_000 // 4096
    assert default["faults"] > pages // 2  # glibc gives fresh pages, which the kernel zero-fills
    assert kept["faults"] < pages // 20  # the freed block is served again
    assert kept["returned"] > 18_000_000  # and handed back when asked
    # a volume-sized block lives in its own mapping: back to the system as it is freed
    assert kept["large_returned_on_free"] > 150_000_000


def test_the_worker_returns_freed_memory_only_when_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    returned = []
    monkeypatch.setattr(process, "return_freed_memory", lambda: returned.append(True))
    ready: queue.Queue = queue.Queue()
    ready.put("busy")
    assert process.next_prepared(ready, 0.05) == "busy"
    assert returned == []  # work waiting: the memory stays for it
    threading.Timer(0.3, ready.put, args=("later",)).start()
    assert process.next_prepared(ready, 0.05) == "later"
    assert returned == [True]  # idle past the limit: returned once, then waits on


def test_each_series_is_prepared_after_the_last_ones_free_memory_is_returned(home, monkeypatch) -> None:
    from appliance.context import open_appliance

    events: list[str] = []
    monkeypatch.setattr(process, "return_freed_memory", lambda: events.append("returned"))

    class Series:
        def __init__(self, _app, objects) -> None:  # type: ignore[no-untyped-def]
            events.append("read")
            self.headers = []

    monkeypatch.setattr(process, "StoredSeries", Series)
    app = open_appliance(home)
    try:
        handler = process.SeriesHandler(app, "cpu")
        reply = handler.prepare(SeriesRequest(7, ()))
    finally:
        app.close()
    assert events == ["returned", "read"]
    assert isinstance(reply, Failed) and reply.permanent and "no stored instances" in reply.reason
