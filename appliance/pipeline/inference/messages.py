"""The messages between the inference runner (main process) and the inference process, one type each.

Runner to process: :class:`SeriesRequest` (a job: prepare and run it; replies come in request
order) and :class:`SeriesOffer` (a series still quiet, not yet complete: prepare it ahead and keep
it for a request with the same objects; no reply). Process to runner, for each request:
:class:`Routed` when the network starts on it (its timeout runs from then), then one of
:class:`Done`, :class:`Unrouted` or :class:`Failed`.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.storage.writer import NewObject
from models.identity import ModelIdentity
from models.shadow_outcome import ShadowOutcome


@dataclass(frozen=True)
class StoredObject:
    """Where one stored object of the series is, and its wrapped data key."""

    object_id: str
    kek_id: str
    wrapped_key: bytes


@dataclass(frozen=True)
class SeriesRequest:
    job: int
    objects: tuple[StoredObject, ...]

    def object_ids(self) -> frozenset[str]:
        return frozenset(stored.object_id for stored in self.objects)


@dataclass(frozen=True)
class SeriesOffer:
    series_pk: int
    objects: tuple[StoredObject, ...]


@dataclass(frozen=True)
class Routed:
    job: int
    timeout: float  # seconds the network and the results may take from now


@dataclass(frozen=True)
class Done:
    job: int
    model: ModelIdentity
    why: str  # the rule that matched
    volumes_ml: dict[str, float]
    results: tuple[NewObject, ...]  # the SEG and the SR, for the one writer
    timings: dict[str, float]
    prepared_ahead: bool
    shadow: ShadowOutcome | None = None  # what a version in shadow did beside it
    shadow_run: int | None = None


@dataclass(frozen=True)
class Unrouted:
    job: int
    reason: str


@dataclass(frozen=True)
class Failed:
    job: int
    reason: str
    permanent: bool  # the series or the bundle: trying again gives the same answer


Reply = Routed | Done | Unrouted | Failed
