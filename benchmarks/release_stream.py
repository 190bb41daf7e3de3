"""The release's de-identifying stream alone: outputs handed back through shared slots against the
pool's pipe, in one run.

``anonymizer.batch.deidentify_stream`` (two forked workers, as on a two-core machine) de-identifies
the same Part 10 objects from memory either way; the pipe side is the same code with slots too
small for any output, so every output goes back pickled through the pool's result pipe, as before
the slots. The sides alternate round by round; the script prints each side's median seconds and
the CPU its parent process spent (the workers' is reaped with them and printed too), then the
ratio of the medians.

    python benchmarks/release_stream.py [--count 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anonymizer import batch  # noqa: E402
from anonymizer.engine import Deidentifier  # noqa: E402
from anonymizer.profile import named_profile  # noqa: E402
from anonymizer.shared_slots import SharedSlots  # noqa: E402
from anonymizer.table import load_table  # noqa: E402
from testbed.synthetic import FakePatient, ct_series  # noqa: E402


class _PipeOnly(SharedSlots):
    """Slots no output fits: every output takes the pipe."""

    def __init__(self, count: int) -> None:
        super().__init__(count, size=1)


def _cpu() -> tuple[float, float]:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    objects = []
    for n in range(4):
        for ds in ct_series(args.count // 4, FakePatient(f"Stream^Patient{n}", f"PID-{n}"), size=512, seed=n):
            buffer = BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            objects.append(buffer.getvalue())
    deidentifier = Deidentifier(b"benchmark-secret-of-32-bytes-ok!", named_profile("research"), load_table())
    sides = {"slots": SharedSlots, "pipe": _PipeOnly}
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    for round_no in range(args.rounds):
        for name in list(sides) if round_no % 2 == 0 else list(sides)[::-1]:
            batch.SharedSlots = sides[name]  # type: ignore[misc]
            own, children = _cpu()
            started = time.perf_counter()
            size = sum(
                len(outcome.encoded or b"")
                for _, outcome in batch.deidentify_stream(
                    range(len(objects)), objects.__getitem__, deidentifier, 2
                )
            )
            seconds[name].append(time.perf_counter() - started)
            after_own, after_children = _cpu()
            cpu[name].append((after_own - own, after_children - children))
            assert size > 0
    print(f"{len(objects)} CT instances of 512x512, 2 workers, {args.rounds} rounds")
    for name in sides:
        parent, workers = (statistics.median(part) for part in zip(*cpu[name], strict=True))
        print(f"{name:6s} median {statistics.median(seconds[name]):.3f} s, "
              f"CPU: parent {parent:.3f} s, workers {workers:.3f} s")  # fmt: skip
    ratio = statistics.median(seconds["pipe"]) / statistics.median(seconds["slots"])
    print(f"slots / pipe speed: {ratio:.2f}")


if __name__ == "__main__":
    main()
