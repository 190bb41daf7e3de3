"""QIDO-RS, WADO-RS and STOW-RS routes (PS3.18 10.4, 10.5 and 10.6) over a :class:`Catalogue`.

Searches answer ``application/dicom+json``. Retrievals answer ``multipart/related`` with one part
per instance, streamed: each instance is read (decrypted) only when its part is sent. The transfer
syntax is the stored one when the request asks for ``transfer-syntax=*``; otherwise Explicit VR
Little Endian (the standard's default), converted from Implicit VR Little Endian if need be; a
syntax we cannot produce is a 406. Metadata is the DICOM JSON of each instance without its pixel
data; frames are the uncompressed frames' bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from io import BytesIO

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydicom import dcmread, dcmwrite
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicom_gateway.dicomweb import multipart
from dicom_gateway.dicomweb.catalogue import Catalogue, StoredInstance
from dicom_gateway.dicomweb.json_model import header_of, to_json_dict
from dicom_gateway.dicomweb.query import Query
from dicom_gateway.dicomweb.stow import dicom_parts
from dicom_gateway.errors import DicomwebRefused

DICOM_JSON = "application/dicom+json"
_STUDY_DEFAULTS = frozenset(
    "00080005 00080020 00080030 00080050 00080056 00080061 00080090 00080201 00081190 "
    "00100010 00100020 00100030 00100040 0020000D 00200010 00201206 00201208".split()
)
_SERIES_DEFAULTS = frozenset(
    "00080005 00080060 0008103E 00081190 0020000D 0020000E 00200011 00201209 00400244 00400245".split()
)
_INSTANCE_DEFAULTS = frozenset(
    "00080005 00080016 00080018 00081190 0020000D 0020000E 00200013 "
    "00280008 00280010 00280011 00280100".split()
)


def _query(request: Request) -> Query:
    return Query.parse(list(request.query_params.multi_items()))


def _search(records: list[dict], query: Query, defaults: frozenset[str]) -> Response:
    chosen = query.page(records)
    if not chosen:
        return Response(status_code=204)
    return JSONResponse([query.shape(r, defaults) for r in chosen], media_type=DICOM_JSON)


def _wanted_syntax(accept: str) -> str | None:
    """The transfer syntax asked for: None means "as stored" (``transfer-syntax=*``)."""
    found = re.search(r"transfer-syntax\s*=\s*\"?([0-9.*]+)\"?", accept)
    if found is None:
        return ExplicitVRLittleEndian
    return None if found.group(1) == "*" else found.group(1)


def _converted(part10: bytes, stored: str, wanted: str | None) -> bytes:
    if wanted is None or wanted == stored:
        return part10
    dataset = dcmread(BytesIO(part10))
    dataset.file_meta.TransferSyntaxUID = wanted
    buffer = BytesIO()
    dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


def _check_convertible(instances: list[StoredInstance], wanted: str | None) -> None:
    little_endian = {ExplicitVRLittleEndian, ImplicitVRLittleEndian}
    for instance in instances:
        if (
            wanted is not None
            and wanted != instance.transfer_syntax_uid
            and not (wanted == ExplicitVRLittleEndian and instance.transfer_syntax_uid in little_endian)
        ):
            raise DicomwebRefused(
                406,
                f"an instance is stored as {instance.transfer_syntax_uid} and cannot be sent as {wanted}: "
                "ask for transfer-syntax=* to have it as stored",
            )


def _instances_response(instances: list[StoredInstance], accept: str) -> StreamingResponse:
    wanted = _wanted_syntax(accept)
    _check_convertible(instances, wanted)
    mark = multipart.boundary()
    parts = (_converted(i.read(), i.transfer_syntax_uid, wanted) for i in instances)
    as_stored = all(wanted in (None, i.transfer_syntax_uid) for i in instances)
    sizes = [i.size for i in instances]
    return StreamingResponse(
        multipart.stream(parts, "application/dicom", mark),
        media_type=multipart.content_type("application/dicom", mark, wanted or "*"),
        headers={"Content-Length": str(multipart.length(sizes, "application/dicom", mark))}
        if as_stored
        else None,
    )


_METADATA_BATCH = 32  # instances per chunk: each chunk of a sync stream is a hop to the thread pool


def _metadata(instances: list[StoredInstance]) -> Iterator[bytes]:
    """A JSON array, written a few instances at a time (each header read and decrypted only then)."""
    chunk = [b"["]
    for index, instance in enumerate(instances):
        dataset = header_of(instance.read_header(), instance.transfer_syntax_uid)
        chunk.append((b"," if index else b"") + json.dumps(to_json_dict(dataset)).encode())
        if len(chunk) >= _METADATA_BATCH:
            yield b"".join(chunk)
            chunk = []
    yield b"".join([*chunk, b"]"])


def _frames(instance: StoredInstance, numbers: list[int]) -> list[bytes]:
    dataset = dcmread(BytesIO(instance.read()))
    if dataset.file_meta.TransferSyntaxUID.is_compressed or "PixelData" not in dataset:
        raise DicomwebRefused(406, "frames are served from uncompressed pixel data only")
    count = int(getattr(dataset, "NumberOfFrames", 1) or 1)
    size = dataset.Rows * dataset.Columns * dataset.SamplesPerPixel * dataset.BitsAllocated // 8
    data = dataset.PixelData
    if any(not 1 <= n <= count for n in numbers):
        raise DicomwebRefused(404, f"the instance has {count} frame(s)")
    return [data[(n - 1) * size : n * size] for n in numbers]


def dicomweb_router(catalogue_for: Callable[..., Catalogue]) -> APIRouter:
    """The routes under ``/dicomweb``; ``catalogue_for`` is a dependency giving the caller's catalogue."""
    router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])
    CatalogueDep = Depends(catalogue_for)  # noqa: N806 - a dependency, named as FastAPI's are

    @router.get("/studies")
    def search_studies(request: Request, catalogue: Catalogue = CatalogueDep) -> Response:
        query = _query(request)
        return _search(catalogue.studies(query), query, _STUDY_DEFAULTS)

    @router.get("/series")
    def search_all_series(request: Request, catalogue: Catalogue = CatalogueDep) -> Response:
        query = _query(request)
        return _search(catalogue.series(None, query), query, _SERIES_DEFAULTS)

    @router.get("/studies/{study}/series")
    def search_series(study: str, request: Request, catalogue: Catalogue = CatalogueDep) -> Response:
        query = _query(request)
        return _search(catalogue.series(study, query), query, _SERIES_DEFAULTS)

    @router.get("/instances")
    def search_all_instances(request: Request, catalogue: Catalogue = CatalogueDep) -> Response:
        query = _query(request)
        return _search(catalogue.instances(None, None, query), query, _INSTANCE_DEFAULTS)

    @router.get("/studies/{study}/instances")
    def search_study_instances(study: str, request: Request, catalogue: Catalogue = CatalogueDep) -> Response:
        query = _query(request)
        return _search(catalogue.instances(study, None, query), query, _INSTANCE_DEFAULTS)

    @router.get("/studies/{study}/series/{series}/instances")
    def search_instances(
        study: str, series: str, request: Request, catalogue: Catalogue = CatalogueDep
    ) -> Response:
        query = _query(request)
        return _search(catalogue.instances(study, series, query), query, _INSTANCE_DEFAULTS)

    @router.get("/studies/{study}")
    def retrieve_study(study: str, request: Request, catalogue: Catalogue = CatalogueDep) -> Response:
        return _instances_response(catalogue.retrieve(study), request.headers.get("accept", ""))

    @router.get("/studies/{study}/series/{series}")
    def retrieve_series(
        study: str, series: str, request: Request, catalogue: Catalogue = CatalogueDep
    ) -> Response:
        return _instances_response(catalogue.retrieve(study, series), request.headers.get("accept", ""))

    @router.get("/studies/{study}/series/{series}/instances/{instance}")
    def retrieve_instance(
        study: str, series: str, instance: str, request: Request, catalogue: Catalogue = CatalogueDep
    ) -> Response:
        found = catalogue.retrieve(study, series, instance)
        return _instances_response(found, request.headers.get("accept", ""))

    def metadata(found: list[StoredInstance]) -> StreamingResponse:
        return StreamingResponse(_metadata(found), media_type=DICOM_JSON)

    @router.get("/studies/{study}/metadata")
    def study_metadata(study: str, catalogue: Catalogue = CatalogueDep) -> Response:
        return metadata(catalogue.retrieve(study))

    @router.get("/studies/{study}/series/{series}/metadata")
    def series_metadata(study: str, series: str, catalogue: Catalogue = CatalogueDep) -> Response:
        return metadata(catalogue.retrieve(study, series))

    @router.get("/studies/{study}/series/{series}/instances/{instance}/metadata")
    def instance_metadata(
        study: str, series: str, instance: str, catalogue: Catalogue = CatalogueDep
    ) -> Response:
        return metadata(catalogue.retrieve(study, series, instance))

    @router.get("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}")
    def retrieve_frames(
        study: str, series: str, instance: str, frames: str, catalogue: Catalogue = CatalogueDep
    ) -> Response:
        if not re.fullmatch(r"\d+(,\d+)*", frames):
            raise DicomwebRefused(400, "frames are a comma-separated list of frame numbers from 1")
        (found,) = catalogue.retrieve(study, series, instance)
        mark = multipart.boundary()
        parts = _frames(found, [int(n) for n in frames.split(",")])
        return StreamingResponse(
            multipart.stream(parts, "application/octet-stream", mark),
            media_type=multipart.content_type("application/octet-stream", mark),
        )

    @router.post("/studies")
    async def store_instances(request: Request, catalogue: Catalogue = CatalogueDep) -> Response:
        return await _stow(request, catalogue, None)

    @router.post("/studies/{study}")
    async def store_study_instances(
        study: str, request: Request, catalogue: Catalogue = CatalogueDep
    ) -> Response:
        return await _stow(request, catalogue, study)

    return router


async def _stow(request: Request, catalogue: Catalogue, study_uid: str | None) -> Response:
    parts = dicom_parts(request.headers.get("content-type", ""), await request.body())
    outcome = await run_in_threadpool(catalogue.store, parts, study_uid)  # fsync waits: off the event loop
    return JSONResponse(outcome.response(), status_code=outcome.http_status, media_type=DICOM_JSON)
