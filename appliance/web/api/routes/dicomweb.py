"""DICOMweb under ``/dicomweb``: the gateway's routes over the caller's view of the clinical store."""

from __future__ import annotations

from fastapi import APIRouter

from appliance.web.api.deps import CurrentCaller
from appliance.web.catalogue import CallerCatalogue
from appliance.web.clinical_records import ClinicalRecords
from dicom_gateway.dicomweb.routes import dicomweb_router


def router(records: ClinicalRecords) -> APIRouter:
    def catalogue(caller: CurrentCaller) -> CallerCatalogue:
        return CallerCatalogue(records, caller)

    return dicomweb_router(catalogue)
