"""Audit log throughput: the encrypted Merkle log vs plain JSON lines, and verification speed.

Both writers take the same events from 4 producer threads and use the same group commit (one
write and one fsync per batch of whatever is queued); the audit log also encrypts each entry,
hashes it into the Merkle tree and hash chain, and signs a checkpoint every 1000 entries.

    python benchmarks/audit.py [--events 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit.events import Action, AuditEvent, EventID, Outcome, Participant, ParticipantObject  # noqa: E402
from audit.log import AuditLog  # noqa: E402
from audit.verify import verify_log  # noqa: E402
from durable import take_batch  # noqa: E402

PRODUCERS = 4


class PlainJsonLines:
    """The baseline: same queue, same batching, same fsync per batch; no encryption, no tree."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def emit(self, event: AuditEvent) -> None:
        self._queue.put(json.dumps(event.to_dict(), sort_keys=True, separators=(",", ":")).encode() + b"\n")

    def _run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        while True:
            item = self._queue.get()
            if item is None:
                break
            batch = take_batch(self._queue, item)
            os.write(fd, b"".join(batch))
            os.fsync(fd)
        os.close(fd)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()


def event(n: int) -> AuditEvent:
    return AuditEvent(
        event_id=EventID.INSTANCES_TRANSFERRED,
        action=Action.CREATE,
        outcome=Outcome.SUCCESS,
        participants=(Participant("MODALITY1", "10.0.4.17", is_requestor=True), Participant("APPLIANCE")),
        objects=(ParticipantObject("patient", f"P{n % 997}"), ParticipantObject("study", f"1.2.826.0.1.{n}")),
        description="instances=1",
    )


def timed_appends(sink, events: int) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    producers = [
        threading.Thread(target=lambda k=k: [sink.emit(event(n)) for n in range(k, events, PRODUCERS)])
        for k in range(PRODUCERS)
    ]
    for thread in producers:
        thread.start()
    for thread in producers:
        thread.join()
    sink.close()  # returns once everything is fsynced
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    signer = Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        root = Path(tmp)
        plain = timed_appends(PlainJsonLines(root / "plain.jsonl"), args.events)
        log = AuditLog(root / "log", os.urandom(32), signer, "bench", root / "witness.jsonl", 1000, 60)
        merkle_log = timed_appends(log, args.events)
        started = time.perf_counter()
        result = verify_log(root / "log", signer.public_key(), "bench", root / "witness.jsonl")
        verify = time.perf_counter() - started
    assert result.entries == args.events
    print(f"{args.events} events from {PRODUCERS} threads, group commit with fsync per batch")
    print(f"plain JSON lines   {args.events / plain:10.0f} appends/s")
    print(f"audit log          {args.events / merkle_log:10.0f} appends/s")
    print(f"audit / plain      {plain / merkle_log:10.2f}  (goal >= 0.5)")
    print(f"verify             {result.entries / verify:10.0f} entries/s  (goal >= 100000)")


if __name__ == "__main__":
    main()
