"""Series to volume: DICOM slices (or the frames of an enhanced object) to a voxel array with geometry.

Slices are sorted by their position along the slice normal, never by instance number. Pixel values
are rescaled (slope, intercept) to float32, or, where asked and exact, to int16 (CT's Hounsfield
units: whole rescales of whole stored values, half the memory and no float pass). The array is
indexed ``[i, j, k]``: i along the image rows (the column index), j down the columns (the row
index), k across slices; ``affine_ras`` maps voxel indices to RAS millimetres, the convention MONAI
works in (DICOM's patient coordinates are LPS). Each axis runs the way its RAS axis points
(columns, rows or slices are taken in reverse where they run the other way, as MONAI's
``Orientation("RAS")`` would flip them), so a bundle's orientation step moves no data; and each
slice is contiguous in memory (the array is a transposed view), so slices are written and read back
whole. Each slice keeps which object and frame it came from, and :meth:`Volume.frame_images` maps a
result on this grid back onto the source images.

A series with mixed orientation, sizes or pixel spacing, a gap (a missing slice) or two slices at
one position is refused with :class:`InconsistentSeries`, whose message says which check failed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np
from nibabel.orientations import io_orientation
from pydicom.dataset import Dataset
from pydicom.pixels import pixel_array

from models.errors import ModelError
from models.mapped import mapped_array

_ORIENTATION_TOLERANCE = 1e-3
_SPACING_TOLERANCE = 0.01  # relative
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class InconsistentSeries(ModelError):
    """The series cannot form one volume; the message says why."""


@dataclass(frozen=True)
class SourceFrame:
    """One slice of the volume: the object it came from and its frame number (1-based; 1 if single)."""

    dataset: Dataset
    frame: int


@dataclass(frozen=True)
class _Slice:
    source: SourceFrame
    position: np.ndarray
    orientation: np.ndarray
    spacing: tuple[float, float]
    slope: float
    intercept: float
    shape: tuple[int, int]


@dataclass(frozen=True)
class Volume:
    array: np.ndarray  # float32 [i, j, k] (see above); int16 where build_volume was asked for whole values
    affine_ras: np.ndarray  # 4x4
    frames: tuple[SourceFrame, ...]  # slice k of the array is frames[k]
    reversed_axes: tuple[bool, bool] = (False, False)  # i from the last column, j from the last row

    def without_voxels(self) -> Volume:
        """The same grid and frames with the voxels released (a read-only zero view of the shape)."""
        return replace(self, array=np.broadcast_to(np.zeros((), np.float32), self.array.shape))

    def frame_images(self, values: np.ndarray) -> np.ndarray:
        """An array on this grid as images of its frames, a view: [k, row, column] is ``frames[k]``'s
        pixel at (row, column)."""
        images = values.transpose(2, 1, 0)
        return images[:, :: -1 if self.reversed_axes[1] else 1, :: -1 if self.reversed_axes[0] else 1]

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in np.linalg.norm(self.affine_ras[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def voxel_volume_ml(self) -> float:
        return float(abs(np.linalg.det(self.affine_ras[:3, :3]))) / 1000.0

    @property
    def source_images(self) -> list[Dataset]:
        """The distinct source objects, in slice order."""
        seen: dict[str, Dataset] = {}
        for frame in self.frames:
            seen.setdefault(frame.dataset.SOPInstanceUID, frame.dataset)
        return list(seen.values())


def _floats(value: object, count: int, what: str) -> np.ndarray:
    try:
        numbers = np.array([float(v) for v in value], dtype=np.float64)  # type: ignore[attr-defined]
    except (TypeError, ValueError) as exc:
        raise InconsistentSeries(f"{what} is missing or not numeric") from exc
    if numbers.shape != (count,):
        raise InconsistentSeries(f"{what} has {numbers.size} values, not {count}")
    return numbers


def _rescale(item: Dataset) -> tuple[float, float]:
    return float(getattr(item, "RescaleSlope", 1) or 1), float(getattr(item, "RescaleIntercept", 0) or 0)


def _slice(
    source: SourceFrame, position: Dataset, orientation: Dataset, measures: Dataset, values: Dataset
) -> _Slice:
    """One slice from the items holding its position, orientation, spacing and rescale."""
    slope, intercept = _rescale(values)
    return _Slice(
        source,
        _floats(position.ImagePositionPatient, 3, "Image Position (Patient)"),
        _floats(orientation.ImageOrientationPatient, 6, "Image Orientation (Patient)"),
        tuple(_floats(measures.PixelSpacing, 2, "Pixel Spacing")),  # type: ignore[arg-type]
        slope,
        intercept,
        (int(source.dataset.Rows), int(source.dataset.Columns)),
    )


def _single_frame(ds: Dataset) -> _Slice:
    if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds:
        raise InconsistentSeries(f"instance {ds.SOPInstanceUID} has no image position or orientation")
    return _slice(SourceFrame(ds, 1), ds, ds, ds, ds)


def _group(ds: Dataset, index: int, keyword: str) -> Dataset | None:
    """A functional group macro of one frame: per-frame first, then shared."""
    for sequence in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        groups = ds.get(sequence)
        if not groups:
            continue
        group = groups[index] if sequence.startswith("PerFrame") else groups[0]
        if keyword in group and group[keyword].value:
            return group[keyword].value[0]
    return None


def _enhanced_frames(ds: Dataset) -> Iterator[_Slice]:
    for index in range(int(ds.NumberOfFrames)):
        position = _group(ds, index, "PlanePositionSequence")
        orientation = _group(ds, index, "PlaneOrientationSequence")
        measures = _group(ds, index, "PixelMeasuresSequence")
        if position is None or orientation is None or measures is None:
            raise InconsistentSeries(
                f"frame {index + 1} of {ds.SOPInstanceUID} lacks plane position/orientation"
            )
        transform = _group(ds, index, "PixelValueTransformationSequence")
        values = transform if transform is not None else ds
        yield _slice(SourceFrame(ds, index + 1), position, orientation, measures, values)


def _slices(datasets: Iterable[Dataset]) -> list[_Slice]:
    slices: list[_Slice] = []
    for ds in datasets:
        if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1 or "PerFrameFunctionalGroupsSequence" in ds:
            slices.extend(_enhanced_frames(ds))
        else:
            slices.append(_single_frame(ds))
    return slices


def _check_consistent(slices: list[_Slice]) -> None:
    first = slices[0]
    for item in slices[1:]:
        if not np.allclose(item.orientation, first.orientation, atol=_ORIENTATION_TOLERANCE):
            raise InconsistentSeries("the slices do not share one orientation")
        if item.shape != first.shape:
            raise InconsistentSeries(f"mixed image sizes: {first.shape} and {item.shape}")
        if not np.allclose(item.spacing, first.spacing, rtol=_SPACING_TOLERANCE):
            raise InconsistentSeries(f"mixed pixel spacing: {first.spacing} and {item.spacing}")


def _slice_step(distances: np.ndarray) -> float:
    """The spacing between slices; refuses gaps, duplicates and uneven spacing."""
    if len(distances) == 1:
        return 1.0
    steps = np.diff(distances)
    if np.any(steps < 1e-3):
        raise InconsistentSeries("two slices share one position")
    step = float(np.median(steps))
    if not np.allclose(steps, step, rtol=_SPACING_TOLERANCE * 10):
        largest = float(steps.max())
        if largest > 1.5 * step:
            raise InconsistentSeries(
                f"missing slices: a gap of {largest:.2f} mm where slices are {step:.2f} mm apart"
            )
        raise InconsistentSeries("the slices are not evenly spaced")
    return step


def _pixels(whole: Dataset, source: SourceFrame) -> np.ndarray:
    """The one frame, decoded alone (nothing cached on the dataset)."""
    try:
        return pixel_array(whole, index=source.frame - 1)
    except Exception as exc:  # pydicom and its decoders raise many kinds for bad pixel data
        uid = source.dataset.get("SOPInstanceUID", "?")
        raise InconsistentSeries(
            f"instance {uid}: pixel data cannot be decoded ({type(exc).__name__})"
        ) from exc


def _whole_rescales(slices: list[_Slice]) -> bool:
    return all(float(item.slope).is_integer() and float(item.intercept).is_integer() for item in slices)


def _fits_int16(frame: np.ndarray, item: _Slice) -> bool:
    """Whether this frame's stored values are integers whose rescaled values are all within int16."""
    if frame.dtype.kind not in "iu":
        return False
    ends = (
        float(frame.min()) * item.slope + item.intercept,
        float(frame.max()) * item.slope + item.intercept,
    )
    return -32768 <= min(ends) and max(ends) <= 32767


def _float_copy(stack: np.ndarray, done: int) -> np.ndarray:
    """A float32 stack holding the first ``done`` slices of an int16 one (a series that turned out
    not to fit int16 goes on in float32)."""
    wider = mapped_array(stack.shape, np.float32)
    wider[:done] = stack[:done]
    return wider


def build_volume(
    datasets: Iterable[Dataset],
    min_slices: int = 1,
    load_pixels: Callable[[Dataset], Dataset] | None = None,
    whole: bool = False,
) -> Volume:
    """The series as one volume.

    With ``load_pixels``, ``datasets`` may be headers only (read with ``stop_before_pixels``) and
    ``load_pixels(ds)`` gives the whole object for one: it is read when its first frame is needed
    and let go once its last is in the volume, so that the series' pixel data is never held beside
    the volume, only one object's at a time (the volume's frames keep the headers).

    With ``whole``, the array is int16 where that is exact: every slice's slope and intercept whole
    numbers, its stored values integers, and every rescaled value within int16's range (CT);
    otherwise float32 as without it.
    """
    slices = _slices(datasets)
    if len(slices) < max(min_slices, 1):
        raise InconsistentSeries(f"{len(slices)} slices; at least {max(min_slices, 1)} needed")
    _check_consistent(slices)
    orientation = slices[0].orientation
    row_direction, column_direction = orientation[:3], orientation[3:]
    normal = np.cross(row_direction, column_direction)
    distances = np.array([float(np.dot(item.position, normal)) for item in slices])
    order = np.argsort(distances, kind="stable")
    step = _slice_step(distances[order])
    row_spacing, column_spacing = slices[0].spacing  # PixelSpacing: between rows, between columns
    rows, columns = slices[0].shape
    axes = _LPS_TO_RAS[:3, :3] @ np.stack(
        [row_direction * column_spacing, column_direction * row_spacing, normal * step], axis=1
    )
    affine_ras = np.eye(4)
    affine_ras[:3, :3] = axes
    reverse = tuple(bool(sign < 0) for sign in io_orientation(affine_ras)[:, 1])
    slices = [slices[i] for i in (order[::-1] if reverse[2] else order)]
    origin = slices[0].position + _LPS_TO_RAS[:3, :3] @ (
        axes[:, 0] * (columns - 1) * reverse[0] + axes[:, 1] * (rows - 1) * reverse[1]
    )
    affine_ras[:3, :3] = axes * np.where(reverse, -1.0, 1.0)
    affine_ras[:3, 3] = _LPS_TO_RAS[:3, :3] @ origin
    exact = whole and _whole_rescales(slices)
    stack = mapped_array((len(slices), rows, columns), np.int16 if exact else np.float32)  # [k, row, column]
    remaining = Counter(id(item.source.dataset) for item in slices)
    objects: dict[int, Dataset] = {}
    for k, item in enumerate(slices):
        header = item.source.dataset
        if load_pixels is None:
            source = header
        elif (source := objects.get(id(header))) is None:
            source = objects[id(header)] = load_pixels(header)
        frame = _pixels(source, item.source)
        if frame.shape != (rows, columns):
            raise InconsistentSeries(f"frame {k} decodes to {frame.shape}, not {(rows, columns)}")
        if stack.dtype == np.int16 and not _fits_int16(frame, item):
            stack = _float_copy(stack, k)
        oriented = frame[:: -1 if reverse[1] else 1, :: -1 if reverse[0] else 1]
        if stack.dtype == np.int16:  # whole values that fit: exact in int32, then stored as int16
            scaled = oriented * np.int32(item.slope) if item.slope != 1 else oriented
            np.add(scaled, np.int32(item.intercept), out=stack[k], dtype=np.int32, casting="unsafe")
        else:
            stack[k] = oriented
            if item.slope != 1:  # CT's slope is almost always 1: a pass over the slice saved
                stack[k] *= item.slope
            if item.intercept != 0:
                stack[k] += item.intercept
        remaining[id(header)] -= 1
        if not remaining[id(header)]:
            objects.pop(id(header), None)
    frames = tuple(item.source for item in slices)
    return Volume(stack.transpose(2, 1, 0), affine_ras, frames, (reverse[0], reverse[1]))
