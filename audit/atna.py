"""Audit entries as DICOM audit messages (PS3.15 A.5.1 XML), for IHE ATNA syslog shipping."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

# ParticipantObject kinds -> (TypeCode, TypeCodeRole, IDTypeCode (code, scheme, meaning))
_OBJECT_CODES = {
    "patient": ("1", "1", ("2", "RFC-3881", "Patient Number")),
    "study": ("2", "3", ("110180", "DCM", "Study Instance UID")),
    "instance": ("2", "3", ("110181", "DCM", "SOP Class UID")),
}
_GENERIC = ("2", "13", ("110182", "DCM", "Node ID"))


def _code(parent: ElementTree.Element, tag: str, code: str, scheme: str, meaning: str) -> None:
    ElementTree.SubElement(parent, tag, {"csd-code": code, "codeSystemName": scheme, "originalText": meaning})


def to_xml(entry: dict[str, Any], source_id: str) -> str:
    """One decrypted audit entry as an AuditMessage document (single line, UTF-8)."""
    message = ElementTree.Element("AuditMessage")
    identification = ElementTree.SubElement(
        message,
        "EventIdentification",
        {
            "EventActionCode": entry["action"],
            "EventDateTime": entry["at"],
            "EventOutcomeIndicator": str(entry["outcome"]),
        },
    )
    _code(identification, "EventID", entry["event_id"], "DCM", entry["event"])
    if entry.get("type"):
        _code(identification, "EventTypeCode", entry["type"], "appliance", entry["type"])
    for participant in entry["participants"]:
        attributes = {
            "UserID": participant["user_id"],
            "UserIsRequestor": "true" if participant["is_requestor"] else "false",
        }
        if participant.get("host"):
            attributes |= {"NetworkAccessPointID": participant["host"], "NetworkAccessPointTypeCode": "2"}
        active = ElementTree.SubElement(message, "ActiveParticipant", attributes)
        if participant.get("role"):
            _code(active, "RoleIDCode", participant["role"], "appliance", participant["role"])
    ElementTree.SubElement(message, "AuditSourceIdentification", {"AuditSourceID": source_id})
    for item in entry["objects"]:
        type_code, role, (code, scheme, meaning) = _OBJECT_CODES.get(item["kind"], _GENERIC)
        obj = ElementTree.SubElement(
            message,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": item["id"],
                "ParticipantObjectTypeCode": type_code,
                "ParticipantObjectTypeCodeRole": role,
            },
        )
        _code(obj, "ParticipantObjectIDTypeCode", code, scheme, meaning)
    return ElementTree.tostring(message, encoding="unicode")
