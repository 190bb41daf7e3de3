"""De-identify one DICOM object: profile actions, pseudonyms, free text, pixels, then the PHI gate."""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO

from pydicom import dcmwrite
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from anonymizer import free_text, keep_rules, pixels
from anonymizer.errors import Quarantined
from anonymizer.gate import phi_hits
from anonymizer.identity import Identity, identity_of
from anonymizer.profile import BASIC_PROFILE_CODE, CLEAN_PIXEL_DATA_CODE, Option, Profile
from anonymizer.pseudonyms import Pseudonymizer, shift_da, shift_dt
from anonymizer.report import Report
from anonymizer.table import ProfileTable, load_table

DUMMY = "ANONYMIZED"
_DUMMIES = {"AE": "ANONYMOUS", "AS": "000Y", "DS": "0", "IS": "0", "TM": "000000", "UR": "urn:anonymized"}
_TEXT_VRS = {"LO", "SH", "LT", "ST", "UT", "UC"}
_NUMBER_VRS = {"US", "SS", "UL", "SL", "FL", "FD", "SV", "UV"}
_MAX_LENGTH = {"SH": 16, "LO": 64, "ST": 1024, "LT": 10240, "AE": 16, "CS": 16}
_PATIENT_KEYWORDS = {"PatientName", "PatientID"}
# Not an Annex E action: what the keep rule gives a public attribute the table does not list. Like C,
# except that a UID is kept as it is (class UIDs, not instance UIDs, are what remains there).
_KEEP_AND_SCRUB = "S"
# Coded values are not free text: only the object's own identifying values are looked for in them.
_CODES = {
    "CodeValue",
    "LongCodeValue",
    "URNCodeValue",
    "CodingSchemeDesignator",
    "CodingSchemeVersion",
    "ContextIdentifier",
    "MappingResource",
}


@dataclass(frozen=True)
class PatientLink:
    """The pseudonym and the original patient it stands for (in memory; kept only encrypted)."""

    pseudonym: str
    patient_id: str
    patient_name: str


@dataclass
class Outcome:
    encoded: bytes | None  # the de-identified Part 10 file; None when quarantined
    report: Report
    patient: PatientLink | None
    study_uid: str = ""  # the new UIDs, for naming the output
    series_uid: str = ""
    sha256: str = ""  # of ``encoded``, where a caller asks for it (a release names objects by it)


@dataclass
class _Context:
    identity: Identity
    pseudonym: str
    day_offset: int
    report: Report


def _untouched(action: str, vr: str | None) -> bool:
    """An element kept as it is (and so left undecoded): K, or C and the keep-and-scrub rule on a
    value that is not text, a name, a date, a sequence or (for C) a UID."""
    if action == "K":
        return True
    if action not in ("C", _KEEP_AND_SCRUB) or vr is None:
        return False
    touched = vr in _TEXT_VRS or vr in ("SQ", "PN", "DA", "DT") or (vr == "UI" and action == "C")
    return not touched


def _label(element: DataElement) -> str:
    return element.keyword or f"({element.tag.group:04X},{element.tag.element:04X})"


def _patient_key(dataset: Dataset) -> str:
    patient_id = str(dataset.get("PatientID", "") or "").strip()
    if patient_id:
        return f"id\x00{dataset.get('IssuerOfPatientID', '') or ''}\x00{patient_id}"
    return f"name\x00{dataset.get('PatientName', '') or ''}\x00{dataset.get('PatientBirthDate', '') or ''}"


class Deidentifier:
    """De-identifies objects under one profile and one pseudonymisation secret."""

    def __init__(self, secret: bytes, profile: Profile, table: ProfileTable | None = None) -> None:
        self.profile = profile
        self.table = table or load_table()
        self.pseudonyms = Pseudonymizer(secret)

    def deidentify(self, dataset: Dataset, source: str = "") -> Outcome:
        """The de-identified encoding of ``dataset`` (changed in place), or a quarantine with a reason."""
        report = Report(source=source)
        link = PatientLink(
            self.pseudonyms.patient(_patient_key(dataset)),
            str(dataset.get("PatientID", "") or ""),
            str(dataset.get("PatientName", "") or ""),
        )
        identity = identity_of(dataset, self.profile, self.table)
        context = _Context(
            identity, link.pseudonym, self.pseudonyms.day_offset(_patient_key(dataset)), report
        )
        try:
            pixels.to_little_endian(dataset)
            self._clean_pixels(dataset, report)
            self._clean(dataset, context)
            self._record_method(dataset, report)
            encoded = self._encode(dataset)
            hits = phi_hits(encoded, identity)
            if hits:
                raise Quarantined("PHI gate: " + "; ".join(hits))
        except Quarantined as reason:
            report.quarantined = str(reason)
            return Outcome(None, report, link)
        report.sop_instance_uid = str(dataset.SOPInstanceUID)
        study, series = dataset.get("StudyInstanceUID", ""), dataset.get("SeriesInstanceUID", "")
        return Outcome(encoded, report, link, str(study or ""), str(series or ""))

    # -- pixels ---------------------------------------------------------------------------------------
    def _clean_pixels(self, dataset: Dataset, report: Report) -> None:
        if self.profile.redact_burned_in_text and pixels.at_risk(dataset):
            report.redacted_boxes += pixels.redact_pixels(dataset)
        if self.profile.has(Option.clean_graphics):
            report.redacted_boxes += pixels.redact_overlays(dataset)

    # -- header ---------------------------------------------------------------------------------------
    def _clean(self, dataset: Dataset, context: _Context, top: bool = True) -> None:
        for raw in list(dataset.elements()):
            tag = raw.tag
            if tag.is_private:
                self._private(dataset, dataset[tag], context)
                continue
            row = self.table.row(tag)
            if row is not None:
                action = self.profile.action(row)
            else:
                action = _KEEP_AND_SCRUB if keep_rules.keep(tag) else "X"
            if action == "X":
                del dataset[tag]
                context.report.removed.add(keyword_for_tag(tag) or f"({tag.group:04X},{tag.element:04X})")
            elif not _untouched(action, raw.VR):
                self._apply(dataset, dataset[tag], action, context, top)

    def _private(self, dataset: Dataset, element: DataElement, context: _Context) -> None:
        if self.profile.has(Option.retain_safe_private) and self._safe_private(dataset, element):
            if element.VR == "SQ":
                for item in element.value:
                    self._clean(item, context, top=False)
            return
        del dataset[element.tag]
        context.report.private_removed += 1

    def _safe_private(self, dataset: Dataset, element: DataElement) -> bool:
        group, number = element.tag.group, element.tag.element
        if number < 0x0100:  # a private creator: kept while it reserves a kept element
            return any(
                str(element.value).strip() == entry.creator and entry.group == group
                for entry in self.profile.safe_private
            )
        creator_tag = (group << 16) | (number >> 8)
        creator = str(dataset[creator_tag].value).strip() if creator_tag in dataset else ""
        return any(
            entry.creator == creator and entry.group == group and entry.element == number & 0xFF
            for entry in self.profile.safe_private
        )

    def _apply(
        self, dataset: Dataset, element: DataElement, action: str, context: _Context, top: bool
    ) -> None:
        report, label, vr = context.report, _label(element), element.VR
        if action == "X":
            del dataset[element.tag]
            report.removed.add(label)
        elif vr == "SQ":
            if action == "Z":
                element.value = Sequence()
                report.emptied.add(label)
            else:
                for item in element.value or []:
                    self._clean(item, context, top=False)
        elif action == "Z" and not (top and element.keyword in _PATIENT_KEYWORDS):
            element.value = None
            report.emptied.add(label)
        elif vr == "UI" and action in ("U", "D", "C"):
            self._remap(element, context)
        elif vr in ("DA", "DT") and action in ("D", "C", _KEEP_AND_SCRUB):
            self._shift(element, context)
        elif action == "K" or element.VM == 0:
            return
        elif action in ("Z", "D") and top and element.keyword in _PATIENT_KEYWORDS:
            element.value = context.pseudonym
            report.replaced.add(label)
        elif action == "D" or vr == "PN":
            element.value = self._dummy(vr)
            report.replaced.add(label)
        elif action in ("C", _KEEP_AND_SCRUB) and vr in _TEXT_VRS:
            self._scrub(element, context)

    def _remap(self, element: DataElement, context: _Context) -> None:
        values = element.value if element.VM > 1 else [element.value]
        remapped = [self.pseudonyms.uid(str(v)) for v in values if str(v).strip("\x00 ")]
        element.value = remapped if len(remapped) > 1 else (remapped[0] if remapped else None)
        context.report.remapped_uids.add(_label(element))

    def _shift(self, element: DataElement, context: _Context) -> None:
        shift = shift_da if element.VR == "DA" else shift_dt
        values = element.value if element.VM > 1 else [element.value]
        moved = [shift(str(v), context.day_offset) for v in values]
        if any(v is None for v in moved) or not moved:
            element.value = None  # not a valid date: emptied rather than kept
            context.report.emptied.add(_label(element))
            return
        element.value = moved if len(moved) > 1 else moved[0]
        context.report.shifted_dates.add(_label(element))

    def _scrub(self, element: DataElement, context: _Context) -> None:
        values = element.value if element.VM > 1 else [element.value]
        cleaned, spans = [], 0
        for value in values:
            if element.keyword in _CODES:
                text, found = context.identity.redact(str(value), free_text.PLACEHOLDER)
            else:
                text, found = free_text.scrub(str(value), context.identity)
            cleaned.append(text[: _MAX_LENGTH.get(element.VR, len(text))])
            spans += found
        if spans:
            element.value = cleaned if len(cleaned) > 1 else cleaned[0]
            context.report.scrubbed.add(_label(element))
            context.report.scrubbed_spans += spans

    @staticmethod
    def _dummy(vr: str) -> object:
        if vr in _NUMBER_VRS:
            return 0
        if vr in ("OB", "OW", "OD", "OF", "OL", "OV", "UN"):
            return b"\x00\x00"
        return _DUMMIES.get(vr, DUMMY)

    # -- record and encode ----------------------------------------------------------------------------
    def _record_method(self, dataset: Dataset, report: Report) -> None:
        dataset.PatientIdentityRemoved = "YES"
        codes = [BASIC_PROFILE_CODE, *(option.code for option in self.profile.options)]
        if report.redacted_boxes:
            codes.append(CLEAN_PIXEL_DATA_CODE)
        items = []
        for value, meaning in codes:
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
            items.append(item)
        dataset.DeidentificationMethod = f"imaging-appliance profile {self.profile.name}"[:64]
        dataset.DeidentificationMethodCodeSequence = Sequence(items)
        if self.profile.has(Option.retain_full_dates):
            dataset.LongitudinalTemporalInformationModified = "UNMODIFIED"
        elif self.profile.has(Option.retain_modified_dates):
            dataset.LongitudinalTemporalInformationModified = "MODIFIED"
        else:
            dataset.LongitudinalTemporalInformationModified = "REMOVED"

    @staticmethod
    def _encode(dataset: Dataset) -> bytes:
        if "SOPInstanceUID" not in dataset or "SOPClassUID" not in dataset:
            raise Quarantined("the object has no SOP Class or SOP Instance UID")
        original = getattr(dataset, "file_meta", None)
        transfer_syntax = original.get("TransferSyntaxUID") if original is not None else None
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = dataset.SOPClassUID
        meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        # Implicit VR is rewritten as explicit (the PHI gate then reads the bytes directly)
        meta.TransferSyntaxUID = (
            ExplicitVRLittleEndian if transfer_syntax in (None, ImplicitVRLittleEndian) else transfer_syntax
        )
        dataset.file_meta = meta
        dataset.preamble = b"\x00" * 128
        buffer = BytesIO()
        dcmwrite(buffer, dataset, enforce_file_format=True)
        return buffer.getvalue()
