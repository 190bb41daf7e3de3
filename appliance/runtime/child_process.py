"""What a process the appliance starts (a gateway worker, the inference process) does first."""

from __future__ import annotations

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Linux: get SIGKILL when the main process dies, however it dies (kill -9 included)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def parent_alive(parent: int) -> bool:
    """Whether ``parent`` is still this process's parent (it may have died before ``prctl``)."""
    return os.getppid() == parent
