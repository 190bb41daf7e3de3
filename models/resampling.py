"""MONAI's spatial resampling, separable when the transform is axis-aligned.

MONAI resamples (``Spacing(d)``, and the ``Invertd`` that undoes it) through ``AffineTransform``:
``torch.affine_grid`` multiplies a four-column base grid, one row per output voxel, by the
transform, then ``grid_sample`` reads eight neighbours per output voxel at the grid's points; the
base grid alone is several times the output's size. When the transform only scales and shifts
each axis (no rotation or shear: spacing changes and their inverses), each output coordinate
depends on one output index only, and trilinear interpolation is a product of three 1-D linear
interpolations: resampling is three passes, each reading two neighbours along one axis, done a
slab at a time so that no full-size temporary is made. The weights and the padding rules are
``grid_sample``'s (zeros: a neighbour outside the input counts as 0; border: coordinates clamped),
so results equal MONAI's up to float rounding (tested); ``nearest`` takes ``grid_sample``'s
nearest neighbour (ties to even). The output keeps the input's memory order.
Under :func:`sign_only` (for a result that is only thresholded at zero) each slab computes just
the box of output voxels that can come out above zero, into zeros that take no memory until written.

:func:`install` puts :class:`AxisAlignedAffineTransform` where MONAI's ``spatial_resample`` looks
for ``AffineTransform``; any other transform, mode or padding goes through MONAI's own code.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import monai.transforms.spatial.functional as functional
import torch
from monai.networks.layers import AffineTransform
from monai.networks.utils import to_norm_affine
from monai.utils import ensure_tuple

from models.mapped import mapped_tensor

_SLAB = 16  # output positions along the outermost axis per step
_SEPARABLE_MODES = {"bilinear", "nearest"}
_SEPARABLE_PADDING = {"zeros", "border"}
_SNAP = 1e-4  # voxels: an axis whose every source coordinate is this close to a voxel is not blended
_SIGN_ONLY: ContextVar[bool] = ContextVar("sign_only", default=False)


@contextmanager
def sign_only() -> Iterator[None]:
    """Within this, the separable resampling is exact only where its result is above zero; every
    other output voxel is at most zero (0 where it was not computed).

    Both modes weigh their neighbours with non-negative weights (and zero padding adds zeros), so
    an output voxel whose every source neighbour is at most zero is itself at most zero. Each slab
    computes only the box of output voxels that read a positive source voxel; a slab that reads
    none is not computed at all. On the CPU the output is a fresh private mapping of zeros
    (:func:`models.mapped.mapped_tensor`): the part never computed is never written, so it takes no
    memory (a CT's inverse resampling is mostly such zeros). Use
    it only where nothing but ``> 0`` is taken from the result and no other interpolation follows
    (which would mix the zeros with computed values).
    """
    token = _SIGN_ONLY.set(True)
    try:
        yield
    finally:
        _SIGN_ONLY.reset(token)


class _Taps:
    """1-D interpolation along one axis: each output position reads one or two source positions."""

    def __init__(self, indices: list[torch.Tensor], weights: list[torch.Tensor]) -> None:
        self.indices = indices
        self.weights = weights

    @classmethod
    def along(cls, coords: torch.Tensor, size: int, mode: str, padding: str, align_corners: bool) -> _Taps:
        """Taps for normalised coordinates ``coords`` (in [-1, 1] over the source) on ``size`` voxels.

        The source coordinates are computed in ``coords``' dtype with grid_sample's formulas, so
        that nearest-neighbour ties fall as they do there.
        """
        x = _source_coordinates(coords, size, padding, align_corners)
        exact = _source_coordinates(coords.double(), size, padding, align_corners)
        if mode == "nearest":
            positions, weights = [torch.round(x)], [torch.ones_like(x)]  # half to even, as grid_sample
        elif bool(((exact - exact.round()).abs() < _SNAP).all()):  # every point on a voxel: no blending
            positions, weights = [exact.round().to(x.dtype)], [torch.ones_like(x)]
        else:
            low = torch.floor(x)
            positions, weights = [low, low + 1], [low + 1 - x, x - low]
        indices, masked = [], []
        for position, weight in zip(positions, weights, strict=True):
            inside = (position >= 0) & (position <= size - 1)
            indices.append(position.clamp(0, size - 1).long())
            masked.append(torch.where(inside, weight, torch.zeros_like(weight)))
        return cls(indices, masked)

    def is_identity(self, size: int) -> bool:
        if len(self.indices) != 1 or self.indices[0].numel() != size:
            return False
        return torch.equal(self.indices[0], torch.arange(size)) and bool((self.weights[0] == 1).all())

    def window(self, start: int, stop: int) -> tuple[int, int]:
        """The source range that output positions ``start:stop`` read."""
        low = min(int(index[start:stop].min()) for index in self.indices)
        high = max(int(index[start:stop].max()) for index in self.indices)
        return low, high + 1

    def reaching(self, low: int, high: int) -> tuple[int, int] | None:
        """The output positions (first, end) spanning every one that reads a source position in
        ``low:high``; None if none does."""
        reads = functools.reduce(
            torch.logical_or, [(index >= low) & (index < high) for index in self.indices]
        )
        hits = reads.nonzero()
        return None if hits.numel() == 0 else (int(hits[0]), int(hits[-1]) + 1)

    def apply(
        self,
        source: torch.Tensor,
        dim: int,
        start: int,
        stop: int,
        offset: int = 0,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Output positions ``start:stop`` along ``dim`` (into ``out`` if given); ``source`` begins
        at source position ``offset``."""
        shape = [1] * source.dim()
        shape[dim] = stop - start
        result = out
        for tap, (index, weight) in enumerate(zip(self.indices, self.weights, strict=True)):
            positions = (index[start:stop] - offset).to(source.device)
            # along the innermost axis, indexing gathers about three times faster than index_select
            taken = source[..., positions] if dim == source.dim() - 1 else source.index_select(dim, positions)
            weights = weight[start:stop].to(source.device, source.dtype).reshape(shape)
            if result is None:
                result = taken.mul_(weights)
            elif tap == 0:
                torch.mul(taken, weights, out=result)
            else:
                result.add_(taken.mul_(weights))
        assert result is not None
        return result


@dataclass(frozen=True)
class _Region:
    """What one slab computes along the two inner axes: output positions (first, end) and the
    source positions (low, high) they read, by dimension."""

    outputs: dict[int, tuple[int, int]]
    sources: dict[int, tuple[int, int]]

    @classmethod
    def whole(cls, source: torch.Tensor, size: tuple[int, ...]) -> _Region:
        return cls({d: (0, size[d - 2]) for d in (3, 4)}, {d: (0, source.shape[d]) for d in (3, 4)})

    @classmethod
    def of_positives(
        cls, positive: torch.Tensor, taps: dict[int, _Taps], size: tuple[int, ...]
    ) -> _Region | None:
        """The box of outputs that read a voxel where ``positive`` (the slab's source window) is
        true; None if there is none."""
        outputs, sources = {}, {}
        for d in (3, 4):
            hits = positive.any(dim=tuple(other for other in range(5) if other != d)).nonzero()
            reached = None if hits.numel() == 0 else taps[d].reaching(int(hits[0]), int(hits[-1]) + 1)
            if reached is None:
                return None
            outputs[d], sources[d] = reached, taps[d].window(*reached)
        return cls(outputs, sources)

    @property
    def offsets(self) -> dict[int, int]:
        return {d: low for d, (low, _high) in self.sources.items()}

    def source(self, window: torch.Tensor) -> torch.Tensor:
        for d, (low, high) in self.sources.items():
            window = window.narrow(d, low, high - low)
        return window

    def target(self, out: torch.Tensor) -> torch.Tensor:
        """``out``'s part that this region writes."""
        for d, (first, end) in self.outputs.items():
            out = out.narrow(d, first, end - first)
        return out


def _source_coordinates(coords: torch.Tensor, size: int, padding: str, align_corners: bool) -> torch.Tensor:
    """grid_sample's unnormalised source coordinates (with border padding's clamp)."""
    x = (coords + 1) / 2 * (size - 1) if align_corners else ((coords + 1) * size - 1) / 2
    return x.clamp(0, size - 1) if padding == "border" else x


def _normalised_base(size: int, align_corners: bool, like: torch.Tensor) -> torch.Tensor:
    """Normalised output coordinates along one axis, as torch.affine_grid makes them."""
    steps = torch.linspace(-1, 1, size, dtype=like.dtype)
    return steps if align_corners else steps * (size - 1) / size


def like_memory_order(source: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """An empty tensor of ``shape`` whose dimensions lie in memory in ``source``'s order."""
    order = sorted(range(source.dim()), key=lambda d: (-source.stride(d), d))
    empty = torch.empty([shape[d] for d in order], dtype=source.dtype, device=source.device)
    return empty.permute([order.index(d) for d in range(source.dim())])


class AxisAlignedAffineTransform(AffineTransform):
    def forward(
        self, src: torch.Tensor, theta: torch.Tensor, spatial_size: Sequence[int] | int | None = None
    ) -> torch.Tensor:
        normalised = self._axis_aligned(src, theta, spatial_size)
        if normalised is None:
            return super().forward(src, theta, spatial_size)
        theta_n, size = normalised
        # theta's rows give the source coordinate along (W, H, D): row r belongs to src dim 4 - r
        taps = {
            4 - row: _Taps.along(
                theta_n[row, row] * _normalised_base(size[2 - row], self.align_corners, theta_n)
                + theta_n[row, 3],
                src.shape[4 - row],
                self.mode,
                self.padding_mode,
                self.align_corners,
            )
            for row in range(3)
        }
        # Work on the spatial axes in their memory order, outermost first, so that every pass
        # (index_select makes row-major tensors) and the result keep the source's layout.
        spatial = sorted(range(2, 5), key=lambda d: (-src.stride(d), d))
        source = src.permute(0, 1, *spatial)
        taps = {2 + index: taps[dim] for index, dim in enumerate(spatial)}
        size = tuple(size[dim - 2] for dim in spatial)
        positive = (source > 0) if _SIGN_ONLY.get() else None
        shape = (*src.shape[:2], *size)
        if positive is None:
            result = torch.empty(shape, dtype=src.dtype, device=src.device)
        else:  # only what is written takes memory; the rest reads as 0
            result = mapped_tensor(shape, src)
        inner = sorted(  # shrinking axes first, so each pass works on as little as it can;
            (d for d in (3, 4) if not taps[d].is_identity(source.shape[d])),  # on a tie the innermost
            key=lambda d: (size[d - 2] / source.shape[d], -d),  # (its gather is the slower one)
        )
        outer_is_copy = taps[2].is_identity(source.shape[2])  # e.g. an unchanged slice spacing
        for start in range(0, size[0], _SLAB):  # slabs along the outermost axis
            stop = min(start + _SLAB, size[0])
            out = result.narrow(2, start, stop - start)
            low, high = (start, stop) if outer_is_copy else taps[2].window(start, stop)
            region = (
                _Region.whole(source, size)
                if positive is None
                else _Region.of_positives(positive.narrow(2, low, high - low), taps, size)
            )
            if region is None:  # every voxel this slab reads is <= 0: so is every value it would get
                continue  # (left 0)
            window = region.source(source.narrow(2, low, high - low))
            target = region.target(out)
            if outer_is_copy:
                slab = window  # read in place by the next pass
                if not inner:
                    target.copy_(slab)
            else:
                slab = taps[2].apply(window, 2, start, stop, low, out=None if inner else target)
            for number, dim in enumerate(inner, start=1):
                last = number == len(inner)
                first, end = region.outputs[dim]
                slab = taps[dim].apply(
                    slab, dim, first, end, region.offsets[dim], out=target if last else None
                )
        return result.permute(0, 1, *(2 + spatial.index(dim) for dim in range(2, 5)))

    def _axis_aligned(
        self, src: torch.Tensor, theta: torch.Tensor, spatial_size: Sequence[int] | int | None
    ) -> tuple[torch.Tensor, tuple[int, int, int]] | None:
        """grid_sample's normalised 3x4 theta and the output size, if the resampling is separable."""
        if self.mode not in _SEPARABLE_MODES or self.padding_mode not in _SEPARABLE_PADDING:
            return None
        if src.dim() != 5 or src.shape[0] != 1 or not torch.is_floating_point(src):
            return None
        if not isinstance(theta, torch.Tensor) or not torch.is_floating_point(theta):
            return None
        if tuple(theta.shape[-2:]) not in ((3, 4), (4, 4)) or (theta.dim() == 3 and theta.shape[0] != 1):
            return None
        matrix = theta.reshape(theta.shape[-2:]).clone()
        if matrix.shape[0] == 3:
            matrix = torch.cat([matrix, torch.tensor([[0, 0, 0, 1]]).to(matrix)])
        size = tuple(src.shape[2:])
        if self.spatial_size is not None:
            size = tuple(self.spatial_size)
        if spatial_size is not None:
            size = tuple(int(v) for v in ensure_tuple(spatial_size))
        if len(size) != 3 or min(size) < 2:
            return None
        matrix = matrix[None].to(src.device)
        if not self.normalized:  # the same steps as AffineTransform.forward, in the same order
            matrix = to_norm_affine(
                matrix, tuple(src.shape[2:]), size, self.align_corners, self.zero_centered
            )
        if self.reverse_indexing:
            reverse = torch.as_tensor([2, 1, 0], device=src.device)
            matrix[:, :3] = matrix[:, reverse]
            matrix[:, :, :3] = matrix[:, :, reverse]
        linear = matrix[0, :3, :3]
        if not torch.equal(linear, torch.diag(torch.diagonal(linear))):
            return None  # rotation or shear: MONAI's own grid
        return matrix[0, :3].cpu(), (int(size[0]), int(size[1]), int(size[2]))


_RESAMPLE_SIGNATURE = inspect.signature(functional.spatial_resample)


def _in_image_precision(resample: Callable[..., Any]) -> Callable[..., Any]:
    """MONAI's ``spatial_resample``, computing in a float32 image's own precision, not float64.

    ``Spacing`` asks for float64 by default, which first copies the whole image at twice its size
    although its output is float32 either way. Two linear
    interpolations in float32 differ from float64 by float32 rounding (tested).
    """
    if getattr(resample, "in_image_precision", False):
        return resample

    @functools.wraps(resample)
    def spatial_resample(img: Any, *args: Any, **kwargs: Any) -> Any:
        bound = _RESAMPLE_SIGNATURE.bind(img, *args, **kwargs)
        if bound.arguments["dtype_pt"] == torch.float64 and getattr(img, "dtype", None) == torch.float32:
            bound.arguments["dtype_pt"] = torch.float32
        return resample(*bound.args, **bound.kwargs)

    spatial_resample.in_image_precision = True  # type: ignore[attr-defined]
    return spatial_resample


def install() -> None:
    """Make MONAI's spatial resampling separable where it can be, in the image's precision (idempotent)."""
    import monai.transforms.spatial.array as array

    functional.AffineTransform = AxisAlignedAffineTransform  # type: ignore[misc]
    array.spatial_resample = _in_image_precision(array.spatial_resample)  # type: ignore[attr-defined]
