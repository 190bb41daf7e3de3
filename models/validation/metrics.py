"""Per-case segmentation metrics (MONAI's): Dice, 95th-percentile Hausdorff distance and surface Dice.

For each label value: Dice (1 when both masks are empty), HD95 in millimetres (0 when both are
empty; the volume's diagonal when only one is, the worst distance on that grid, so that a missed or
invented structure counts against the model rather than dropping out), and surface Dice at the
protocol's tolerance in millimetres (1 when both are empty, 0 when only one is).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

DIRECTIONS = {"dice": 1, "hd95": -1, "surface_dice": 1}  # +1: higher is better


def _one_hot(mask: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(mask.astype(np.float32))
    return torch.stack([1.0 - tensor, tensor])[None]  # [batch, background + class, ...]


def case_metrics(
    predicted: np.ndarray,
    reference: np.ndarray,
    classes: dict[int, str],
    spacing: tuple[float, float, float],
    tolerance_mm: float,
) -> dict[str, dict[str, float]]:
    """``{class name: {metric: value}}`` for one case (label volumes on the same grid)."""
    from monai.metrics import compute_dice, compute_hausdorff_distance, compute_surface_dice

    diagonal = math.dist((0.0, 0.0, 0.0), [n * s for n, s in zip(reference.shape, spacing, strict=True)])
    found: dict[str, dict[str, float]] = {}
    for value, name in sorted(classes.items()):
        mine, truth = predicted == value, reference == value
        if not mine.any() and not truth.any():
            found[name] = {"dice": 1.0, "hd95": 0.0, "surface_dice": 1.0}
            continue
        if not mine.any() or not truth.any():
            found[name] = {"dice": 0.0, "hd95": diagonal, "surface_dice": 0.0}
            continue
        y_pred, y = _one_hot(mine), _one_hot(truth)
        dice = float(compute_dice(y_pred, y, include_background=False)[0, 0])
        with warnings.catch_warnings():  # MONAI's surface distances use an argument it deprecated itself
            warnings.simplefilter("ignore", FutureWarning)
            hd95 = float(
                compute_hausdorff_distance(
                    y_pred, y, include_background=False, percentile=95, spacing=list(spacing)
                )[0, 0]
            )
            surface = float(
                compute_surface_dice(
                    y_pred,
                    y,
                    class_thresholds=[tolerance_mm],
                    include_background=False,
                    spacing=list(spacing),
                )[0, 0]
            )
        found[name] = {"dice": dice, "hd95": hd95, "surface_dice": surface}
    return found


def label_agreement(first: np.ndarray, second: np.ndarray, classes: dict[int, str]) -> dict[str, float]:
    """Dice between two label volumes on the same grid, per class (1.0 where both are empty)."""
    found = {}
    for value, name in sorted(classes.items()):
        a, b = first == value, second == value
        total = int(a.sum()) + int(b.sum())
        found[name] = 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total
    return found
