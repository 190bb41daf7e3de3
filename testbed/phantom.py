"""Synthetic CT phantoms: a body with organs, spine and bright lesions, in Hounsfield units.

Used to train and check the demo model and by the tests; no patient data anywhere. A phantom is
defined in millimetres and sampled on any grid, so the same anatomy can be drawn at the model's
training resolution or as a 512x512 clinical series. Arrays are indexed ``[x, y, z]`` with x to
the patient's left, y to posterior and z to superior (DICOM LPS axes), centred on the origin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AIR, FAT, SOFT_TISSUE, LIVER, BONE = -1000.0, -100.0, 40.0, 60.0, 700.0
NOISE_HU = 12.0


@dataclass(frozen=True)
class Lesion:
    centre: tuple[float, float, float]  # mm
    radii: tuple[float, float, float]  # mm
    hu: float


@dataclass(frozen=True)
class Phantom:
    hu: np.ndarray  # int16 [x, y, z]
    lesions_mask: np.ndarray  # bool [x, y, z]
    lesions: tuple[Lesion, ...]

    def lesion_volume_ml(self, spacing: tuple[float, float, float]) -> float:
        return float(self.lesions_mask.sum()) * float(np.prod(spacing)) / 1000.0


def _grid(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> list[np.ndarray]:
    axes = [(np.arange(n) - (n - 1) / 2.0) * s for n, s in zip(shape, spacing, strict=True)]
    return np.meshgrid(*axes, indexing="ij", sparse=True)


def _ellipsoid(grid: list[np.ndarray], centre, radii) -> np.ndarray:  # type: ignore[no-untyped-def]
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1.0


def _lesions(rng: np.random.Generator, extent_z: float, count: int) -> tuple[Lesion, ...]:
    lesions = []
    for _ in range(count):
        radius = rng.uniform(7.0, 20.0)
        radii = (
            radius * rng.uniform(0.8, 1.2),
            radius * rng.uniform(0.8, 1.2),
            radius * rng.uniform(0.8, 1.2),
        )
        angle, distance = rng.uniform(0, 2 * np.pi), rng.uniform(0.0, 0.6)
        centre = (
            float(np.cos(angle) * distance * 110.0),
            float(np.sin(angle) * distance * 65.0 - 10.0),
            float(rng.uniform(-0.3, 0.3) * extent_z),
        )
        lesions.append(Lesion(centre, radii, float(rng.uniform(130.0, 200.0))))
    return tuple(lesions)


def make_phantom(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    seed: int,
    lesion_count: int | None = None,
) -> Phantom:
    rng = np.random.default_rng(seed)
    grid = _grid(shape, spacing)
    x, y, z = grid
    extent_z = shape[2] * spacing[2]
    scale = rng.uniform(0.9, 1.1)
    hu = np.full(shape, AIR, dtype=np.float32)
    body = ((x / (160.0 * scale)) ** 2 + ((y + 5.0) / (110.0 * scale)) ** 2 <= 1.0) & (z == z)
    hu[body] = FAT
    inner = (x / (145.0 * scale)) ** 2 + ((y + 5.0) / (95.0 * scale)) ** 2 <= 1.0
    hu[inner & body] = SOFT_TISSUE
    liver = _ellipsoid(grid, (-60.0, -10.0, 0.0), (60.0, 50.0, extent_z))
    hu[liver & inner] = LIVER
    spine = ((x / 18.0) ** 2 + ((y - 70.0 * scale) / 16.0) ** 2 <= 1.0) & (z == z)
    hu[spine] = BONE
    count = lesion_count if lesion_count is not None else int(rng.integers(1, 4))
    lesions = _lesions(rng, extent_z, count)
    mask = np.zeros(shape, dtype=bool)
    for lesion in lesions:
        region = _ellipsoid(grid, lesion.centre, lesion.radii) & inner & ~spine
        hu[region] = lesion.hu
        mask |= region
    hu += rng.normal(0.0, NOISE_HU, shape).astype(np.float32)
    return Phantom(np.clip(np.rint(hu), -1024, 3071).astype(np.int16), mask, lesions)
