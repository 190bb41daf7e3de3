"""Outputs handed back from forked workers through shared memory: the same bytes as one process
makes, whichever way each came (a slot, or the pipe for an output larger than a slot)."""

from __future__ import annotations

import multiprocessing
from io import BytesIO

import pytest

from anonymizer import batch
from anonymizer.engine import Deidentifier
from anonymizer.shared_slots import SharedSlots
from testbed.synthetic import FakePatient, ct_series

pytestmark = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="slots are shared by forking"
)


def _write_in_child(slots: SharedSlots, slot: int, data: bytes) -> None:
    assert slots.write(slot, data)


def test_what_a_forked_child_writes_in_its_slot_the_parent_reads() -> None:
    slots = SharedSlots(2, size=64)
    child = multiprocessing.get_context("fork").Process(target=_write_in_child, args=(slots, 1, b"x" * 40))
    child.start()
    child.join()
    assert child.exitcode == 0
    assert slots.read(1, 40) == b"x" * 40
    assert slots.read(0, 40) == bytes(40)  # the other slot is untouched
    assert not slots.write(0, b"y" * 65)  # too large for a slot: nothing written
    assert slots.read(0, 40) == bytes(40)
    slots.close()


class _CountedSlots(SharedSlots):
    """Slots of 60 kB that count the outputs read from them (in the parent, where reads happen)."""

    reads = 0

    def __init__(self, count: int) -> None:
        super().__init__(count, size=60_000)

    def read(self, slot: int, length: int) -> bytes:
        type(self).reads += 1
        return super().read(slot, length)


def _encoded(size: int, count: int, seed: int) -> list[bytes]:
    encoded = []
    for ds in ct_series(count, FakePatient(f"Slot^Patient{size}", f"SLOT-{size}"), size=size, seed=seed):
        buffer = BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        encoded.append(buffer.getvalue())
    return encoded


def test_the_stream_gives_one_process_bytes_through_slots_and_the_pipe(
    research: Deidentifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    small, large = _encoded(64, 6, 1), _encoded(256, 3, 2)  # about 8 kB and 131 kB of pixels
    objects = small + large
    alone = dict(batch.deidentify_stream(range(len(objects)), objects.__getitem__, research, workers=1))
    monkeypatch.setattr(batch, "SharedSlots", _CountedSlots)
    forked = dict(
        batch.deidentify_stream(range(len(objects)), objects.__getitem__, research, workers=2, window=4)
    )
    assert sorted(forked) == list(range(len(objects)))
    for key, outcome in forked.items():
        assert outcome.encoded is not None and outcome.encoded == alone[key].encoded, key
        assert outcome.sha256 == alone[key].sha256
    assert _CountedSlots.reads == len(small)  # the small ones came through slots, the large by pipe


def test_spawned_workers_give_the_same_bytes_through_the_pipe(
    research: Deidentifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where processes cannot fork (macOS, Windows) the workers are spawned, given the bytes, and
    hand their outputs back through the pipe: no slots."""
    objects = _encoded(64, 4, 3)
    alone = dict(batch.deidentify_stream(range(len(objects)), objects.__getitem__, research, workers=1))
    monkeypatch.setattr(batch.multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    monkeypatch.setattr(batch, "SharedSlots", None)  # a slot made here would fail the test
    spawned = dict(batch.deidentify_stream(range(len(objects)), objects.__getitem__, research, workers=2))
    assert {key: outcome.encoded for key, outcome in spawned.items()} == {
        key: outcome.encoded for key, outcome in alone.items()
    }
