"""Run a MONAI bundle from its own config on a volume held in memory.

The bundle's signature is verified before any expression of its config is evaluated. Its
``network_def``, ``preprocessing``, ``inferer`` and ``postprocessing`` are built from
``configs/inference.json`` with two changes: the file loader (``LoadImage(d)``) is taken out of
the preprocessing, because the volume is fed in memory, and file-saving steps (``Save*``) are
taken out of the postprocessing. The bundle's own inversion step (``Invertd``) then maps the
prediction back onto the source grid. Weights are loaded with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from models import fast_paths
from models.batching import WindowBatcher
from models.codes import SegmentCode, code_for
from models.errors import BackendUnavailable, ModelError
from models.identity import ModelIdentity
from models.manifest import MANIFEST, METADATA, Manifest, verify_bundle
from models.onnx_backend import ONNX_MODEL, Backend, OnnxNetwork, providers, window_shape
from models.two_class import LogitDifference, two_class_postprocessing
from models.volume import Volume
from models.windows import PairedWindows

INFERENCE_CONFIG = "configs/inference.json"
_LOADERS = {"LoadImage", "LoadImaged"}
_SLAB = 16  # slices along the last axis per argmax step
# Constructor arguments that newer MONAI releases removed and that had no effect before removal;
# dropping them lets bundles written for older releases run unchanged.
_REMOVED_ARGUMENTS = {"SwinUNETR": {"img_size"}}


def _channel_indices(tensor: torch.Tensor) -> torch.Tensor:
    """The index of each voxel's largest channel (first on ties), in a small integer type.

    ``torch.argmax`` over the channel dimension of a full-size volume is much slower on the CPU
    than ``torch.max``'s indices; taking them a slab at a time keeps the int64 indices small too.
    """
    compact = torch.uint8 if tensor.shape[0] <= 256 else torch.int32
    indices = torch.empty(tensor.shape[1:], dtype=compact, device=tensor.device)
    for start in range(0, tensor.shape[-1], _SLAB):
        indices[..., start : start + _SLAB] = torch.max(tensor[..., start : start + _SLAB], dim=0).indices
    return indices


def _channel_max_as_discrete() -> Any:
    """MONAI's AsDiscrete with its channel argmax from :func:`_channel_indices`: identical labels."""
    from monai.data import MetaTensor
    from monai.transforms import AsDiscrete
    from monai.utils import convert_data_type

    class ChannelMaxAsDiscrete(AsDiscrete):
        def __call__(self, img, argmax=None, to_onehot=None, threshold=None, rounding=None):  # type: ignore[no-untyped-def]
            dim, keepdim = self.kwargs.get("dim", 0), self.kwargs.get("keepdim", True)
            if not (self.argmax if argmax is None else argmax) or dim != 0 or not keepdim or img.ndim < 2:
                return super().__call__(img, argmax, to_onehot, threshold, rounding)
            tensor, *_ = convert_data_type(img, torch.Tensor)
            labels = super().__call__(_channel_indices(tensor)[None], False, to_onehot, threshold, rounding)
            if isinstance(img, MetaTensor) and isinstance(labels, MetaTensor):
                labels.copy_meta_from(img)  # as torch.argmax on a MetaTensor does
            return labels

    return ChannelMaxAsDiscrete


def _faster_discretisation(postprocessing: Any) -> None:
    from monai.transforms import AsDiscreted

    converter_class = _channel_max_as_discrete()
    for transform in getattr(postprocessing, "transforms", ()):
        if isinstance(transform, AsDiscreted):
            converter = converter_class()
            converter.kwargs = transform.converter.kwargs
            transform.converter = converter


def run_taking(compose: Any, inputs: dict) -> dict:
    """``compose(inputs)``, with the items taken out of ``inputs`` and each step's input let go
    once the next step has its output.

    MONAI's ``Compose`` keeps its input for the whole run, so a CT's float32 volume stayed until
    the last step although the resampling is the last to read it, and the steps after it needed
    memory of their own beside it.
    A caller that hands over its only reference to the voxels (in ``inputs``) has them freed as
    soon as no step holds them. Lazy pipelines run through ``compose`` itself.
    """
    from monai.transforms import Compose, apply_transform
    from monai.transforms.lazy.functional import apply_pending_transforms

    data = dict(inputs)
    inputs.clear()
    if not isinstance(compose, Compose) or compose.lazy is not False:
        return compose(data)
    for transform in compose.transforms:
        data = apply_transform(transform, data, compose.map_items, compose.unpack_items, lazy=False,
                               overrides=compose.overrides, log_stats=compose.log_stats)  # fmt: skip
    return apply_pending_transforms(data, None, compose.overrides, logger_name=compose.log_stats)


class BundleError(ModelError):
    """A verified bundle cannot be built or run; the message says which part."""


@dataclass(frozen=True)
class Segment:
    number: int  # the label value in the prediction
    label: str
    code: SegmentCode


def _target_name(item: Any) -> str:
    target = item.get("_target_", "") if isinstance(item, dict) else ""
    return str(target).rsplit(".", 1)[-1]


def _strip(config: dict, key: str, drop: Any) -> None:
    section = config.get(key)
    if not isinstance(section, dict) or not isinstance(section.get("transforms"), list):
        raise BundleError(f"{INFERENCE_CONFIG} has no '{key}' Compose with a transforms list")
    section["transforms"] = [t for t in section["transforms"] if not drop(_target_name(t))]


def _segments(metadata: dict) -> tuple[Segment, ...]:
    try:
        channels = metadata["network_data_format"]["outputs"]["pred"]["channel_def"]
    except KeyError as exc:
        raise BundleError("metadata.json has no network_data_format.outputs.pred.channel_def") from exc
    bundle_codes = metadata.get("segment_codes")
    return tuple(
        Segment(int(number), label, code_for(label, bundle_codes))
        for number, label in sorted(channels.items(), key=lambda item: int(item[0]))
        if int(number) != 0
    )


def network_definition(config: dict) -> dict:
    """The config's ``network_def``, without arguments this MONAI release no longer takes."""
    network_def = config.get("network_def")
    if not isinstance(network_def, dict):
        raise BundleError(f"{INFERENCE_CONFIG} has no network_def")
    removed = _REMOVED_ARGUMENTS.get(_target_name(network_def), set())
    return {key: value for key, value in network_def.items() if key not in removed}


def _weights(bundle: Path) -> Path:
    """The network's file: the ONNX model of a version derived for ONNX Runtime, else the weights."""
    names = (ONNX_MODEL,) if Backend.read(bundle) is not None else ("models/model.pt", "models/model.ts")
    for name in names:
        if (bundle / name).is_file():
            return bundle / name
    raise BundleError(f"the bundle has no {' or '.join(names)}")


@dataclass
class BatchedSeries:
    """One series of a batched run: its prepared data (taken), its volume's shape, its timings."""

    prepared: dict
    shape: tuple[int, ...]
    timings: dict[str, float] = field(default_factory=dict)


class Predictor:
    """One verified bundle, built once and kept loaded; ``predict`` turns a volume into labels."""

    def __init__(
        self,
        bundle: Path,
        trusted: dict[str, Ed25519PublicKey],
        device: str | torch.device | None = None,
        engines: Path | None = None,
    ) -> None:
        """``engines``: where a TensorRT version caches its engines (beside the bundle by default:
        the bundle itself holds only what its manifest signs)."""
        self.manifest: Manifest = verify_bundle(bundle, trusted)  # before anything is evaluated
        self.engines = engines or bundle.with_name(f".{bundle.name}.engines")
        digest = hashlib.sha256((bundle / MANIFEST).read_bytes()).hexdigest()
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        metadata = json.loads((bundle / METADATA).read_text())
        intended_use = str(metadata.get("intended_use") or metadata.get("task") or "")
        self.identity = ModelIdentity(self.manifest.name, self.manifest.version, digest, intended_use)
        self.segments = _segments(metadata)
        from monai.bundle import ConfigParser  # heavy import: only once a bundle is verified

        # each fast path active when the predictor is built, else the bundle's own step
        self.fast = frozenset(name for name in ("argmax", "run_taking", "paired_windows", "two_class")
                              if fast_paths.active(name))  # fmt: skip
        config = json.loads((bundle / INFERENCE_CONFIG).read_text())
        _strip(config, "preprocessing", lambda name: name in _LOADERS)
        _strip(config, "postprocessing", lambda name: name.startswith("Save"))
        config["network_def"] = network_definition(config)
        channels = config["network_def"].get("in_channels")
        self._in_channels = channels if isinstance(channels, int) and channels > 0 else None
        config["bundle_root"] = str(bundle)
        parser = ConfigParser(config)
        parser.read_meta(bundle / METADATA)
        self.image_key = str(config.get("image_key", "image"))
        evaluator = config.get("evaluator")
        self.amp = bool(evaluator.get("amp", False)) if isinstance(evaluator, dict) else False
        self.backend = Backend.read(bundle)
        try:
            self.network = self._network(parser, _weights(bundle))
            paired = "paired_windows" in self.fast and self.backend is None
            self.windows = (
                PairedWindows(self.network, self.device) if paired else self.network
            )  # what the inferer runs
            self.preprocessing = parser.get_parsed_content("preprocessing")
            self.inferer = parser.get_parsed_content("inferer")
            self.postprocessing = parser.get_parsed_content("postprocessing")
            self.two_class_postprocessing = None
            if "argmax" in self.fast:
                _faster_discretisation(self.postprocessing)
            if "two_class" in self.fast:
                self.two_class_postprocessing = two_class_postprocessing(
                    self.postprocessing, image_key=self.image_key
                )
        except (BundleError, BackendUnavailable):
            raise
        except Exception as exc:  # a bundle's config can raise anything while it is built
            raise BundleError(f"cannot build {self.manifest.name} {self.manifest.version}: {exc}") from exc

    def _network(self, parser: Any, weights: Path) -> torch.nn.Module:
        if weights.suffix == ".onnx":
            assert self.backend is not None, "an ONNX model is a derived version's"
            window = window_shape(weights) if self.backend.backend == "tensorrt" else ()  # its profile
            chosen = providers(self.backend, self.device, self.engines, window)
            return OnnxNetwork(weights, torch.get_num_threads(), self.device, chosen)
        if weights.suffix == ".ts":
            network = torch.jit.load(weights, map_location=self.device)  # signature verified above
        else:
            network = parser.get_parsed_content("network_def")
            state = torch.load(weights, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and isinstance(state.get("model"), dict):
                state = state["model"]
            network.load_state_dict(state)
            network = network.to(self.device)
            if self.device.type == "cpu":  # oneDNN's 3-D convolutions run faster so; the same weights
                network = network.to(memory_format=torch.channels_last_3d)
        return network.eval()

    def warm_up(self) -> None:
        """Run the network once on blank windows of the inferer's size, for each batch size it will
        see: a full batch and a last batch of one window (which runs as two on the CPU).

        The backend does first-use work per input shape (oneDNN builds its convolution kernels;
        OpenVINO compiles the ONNX model for that batch) that the first series would otherwise
        wait for.
        Done only when the window size and the input channels are known from the config.
        """
        roi = getattr(self.inferer, "roi_size", None)
        if self._in_channels is None or not roi or any(int(n) <= 0 for n in roi):
            return
        batch = max(int(getattr(self.inferer, "sw_batch_size", 1)), 1)
        with torch.inference_mode(), self._autocast():
            runs_as = self.windows.runs_as if isinstance(self.windows, PairedWindows) else int
            for size in sorted({runs_as(batch), runs_as(1)}, reverse=True):
                self.network(torch.zeros((size, self._in_channels, *roi), device=self.device))

    def _autocast(self) -> Any:
        if self.amp and self.device.type == "cuda":
            return torch.autocast(self.device.type, dtype=torch.float16)
        return nullcontext()

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    def inputs(self, volume: Volume) -> dict:
        """The volume as the bundle's preprocessing takes it (sharing its voxels)."""
        from monai.data import MetaTensor

        image = MetaTensor(
            torch.from_numpy(volume.array),
            affine=torch.from_numpy(volume.affine_ras),
            meta={"original_channel_dim": "no_channel", "spatial_shape": volume.array.shape},
        )
        return {self.image_key: image}

    def preprocess(self, inputs: dict) -> dict:
        """Run the bundle's preprocessing, taking the items out of ``inputs`` (see :func:`run_taking`)."""
        with torch.no_grad():
            if "run_taking" not in self.fast:
                data = dict(inputs)
                inputs.clear()
                return self.preprocessing(data)
            return run_taking(self.preprocessing, inputs)

    def prepare(self, volume: Volume) -> dict:
        """Preprocess the volume (CPU work that can overlap another series' inference)."""
        return self.preprocess(self.inputs(volume))

    def infer(
        self,
        prepared: dict,
        shape: tuple[int, ...],
        timings: dict[str, float] | None = None,
        through: WindowBatcher | None = None,
    ) -> np.ndarray:
        """Run the network on prepared data and postprocess; return labels on the source grid.

        The items are taken out of ``prepared``, as :meth:`preprocess` takes its inputs.

        ``timings``, if given, receives the seconds of ``network`` and ``postprocessing``;
        ``through``: the batcher this series' windows share with others (see :meth:`infer_many`).
        """
        timings = {} if timings is None else timings
        started = time.perf_counter()
        data = dict(prepared)  # taken: the postprocessing may let the image's voxels go
        prepared.clear()
        image = data[self.image_key]
        image = image.as_tensor() if hasattr(image, "as_tensor") else image  # the network needs no metadata
        network = self.windows if through is None else through
        windows = network if self.two_class_postprocessing is None else LogitDifference(network)
        with torch.inference_mode(), self._autocast():
            output = self.inferer(image[None].to(self.device), windows)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        timings["network"] = time.perf_counter() - started
        # The steps after the network run on the CPU whatever ran it: the inversion's resampling
        # (models.resampling) and the labels are built and tested there; a GPU's output is copied once.
        pred = output[0].float().cpu()
        if isinstance(windows, LogitDifference) and windows.reduced:
            # the same labels from one channel; its first step makes a new tensor of the difference
            postprocessing = self.two_class_postprocessing
        else:  # a bundle's own steps may work in place, which an inference tensor refuses
            postprocessing, pred = self.postprocessing, pred.clone() if pred.is_inference() else pred
        data["pred"] = pred
        del image, output, pred
        with torch.no_grad():  # the two-class form also drops the network's output from data
            labels = postprocessing(data).pop("pred")
        labels = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        if labels.ndim == 4:
            labels = labels[0]
        timings["postprocessing"] = time.perf_counter() - started - timings["network"]
        if labels.shape != shape:
            raise BundleError(
                f"{self.name} returned labels of shape {labels.shape} for a volume of {shape}; "
                "its postprocessing must invert the preprocessing"
            )
        return labels.astype(np.uint8, copy=False)

    def infer_many(
        self, series: Sequence[BatchedSeries], wait_seconds: float = 0.05
    ) -> tuple[list[np.ndarray | Exception], list[int]]:
        """Several prepared series at once, each in its own thread, their windows run through the
        network together (:class:`models.batching.WindowBatcher`): each series' labels, or the
        exception that stopped it (the others go on), and the windows of each network call."""
        batcher = WindowBatcher(self.windows, len(series), wait_seconds)
        results: list[np.ndarray | Exception] = [RuntimeError("not run")] * len(series)

        def run(index: int, one: BatchedSeries) -> None:
            try:
                results[index] = self.infer(one.prepared, one.shape, one.timings, batcher)
            except Exception as exc:  # this series' failure: reported on its job only
                results[index] = exc
            finally:
                batcher.leave()

        threads = [
            threading.Thread(target=run, args=item, name="batched-series") for item in enumerate(series)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results, batcher.batches

    def predict(self, volume: Volume) -> np.ndarray:
        return self.infer(self.prepare(volume), volume.array.shape)
