"""Two-class postprocessing on one channel: invert the softmax margin instead of both probabilities.

A bundle whose postprocessing starts ``Activationsd(softmax) -> Invertd -> AsDiscreted(argmax)`` maps two
probability channels back to the source grid and takes their argmax there. Three facts let the
appliance carry one channel from the network to the labels instead:

- The sliding window's output is a weighted mean of the windows' logits, linear in them, so the
  mean of each window's difference ``l1 - l0`` is the difference of the means (to float rounding):
  :class:`LogitDifference` hands the inferer that one channel, which then accumulates one output
  channel beside its count map, not two.
- The softmax of two logits has ``p1 - p0 = tanh((l1 - l0) / 2)``.
- Resampling is linear in its input (bilinear or nearest, with zero padding, and the flips and
  crops of the inverse), so the inverse of ``p1 - p0`` equals the difference of the inverted
  channels, and ``argmax == 1`` exactly where it is above zero (a tie goes to channel 0 either way).

The margin is laid out in memory as the preprocessed image is (slice by slice for a volume from
:mod:`models.volume`), so that the inversion and the labels keep that order and the SEG writer
takes each slice as it lies. Since only the margin's sign is taken, the inversion runs under
:func:`models.resampling.sign_only` when its one interpolation is the separable resampling (the
other inverted steps only move or pad voxels): only the boxes of the source grid that can come out
above zero are computed. For any other pipeline, or a network with other than two outputs, the
bundle's own postprocessing runs unchanged.
"""

from __future__ import annotations

from typing import Any

import torch

_SLAB = 8  # positions along one spatial axis per step of the margin
_RESAMPLING = "SpatialResample"  # Spacing(d)'s record; inverted by the separable resampling
_MOVES = {  # records whose inverses only move, crop or zero-pad voxels: the signs stay exact
    "Orientation",
    "Flip",
    "SpatialPad",
    "BorderPad",
    "DivisiblePad",
    "SpatialCrop",
    "CenterSpatialCrop",
    "CropForeground",
}


def _slab_axis(*tensors: torch.Tensor) -> int:
    """A spatial axis (1, 2, ...) that is outermost in memory in none of ``tensors``, if there is one.

    Slabs across it are runs of whole rows in each tensor, for the sliding window's output (x
    outermost) and a margin laid out slice by slice (z outermost) alike, which copy faster than
    the whole volume at once.
    """
    outermost = {max(range(1, t.dim()), key=lambda d: (t.stride(d), -d)) for t in tensors}
    return next((d for d in range(1, tensors[0].dim()) if d not in outermost), 1)


def _only(values: Any) -> Any:
    values = tuple(values)
    return values[0] if len(values) == 1 else None


class LogitDifference:
    """The network as the inferer calls it, each window's two logits reduced to ``l1 - l0``.

    A network whose output is not one tensor of two channels is passed through as it is;
    ``reduced`` says which happened on the last call.
    """

    def __init__(self, network: Any) -> None:
        self.network = network
        self.reduced = False

    def __call__(self, windows: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        logits = self.network(windows, *args, **kwargs)
        self.reduced = isinstance(logits, torch.Tensor) and logits.dim() > 2 and logits.shape[1] == 2
        if not self.reduced:
            return logits
        return logits[:, 1:2].float() - logits[:, 0:1].float()  # float32 under mixed precision too


def two_class_postprocessing(postprocessing: Any, key: str = "pred", image_key: str = "image") -> Any | None:
    """The margin form of ``postprocessing`` when it has the pattern above, else None.

    It takes under ``key`` the one channel that :class:`LogitDifference` gave the inferer.
    """
    from monai.data import MetaTensor, get_track_meta
    from monai.transforms import Activationsd, AsDiscreted, Compose, Invertd, MapTransform
    from monai.utils import convert_to_tensor

    from models.resampling import like_memory_order, sign_only

    class SoftmaxMargin(MapTransform):
        """``p1 - p0`` of the bundle's softmax from the logits' difference (one channel, same metadata).

        The margin replaces the difference in the dict it is given as well as in the one it
        returns, so that the caller's dict does not hold both through the inversion. When the
        image under ``image_key`` has its shape, it is written in that image's memory order. With
        ``release_image`` (no bundle step follows the labels), the image is then replaced, in both
        dicts too, by its metadata alone: the inversion reads only its record of applied steps and
        its metadata, and the voxels need not outlive the margin.
        """

        def __init__(self, keys: Any, release_image: bool) -> None:
            super().__init__(keys)
            self.release_image = release_image

        def __call__(self, data: dict) -> dict:
            difference, image = data[key], data.get(image_key)
            plain = (
                difference.as_tensor() if isinstance(difference, MetaTensor) else torch.as_tensor(difference)
            )
            if isinstance(image, torch.Tensor) and tuple(image.shape) == tuple(plain.shape):
                margin = like_memory_order(image, tuple(plain.shape)).to(plain)
            else:
                margin = torch.empty_like(plain)
            axis = _slab_axis(plain, margin)
            for start in range(0, plain.shape[axis], _SLAB):
                length = min(_SLAB, plain.shape[axis] - start)
                margin.narrow(axis, start, length).copy_(plain.narrow(axis, start, length)).mul_(0.5).tanh_()
            if isinstance(difference, MetaTensor):
                margin = MetaTensor(margin)
                margin.copy_meta_from(difference)
            else:  # as the bundle's Activationsd returns it: a MetaTensor when metadata is tracked
                margin = convert_to_tensor(margin, track_meta=get_track_meta())
            d = dict(data)
            data[key] = d[key] = margin
            if self.release_image and isinstance(image, MetaTensor):
                metadata_only = MetaTensor(torch.empty(0, dtype=image.dtype))
                metadata_only.copy_meta_from(image)
                data[image_key] = d[image_key] = metadata_only
            return d

    class PositiveLabels(MapTransform):
        """Label 1 where the inverted margin is above zero, else 0 (uint8, the margin's metadata)."""

        def __call__(self, data: dict) -> dict:
            d = dict(data)
            margin = d[key]
            plain = margin.as_tensor() if isinstance(margin, MetaTensor) else torch.as_tensor(margin)
            labels = torch.gt(plain, 0).view(torch.uint8)
            if isinstance(margin, MetaTensor):
                labels = MetaTensor(labels)
                labels.copy_meta_from(margin)
            d[key] = labels
            return d

    class SignOfInverse(MapTransform):
        """The bundle's Invertd, under sign-only resampling when the image's recorded steps are one
        resampling and moves (see the module's text); else as it is."""

        def __init__(self, invert: Invertd) -> None:
            super().__init__(invert.keys)
            self.invert = invert
            self.orig_key = _only(invert.orig_keys)

        def __call__(self, data: dict) -> dict:
            steps = [op.get("class") for op in getattr(data.get(self.orig_key), "applied_operations", [])]
            if steps.count(_RESAMPLING) == 1 and set(steps) <= _MOVES | {_RESAMPLING}:
                with sign_only():
                    return self.invert(data)
            return self.invert(data)

    transforms = list(getattr(postprocessing, "transforms", ()))
    if len(transforms) < 3:  # the pattern must come first: an earlier step would read both logits
        return None
    activations, invert, discrete, *rest = transforms
    if not (
        isinstance(activations, Activationsd)
        and isinstance(invert, Invertd)
        and isinstance(discrete, AsDiscreted)
        and _only(activations.keys) == _only(invert.keys) == _only(discrete.keys) == key
    ):
        return None
    plain_softmax = _only(activations.softmax) is True and not _only(activations.sigmoid)
    plain_softmax = plain_softmax and _only(activations.other) is None
    plain_softmax = plain_softmax and activations.converter.kwargs.get("dim", 0) == 0
    plain_argmax = _only(discrete.argmax) is True and _only(discrete.to_onehot) is None
    plain_argmax = plain_argmax and _only(discrete.threshold) is None and _only(discrete.rounding) is None
    plain_argmax = plain_argmax and discrete.converter.kwargs.get("dim", 0) == 0
    if not (plain_softmax and plain_argmax):
        return None
    return Compose(
        [
            SoftmaxMargin(activations.keys, release_image=not rest),
            SignOfInverse(invert),
            PositiveLabels(key),
            *rest,
        ]
    )
