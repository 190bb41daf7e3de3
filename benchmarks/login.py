"""Sign-in cost: argon2id with the appliance's parameters, alone and as a whole HTTP sign-in.

A sign-in is meant to be slow for a guesser, not fast: this prints the parameters, the time of one
password check in this process (the guesses per second one core buys an attacker holding a hash),
and the time of a whole ``POST /api/auth/login`` against a running appliance (password check, one-time
code, token, audit event), median of ``--count`` sign-ins by different accounts.

    python benchmarks/login.py [--count 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.access import passwords  # noqa: E402
from testbed.accounts import enrol  # noqa: E402
from testbed.dicomweb_peers import QUIET  # noqa: E402
from testbed.processes import ApplianceProcess, run_cli  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10)
    args = parser.parse_args()
    stored = passwords.hash_password("a password to check")
    checks = []
    for _ in range(args.count):
        started = time.perf_counter()
        passwords.verify_password(stored, "a password to check")
        checks.append(time.perf_counter() - started)
    check = statistics.median(checks)
    print(
        f"argon2id m={passwords.MEMORY_KIB} KiB, t={passwords.PASSES}, p={passwords.LANES}: "
        f"{check * 1000:.0f} ms per password check ({1 / check:.1f} guesses/s per core)"
    )
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        run_cli(home, "init")
        appliance = ApplianceProcess(home, Path(scratch) / "appliance.log", QUIET).start()
        try:
            base, times = appliance.base_url, []
            for index in range(args.count):
                body = enrol(home, base, f"user{index}", "auditor").login_body()
                started = time.perf_counter()
                httpx.post(f"{base}/api/auth/login", json=body).raise_for_status()
                times.append(time.perf_counter() - started)
            print(f"HTTP sign-in (median of {args.count}): {statistics.median(times) * 1000:.0f} ms")
        finally:
            appliance.stop()


if __name__ == "__main__":
    main()
