"""The inference process: decrypts a series in memory and runs the series pipeline on it.

It runs in its own process so that a job that hangs or exceeds its time can be stopped (the
process is killed and a fresh one started) without taking the runner down, and so that the model
stays loaded between jobs. It moves typed messages (:mod:`appliance.pipeline.inference.messages`)
between the runner and :mod:`models.pipeline`, which does the work.

Two stages overlap: a reader thread decrypts, routes and preprocesses the next series (CPU) while
the main thread runs the network on the current one (GPU), so the runner keeps jobs in flight: a
batch and one more. When several prepared series wait for the same model, up to ``batch_series``
of them run through the network together (dynamic batching, :func:`models.pipeline.finish_together`);
a series waits at most ``batch_wait_seconds`` for others still being prepared to join it.
"""

from __future__ import annotations

import gc
import logging
import queue
import signal
import threading
import time
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from sqlmodel import select

from appliance.admin.model_registry import find, trusted_publishers
from appliance.context import Appliance, open_appliance
from appliance.db.tables import Model, ModelState
from appliance.errors import NotFound
from appliance.modelops import shadow
from appliance.pipeline.inference.messages import (
    Done,
    Failed,
    Routed,
    SeriesOffer,
    SeriesRequest,
    StoredObject,
    Unrouted,
)
from appliance.runtime import logs
from appliance.runtime.child_process import die_with_parent, parent_alive
from appliance.runtime.heap import keep_freed_memory, return_freed_memory
from appliance.security.keys import WrappedKey
from appliance.storage.writer import NewObject
from models import fast_paths, pipeline
from models.bundle import Predictor
from models.errors import ModelError
from models.results import warm_up as warm_up_results

log = logging.getLogger(__name__)

_REASON_MAX = 500


def _read(app: Appliance, stored: StoredObject, headers_only: bool) -> Dataset:
    read = app.store.get_header if headers_only else app.store.get
    data = read(stored.object_id, WrappedKey(stored.kek_id, stored.wrapped_key))
    try:
        dataset = dcmread(BytesIO(data), stop_before_pixels=headers_only)
    except (InvalidDicomError, ValueError, EOFError) as exc:
        raise ModelError(f"stored object {stored.object_id} does not parse ({type(exc).__name__})") from exc
    dataset.buffer = None  # pydicom keeps the buffer it read (the whole object) otherwise
    return dataset


class StoredSeries:
    """A series' stored objects, decrypted in memory (a :class:`models.pipeline.SeriesSource`):
    their headers first, and each whole object again when the volume takes its pixels, so the
    series' pixel data is never held beside the float32 volume."""

    def __init__(self, app: Appliance, objects: tuple[StoredObject, ...]) -> None:
        self.app = app
        self.headers = [_read(app, stored, headers_only=True) for stored in objects]
        self._stored = {id(header): stored for header, stored in zip(self.headers, objects, strict=True)}

    def whole(self, header: Dataset) -> Dataset:
        return _read(self.app, self._stored[id(header)], headers_only=False)


def _active_model(app: Appliance, name: str) -> Model:
    with app.session() as session:
        model = session.exec(
            select(Model).where(Model.name == name, Model.state == ModelState.ACTIVE)
        ).first()
    if model is None:
        raise ModelError(f"no active version of model {name}; see 'appliance models list'")
    return model


def _failure(job: int, exc: Exception) -> Failed:
    if isinstance(exc, ModelError):  # the series or the bundle: trying again gives the same answer
        return Failed(job, str(exc), permanent=True)
    log.exception("inference failed")  # the model raised: report it, stay up for the next job
    return Failed(job, f"{type(exc).__name__}: {exc}"[:_REASON_MAX], permanent=False)


@dataclass
class _Prepared:
    """A request's series, prepared: the pipeline's part and what the reply needs."""

    job: int
    series: pipeline.PreparedSeries
    model_path: str  # the model version it was prepared for
    timeout: float
    ahead: bool = False  # prepared from an offer, before the series completed
    shadow_run: int | None = None  # the shadow run it was also prepared for


_BATCH_POLL_SECONDS = 0.02


def series_per_batch(app: Appliance, device: str) -> int:
    """How many series an inference process on ``device`` runs through the network at once."""
    configured = app.settings.inference.batch_series
    return configured or (1 if device == "cpu" else 4)


class SeriesHandler:
    """The process's state: loaded predictors (by bundle path), at most one series prepared ahead,
    and how many requests the reader thread is preparing now."""

    def __init__(self, app: Appliance, device: str) -> None:
        self.app = app
        self.device = device
        self.predictors: dict[str, Predictor] = {}
        self._ahead: tuple[frozenset[str], _Prepared] | None = None
        self.preparing = 0  # changed by the reader thread only

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

    def prepare_ahead(self, offer: SeriesOffer) -> None:
        """Prepare a quiet series before its job, and keep it for that job (replacing any other)."""
        self._ahead = None  # never two held
        request = SeriesRequest(-1, offer.objects)
        prepared = self.prepare(request)
        if isinstance(prepared, _Prepared):  # a failure is found again, and reported, on the job
            self._ahead = (request.object_ids(), prepared)
            log.info("series %s prepared ahead", offer.series_pk)

    def _prepared_ahead(self, request: SeriesRequest) -> _Prepared | None:
        """The offer prepared for exactly these objects, if its model version is still the active one."""
        if self._ahead is None or self._ahead[0] != request.object_ids():
            return None
        prepared, self._ahead = self._ahead[1], None
        try:
            model = _active_model(self.app, prepared.series.rule.model)
        except ModelError:  # retired meanwhile: prepared afresh, and the reason reported
            return None
        if model.path != prepared.model_path:
            return None
        prepared.job, prepared.ahead = request.job, True
        return prepared

    def prepare(self, request: SeriesRequest) -> _Prepared | Unrouted | Failed:
        """Read, route and preprocess a series (CPU work); a reply instead if there is nothing to run."""
        if (ready := self._prepared_ahead(request)) is not None:
            return ready
        models: dict[str, Model] = {}
        shadow_runs: dict[str, int] = {}

        def predictor_for(name: str) -> Predictor:
            models[name] = _active_model(self.app, name)
            return self._predictor(models[name])

        def shadow_for(name: str) -> Predictor | None:
            run = shadow.in_force(self.app, name)
            if run is None or run.id is None or run.version == models[name].version:
                return None
            try:
                predictor = self._predictor(find(self.app, name, run.version))
            except (ModelError, NotFound) as exc:  # the active version's results still come
                log.warning("shadow %s %s not loaded: %s", name, run.version, exc)
                return None
            shadow_runs[name] = run.id
            return predictor

        try:
            inference = self.app.settings.inference
            return_freed_memory()  # the last series' free heap: this one's blocks come in other sizes
            started = time.perf_counter()
            series = StoredSeries(self.app, request.objects)
            timings = {"read": time.perf_counter() - started}
            prepared = pipeline.prepare_series(series, inference.rules, predictor_for, timings, shadow_for)
            if isinstance(prepared, pipeline.Unrouted):
                return Unrouted(request.job, prepared.reason)
            timeout = prepared.rule.timeout_seconds or inference.timeout_seconds
            model = prepared.rule.model
            return _Prepared(
                request.job, prepared, models[model].path, timeout, False, shadow_runs.get(model)
            )
        except Exception as exc:
            return _failure(request.job, exc)

    def finish(self, group: list[_Prepared], send: Any) -> None:
        """Run the network on a batch of prepared series and send each one's ``Routed`` and answer,
        in order. The first ``Routed`` carries the whole batch's time (the sum of its series'
        timeouts): the runner stops the process if the batch runs longer."""
        send(Routed(group[0].job, sum(prepared.timeout for prepared in group)))
        if len(group) == 1:
            try:
                outcomes: list[pipeline.SeriesResults | Exception] = [pipeline.finish_series(group[0].series)]
            except Exception as exc:
                outcomes = [exc]
        else:
            wait = self.app.settings.inference.batch_wait_seconds
            outcomes = pipeline.finish_together([prepared.series for prepared in group], wait)
        for index, (prepared, outcome) in enumerate(zip(group, outcomes, strict=True)):
            if index:
                send(Routed(prepared.job, prepared.timeout))
            send(self._answer(prepared, outcome))

    def _answer(self, prepared: _Prepared, outcome: pipeline.SeriesResults | Exception) -> Done | Failed:
        if isinstance(outcome, Exception):
            return _failure(prepared.job, outcome)
        results = outcome
        try:
            own_ae = self.app.settings.dicom.ae_title
            objects = tuple(NewObject.result(ds, own_ae) for ds in (results.segmentation, results.report))
        except Exception as exc:
            return _failure(prepared.job, exc)
        return Done(
            job=prepared.job,
            model=results.model,
            why=results.why,
            volumes_ml=results.volumes_ml,
            results=objects,
            timings={stage: round(seconds, 2) for stage, seconds in results.timings.items()},
            prepared_ahead=prepared.ahead,
            shadow=results.shadow,
            shadow_run=prepared.shadow_run if results.shadow is not None else None,
        )


def _prepare_requests(handler: SeriesHandler, connection: Any, ready: queue.Queue) -> None:
    """Reader thread: prepares the next series while the main thread runs the network on this one."""
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            ready.put(None)
            return
        if isinstance(message, SeriesOffer):
            handler.prepare_ahead(message)
        elif isinstance(message, SeriesRequest):
            handler.preparing += 1  # until it is handed over: a batch being gathered may wait for it
            ready.put(handler.prepare(message))
            handler.preparing -= 1
        else:
            log.error("inference process: unexpected message %s ignored", type(message).__name__)


def batch_of(first: _Prepared, ready: queue.Queue, handler: SeriesHandler, size: int) -> tuple[list, list]:
    """``first`` and the series prepared for the same model that join it (those ready now, and
    those being prepared that are ready within the wait), up to ``size``; and the item taken that
    cannot join, if any (answered after the batch: answers go in request order; it may be the
    reader's end, None)."""
    group = [first]
    started = time.monotonic()
    deadline = started + handler.app.settings.inference.batch_wait_seconds
    while len(group) < size:
        try:
            item = ready.get(timeout=_BATCH_POLL_SECONDS)
        except queue.Empty:
            now = time.monotonic()
            # the reader thread takes the next request a moment after it hands over this one
            if now >= deadline or (handler.preparing == 0 and now - started >= _BATCH_POLL_SECONDS):
                break
            continue
        joins = (
            isinstance(item, _Prepared)
            and item.series.predictor is first.series.predictor
            and item.series.shadow is None
            and first.series.shadow is None
        )
        if not joins:
            return group, [item]
        group.append(item)
    return group, []


def next_prepared(ready: queue.Queue, idle_seconds: float) -> Any:
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
    fast_paths.install()  # before any bundle is built
    app = open_appliance(Path(home), migrate_schema=False)  # the main process migrated it
    logs.configure(app.settings.log_path, app.settings.log_level)
    handler = SeriesHandler(app, device)
    size = series_per_batch(app, device)
    ready: queue.Queue = queue.Queue(maxsize=size)
    try:
        handler.warm()
        return_freed_memory()  # the warm-up's activations: not kept resident while idle
        gc.freeze()  # the model and the standard's tables stay: collections need not walk them per job
        log.info("inference process on %s ready, %d models loaded", device, len(handler.predictors))
        threading.Thread(target=_prepare_requests, args=(handler, connection, ready), daemon=True).start()
        idle = app.settings.inference.release_memory_after_seconds
        held: list = []  # an item taken while gathering a batch that could not join it
        while (item := held.pop() if held else next_prepared(ready, idle)) is not None:
            if isinstance(item, _Prepared):
                group, held = batch_of(item, ready, handler, size)
                handler.finish(group, connection.send)
                del group
            else:
                connection.send(item)
            del item
    finally:
        app.close()
