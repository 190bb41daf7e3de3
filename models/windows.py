"""The network as the sliding-window inferer calls it: on the CPU, never on a batch of one window.

PyTorch sends a 3-D convolution to oneDNN only if its batch has more than one sample or its input is
large (``N*C*D*H > 20480``); a first convolution on one single-channel window of 96^3 (9,216) takes
the native path instead, which unfolds the input and is slower and larger than two windows
together. The inferer's last batch is often a single window (an odd count of windows in batches
of two), so such a batch runs as the window twice and the first answer is kept: the same network on the
same window, computed by oneDNN (its values differ from the native path's by float rounding).
"""

from __future__ import annotations

from typing import Any

import torch


def _first(output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return output[:1]
    if isinstance(output, tuple | list):
        return type(output)(_first(item) for item in output)
    if isinstance(output, dict):
        return {key: _first(value) for key, value in output.items()}
    return output


class PairedWindows:
    """Calls ``network``; on the CPU a batch of one window runs as that window twice."""

    def __init__(self, network: Any, device: torch.device) -> None:
        self.network = network
        self.pairs = device.type == "cpu"

    def runs_as(self, windows: int) -> int:
        """The batch size the network sees for a batch of ``windows``."""
        return 2 if self.pairs and windows == 1 else windows

    def __call__(self, windows: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if self.runs_as(windows.shape[0]) != windows.shape[0]:
            return _first(self.network(torch.cat((windows, windows)), *args, **kwargs))
        return self.network(windows, *args, **kwargs)
