"""The reviewed rule for public attributes that Table E.1-1 does not list.

Kept when the image or object stays unusable without them: whole groups that hold acquisition
parameters, geometry, image presentation and pixel data, segmentation, surfaces, presentation states,
RT objects and functional groups; and, from the identifying groups (0008, 0040 and others), only the
attributes named below (object type, codes, references and the SR content-tree structure). Everything
else is removed. Text that is kept this way is still scrubbed, and a person name is always replaced.
"""

from __future__ import annotations

from pydicom.datadict import keyword_for_tag
from pydicom.tag import BaseTag

KEEP_GROUPS = frozenset(
    {
        0x0018,  # acquisition parameters (the identifying ones are in the table)
        0x0020,  # geometry, relationship (UIDs and IDs are in the table)
        0x0022,  # ophthalmic acquisition
        0x0028,  # image pixel and presentation
        0x0054,  # nuclear medicine
        0x0062,  # segmentation
        0x0066,  # surfaces
        0x0070,  # presentation state and graphic annotation
        0x3004,  # RT dose
        0x3006,  # RT structure set
        0x300A,  # RT plan
        0x300C,  # RT relationships
        0x5200,  # functional groups (enhanced objects)
        0x7FE0,  # pixel data
    }
)

KEEP_KEYWORDS = frozenset(
    {
        # object type and character set
        "SpecificCharacterSet",
        "ImageType",
        "SOPClassUID",
        "Modality",
        "ConversionType",
        "PresentationIntentType",
        "PixelPresentation",
        "VolumetricProperties",
        "VolumeBasedCalculationTechnique",
        "ComplexImageComponent",
        "AcquisitionContrast",
        # codes (any code sequence item)
        "CodeValue",
        "CodingSchemeDesignator",
        "CodingSchemeVersion",
        "CodeMeaning",
        "MappingResource",
        "ContextGroupVersion",
        "ContextIdentifier",
        "ContextUID",
        "LongCodeValue",
        "URNCodeValue",
        "AnatomicRegionSequence",
        "AnatomicRegionModifierSequence",
        "PrimaryAnatomicStructureSequence",
        "DerivationCodeSequence",
        "PurposeOfReferenceCodeSequence",
        # references (their instance UIDs are remapped by the table)
        "ReferencedSOPClassUID",
        "ReferencedFrameNumber",
        "ReferencedSeriesSequence",
        "ReferencedSOPSequence",
        "ReferencedInstanceSequence",
        # SR content tree (its text is scrubbed)
        "ValueType",
        "ConceptNameCodeSequence",
        "ConceptCodeSequence",
        "RelationshipType",
        "ContinuityOfContent",
        "TextValue",
        "NumericValue",
        "FloatingPointValue",
        "MeasuredValueSequence",
        "MeasurementUnitsCodeSequence",
        "NumericValueQualifierCodeSequence",
        "ContentTemplateSequence",
        "TemplateIdentifier",
        "CompletionFlag",
        "VerificationFlag",
        "PreliminaryFlag",
        "ReferencedContentItemIdentifier",
        "CurrentRequestedProcedureEvidenceSequence",
        "PertinentOtherEvidenceSequence",
        # encapsulated documents (the document itself is replaced: Table E.1-1 says D)
        "MIMETypeOfEncapsulatedDocument",
        "DocumentTitle",
        # de-identification record (written by the engine)
        "PatientIdentityRemoved",
        "DeidentificationMethod",
        "DeidentificationMethodCodeSequence",
    }
)


def keep(tag: BaseTag) -> bool:
    """Whether a public attribute that the table does not list is kept."""
    return tag.group in KEEP_GROUPS or keyword_for_tag(tag) in KEEP_KEYWORDS
