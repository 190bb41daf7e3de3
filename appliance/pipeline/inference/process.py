"""The inference process: reads a series, routes it, runs the model, writes SEG and SR.

It runs in its own process so that a job that hangs or exceeds its time can be stopped (the
process is killed and a fresh one started) without taking the runner down, and so that the model
stays loaded between jobs. The series is decrypted in memory only. Messages on the pipe:

- request: ``{"job": id, "objects": [[object_id, kek_id, wrapped_key], ...]}``
- offer: ``{"ahead": series_pk, "objects": [...]}``, a series still quiet, not yet complete: it is
  prepared at once and kept (one at a time) for a request with the same objects; no reply
- replies, in request order, each with its ``"job"``: ``{"kind": "routed", "timeout": seconds}``
  when the network starts on it, then one of ``{"kind": "done", ...}``,
  ``{"kind": "unrouted", "reason": ...}`` or ``{"kind": "failed", "reason": ..., "permanent": bool}``.

Two stages overlap: a reader thread decrypts, routes and preprocesses the next series (CPU) while
the main thread runs the network on the current one (GPU), so the runner keeps two jobs in flight.
"""

from __future__ import annotations

import gc
import logging
import queue
import signal
import threading
import time
from dataclasses import dataclass, replace
from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from sqlmodel import select

from appliance.admin.model_registry import trusted_publishers
from appliance.context import Appliance, open_appliance
from appliance.db.tables import Model, ModelState
from appliance.runtime import logs
from appliance.runtime.child_process import die_with_parent, parent_alive
from appliance.runtime.heap import keep_freed_memory, return_freed_memory
from appliance.security.keys import WrappedKey
from models.bundle import Predictor
from models.errors import ModelError
from models.results import ModelIdentity, write_results
from models.results import warm_up as warm_up_results
from models.routing import SeriesFacts, route
from models.volume import Volume, build_volume

log = logging.getLogger(__name__)

_REASON_MAX = 500


def _part10(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _read(app: Appliance, stored: list[Any], headers_only: bool) -> Dataset:
    object_id, kek_id, wrapped = stored
    data = app.store.get(object_id, WrappedKey(kek_id, wrapped))
    try:
        dataset = dcmread(BytesIO(data), stop_before_pixels=headers_only)
    except (InvalidDicomError, ValueError, EOFError) as exc:
        raise ModelError(f"stored object {object_id} does not parse ({type(exc).__name__})") from exc
    dataset.buffer = None  # pydicom keeps the buffer it read (the whole object) otherwise
    return dataset


class _StoredSeries:
    """A series' stored objects, decrypted in memory: their headers (for routing, the volume's
    geometry and the SEG's references), and each whole object again when the volume takes its
    pixels. Reading twice costs a decryption (about 0.1 s per 100 MiB); reading once held every
    object's pixel data beside the float32 volume (100 MiB more for a 512x512x200 CT)."""

    def __init__(self, app: Appliance, objects: list[list[Any]]) -> None:
        self.app = app
        self.headers = [_read(app, stored, headers_only=True) for stored in objects]
        self._stored = {id(header): stored for header, stored in zip(self.headers, objects, strict=True)}

    def whole(self, header: Dataset) -> Dataset:
        return _read(self.app, self._stored[id(header)], headers_only=False)


def _facts(datasets: list[Dataset]) -> SeriesFacts:
    if not datasets:
        raise ModelError("the series has no stored instances")
    first = datasets[0]
    return SeriesFacts(
        modality=str(first.get("Modality", "")),
        body_part=str(first.get("BodyPartExamined", "")),
        series_description=str(first.get("SeriesDescription", "")),
        sop_class_uid=str(first.get("SOPClassUID", "")),
        slices=sum(int(ds.get("NumberOfFrames", 1) or 1) for ds in datasets),
    )


def _active_model(app: Appliance, name: str) -> Model:
    with app.session() as session:
        model = session.exec(
            select(Model).where(Model.name == name, Model.state == ModelState.ACTIVE)
        ).first()
    if model is None:
        raise ModelError(f"no active version of model {name}; see 'appliance models list'")
    return model


class _Clock:
    """Seconds per stage, for the job's outcome."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = now - self._last
        self._last = now


@dataclass
class _Prepared:
    """A series ready for the network: routed, its model loaded, its volume preprocessed."""

    job: int
    why: str
    timeout: float
    model: Model
    predictor: Predictor
    volume: Volume
    data: dict
    timings: dict[str, float]
    ahead: bool = False  # prepared from an offer, before the series completed


def _object_ids(request: dict) -> frozenset[str]:
    return frozenset(str(object_id) for object_id, _kek, _wrapped in request["objects"])


def _failure(job: int, exc: Exception) -> dict:
    if isinstance(exc, ModelError):  # the series or the bundle: trying again gives the same answer
        return {"job": job, "kind": "failed", "reason": str(exc), "permanent": True}
    log.exception("inference failed")  # the model raised: report it, stay up for the next job
    reason = f"{type(exc).__name__}: {exc}"[:_REASON_MAX]
    return {"job": job, "kind": "failed", "reason": reason, "permanent": False}


class _Handler:
    def __init__(self, app: Appliance, device: str) -> None:
        self.app = app
        self.device = device
        self.predictors: dict[str, Predictor] = {}
        self._ahead: tuple[frozenset[str], _Prepared] | None = None

    def _predictor(self, model: Model) -> Predictor:
        if model.path not in self.predictors:
            self.predictors[model.path] = Predictor(
                Path(model.path), trusted_publishers(self.app), self.device
            )
        return self.predictors[model.path]

    def warm(self) -> None:
        """Load and run every model the rules name, and write results once, so the first series
        waits for none of it."""
        for name in dict.fromkeys(rule.model for rule in self.app.settings.inference.rules):
            try:
                predictor = self._predictor(_active_model(self.app, name))
            except ModelError as exc:  # reported again, on the job, if a series needs it
                log.warning("model %s not loaded: %s", name, exc)
                continue
            try:
                predictor.warm_up()
            except Exception:  # a network that cannot run fails its jobs, with their reasons
                log.exception("model %s warm-up failed", name)
        segments = next((p.segments for p in self.predictors.values() if p.segments), None)
        if segments:
            try:
                warm_up_results(segments)
            except Exception:  # the first series will pay for the warm-up instead
                log.exception("results warm-up failed")

    def prepare_ahead(self, offer: dict) -> None:
        """Prepare a quiet series before its job, and keep it for that job (replacing any other)."""
        self._ahead = None  # never two held
        prepared = self.prepare({**offer, "job": -1})
        if isinstance(prepared, _Prepared):  # a failure is found again, and reported, on the job
            self._ahead = (_object_ids(offer), prepared)
            log.info("series %s prepared ahead", offer["ahead"])

    def _prepared_ahead(self, request: dict) -> _Prepared | None:
        """The offer prepared for exactly these objects, if its model version is still the active one."""
        if self._ahead is None or self._ahead[0] != _object_ids(request):
            return None
        prepared, self._ahead = self._ahead[1], None
        try:
            if _active_model(self.app, prepared.model.name).path != prepared.model.path:
                return None
        except ModelError:  # retired meanwhile: prepared afresh, and the reason reported
            return None
        return replace(prepared, job=int(request["job"]), ahead=True)

    def prepare(self, request: dict) -> _Prepared | dict:
        """Read, route and preprocess a series (CPU work); a reply instead if there is nothing to run."""
        job = int(request["job"])
        if (ready := self._prepared_ahead(request)) is not None:
            return ready
        clock = _Clock()
        try:
            inference = self.app.settings.inference
            return_freed_memory()  # the last series' free heap: this one's blocks come in other sizes
            series = _StoredSeries(self.app, request["objects"])
            rule, why = route(inference.rules, _facts(series.headers))
            if rule is None:
                return {"job": job, "kind": "unrouted", "reason": why}
            model = _active_model(self.app, rule.model)
            predictor = self._predictor(model)
            clock.lap("read")
            volume = build_volume(series.headers, rule.min_slices, load_pixels=series.whole)
            clock.lap("volume")
            inputs = predictor.inputs(volume)
            volume = volume.without_voxels()  # the voxels are in inputs only: freed once resampled
            data = predictor.preprocess(inputs)
            clock.lap("preprocessing")
            timeout = rule.timeout_seconds or inference.timeout_seconds
            return _Prepared(job, why, timeout, model, predictor, volume, data, clock.laps)
        except Exception as exc:
            return _failure(job, exc)

    def finish(self, prepared: _Prepared, send: Any) -> dict:
        """Run the network and write the results; the job's timeout runs from the "routed" message."""
        send({"job": prepared.job, "kind": "routed", "timeout": prepared.timeout})
        timings = dict(prepared.timings)
        try:
            labels = prepared.predictor.infer(prepared.data, prepared.volume.array.shape, timings)
            clock = _Clock()
            model, volume, segments = prepared.model, prepared.volume, prepared.predictor.segments
            results = write_results(volume, labels, segments, ModelIdentity(model.name, model.version))
            reply = {
                "job": prepared.job,
                "kind": "done",
                "rule": prepared.why,
                "model": model.name,
                "version": model.version,
                "volumes_ml": results.volumes_ml,
                "prepared_ahead": prepared.ahead,
                "seg": _part10(results.segmentation),
                "sr": _part10(results.report),
            }
            clock.lap("results")
        except Exception as exc:
            return _failure(prepared.job, exc)
        timings["results"] = clock.laps["results"]
        reply["timings"] = {stage: round(seconds, 2) for stage, seconds in timings.items()}
        return reply


def _prepare_requests(handler: _Handler, connection: Any, ready: queue.Queue) -> None:
    """Reader thread: prepares the next series while the main thread runs the network on this one."""
    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):
            ready.put(None)
            return
        if "ahead" in request:
            handler.prepare_ahead(request)
        else:
            ready.put(handler.prepare(request))


def _next(ready: queue.Queue, idle_seconds: float) -> Any:
    """The next prepared series or reply; the heap's free memory is returned if none comes for
    ``idle_seconds`` (the series of a busy period reuse it; an idle process does not hold it)."""
    try:
        return ready.get(timeout=idle_seconds)
    except queue.Empty:
        return_freed_memory()
        return ready.get()


def worker_main(home: str, device: str, connection: Any, parent: int) -> None:
    die_with_parent()
    if not parent_alive(parent):
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop
    keep_freed_memory()  # before any thread starts
    app = open_appliance(Path(home), migrate_schema=False)  # the main process migrated it
    logs.configure(app.settings.log_path, app.settings.log_level)
    handler = _Handler(app, device)
    ready: queue.Queue = queue.Queue(maxsize=1)
    try:
        handler.warm()
        return_freed_memory()  # the warm-up's activations: not kept resident while idle
        gc.freeze()  # the model and the standard's tables stay: collections need not walk them per job
        log.info("inference process on %s ready, %d models loaded", device, len(handler.predictors))
        threading.Thread(target=_prepare_requests, args=(handler, connection, ready), daemon=True).start()
        while (item := _next(ready, app.settings.inference.release_memory_after_seconds)) is not None:
            connection.send(handler.finish(item, connection.send) if isinstance(item, _Prepared) else item)
            del item
    finally:
        app.close()
