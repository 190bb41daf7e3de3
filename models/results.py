"""Results as DICOM: a Segmentation on the source grid and a TID 1500 SR with segment volumes.

The SEG (highdicom) references the source images frame by frame, so its frames lie exactly on
them; segment labels and SNOMED CT codes come from the bundle (:mod:`models.codes`). The SR is a
Comprehensive 3D SR holding a TID 1500 Measurement Report with one volumetric group per segment
that references the SEG's segment and gives its volume in mL.
"""

from __future__ import annotations

from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from models.bundle import Segment
from models.codes import Concept
from models.errors import ModelError
from models.identity import ModelIdentity
from models.volume import Volume, build_volume

MANUFACTURER = "imaging-appliance"
MILLILITRE = hd.sr.CodedConcept("mL", "UCUM", "milliliter")
SEG_SERIES_NUMBER = 9001
SR_SERIES_NUMBER = 9002
_PROCEDURES = {"CT": codes.LN.CTUnspecifiedBodyRegion, "MR": codes.LN.MRIUnspecifiedBodyRegion}


@dataclass(frozen=True)
class Results:
    segmentation: Dataset
    report: Dataset
    volumes_ml: dict[str, float]  # segment label -> volume


def _coded(concept: Concept) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(concept.value, concept.scheme, concept.meaning)


def _algorithm(model: ModelIdentity) -> hd.AlgorithmIdentificationSequence:
    return hd.AlgorithmIdentificationSequence(
        name=model.name, version=model.version, family=codes.cid7162.ArtificialIntelligence
    )


def _frames_in_source_order(volume: Volume, labels: np.ndarray) -> tuple[list[Dataset], np.ndarray]:
    """Source images and one label frame per source frame, in the order highdicom expects: a view
    of ``labels`` for single-frame images (no copy of the labels held beside them)."""
    sources = volume.source_images
    if len(sources) == len(volume.frames):  # single-frame images: one per slice, in slice order
        order = list(range(len(volume.frames)))
        sources = [frame.dataset for frame in volume.frames]
    elif len(sources) == 1:  # one multi-frame image: its frames in frame order
        order = sorted(range(len(volume.frames)), key=lambda k: volume.frames[k].frame)
    else:
        raise ModelError("a SEG over several multi-frame images is not supported; send one object per series")
    images = volume.frame_images(labels.astype(np.uint8, copy=False))
    return sources, images if order == list(range(len(order))) else images[order]


def _renumbered(stack: np.ndarray, segments: tuple[Segment, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Labels as SEG segment numbers (1, 2, ... in the segments' order; 0 for none of them), and
    the indices of the frames that have any segment."""
    numbers = [segment.number for segment in segments]
    highest = stack.max(axis=(1, 2))  # each frame's: one pass over the labels
    if numbers != list(range(1, len(numbers) + 1)) or int(highest.max(initial=0)) > len(numbers):
        segment_numbers = np.zeros(max(max(numbers, default=0) + 1, 256), dtype=np.uint8)  # label -> segment
        for index, segment in enumerate(segments, start=1):
            segment_numbers[segment.number] = index
        stack = segment_numbers[stack]
        highest = stack.max(axis=(1, 2))
    # else already numbered so (the common case): the labels themselves, no copy
    return stack, np.flatnonzero(highest)


_COMPARED_SEGMENTS = 12  # up to this many, each frame is counted by comparisons, else by bincount


def _voxels_per_segment(stack: np.ndarray, occupied: np.ndarray, count: int) -> np.ndarray:
    """Voxels of each segment number 1..count (index 0 unused), counted in the occupied frames
    only (a lesion's few frames of a CT), frame by frame (no whole-volume mask): one comparison
    per segment while there are few segments, one bincount past that."""
    voxels = np.zeros(count + 1, dtype=np.int64)
    for frame in (stack[index] for index in occupied):
        if count > _COMPARED_SEGMENTS:
            voxels[1:] += np.bincount(frame.ravel(), minlength=count + 1)[1 : count + 1]
        else:
            voxels[1:] += [np.count_nonzero(frame == number) for number in range(1, count + 1)]
    return voxels


def write_results(
    volume: Volume, labels: np.ndarray, segments: tuple[Segment, ...], model: ModelIdentity
) -> Results:
    sources, stack = _frames_in_source_order(volume, labels)
    algorithm = _algorithm(model)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=index,
            segment_label=segment.label,
            segmented_property_category=_coded(segment.code.category),
            segmented_property_type=_coded(segment.code.type),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            tracking_uid=generate_uid(),
            tracking_id=f"{model.name} {segment.label}",
        )
        for index, segment in enumerate(segments, start=1)
    ]
    renumbered, occupied = _renumbered(stack, segments)
    del stack
    segmentation = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=renumbered,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=model.name,
        software_versions=model.version,
        device_serial_number="1",
        series_description=_series_description(model, "segmentation"),
        content_description=_content_description(model),
        omit_empty_frames=occupied.size > 0,  # highdicom refuses to omit every frame
    )
    voxels = _voxels_per_segment(renumbered, occupied, len(segments))
    volumes = {
        segment.label: float(voxels[index]) * volume.voxel_volume_ml
        for index, segment in enumerate(segments, start=1)
    }
    report = _report(segmentation, segments, volumes, model, sources[0])
    return Results(segmentation, report, volumes)


_NOT_CLINICAL = " (NOT FOR CLINICAL USE)"


def _series_description(model: ModelIdentity, what: str) -> str:
    """``<model> <what>``, marked when the model is not for clinical use; 64 characters at most
    (LO), the mark kept whole."""
    tail = f" {what}" + ("" if model.for_clinical_use else _NOT_CLINICAL)
    return model.name[: 64 - len(tail)] + tail


def _content_description(model: ModelIdentity) -> str:
    """The SEG's Content Description (64 characters at most): the model, and its declared use."""
    text = f"{model.name} {model.version}" + (": NOT FOR CLINICAL USE" if not model.for_clinical_use else "")
    return text[:64]


def _report(
    segmentation: Dataset,
    segments: tuple[Segment, ...],
    volumes: dict[str, float],
    model: ModelIdentity,
    source: Dataset,
) -> Dataset:
    source_series_uid, modality = source.SeriesInstanceUID, str(source.get("Modality", ""))
    named = model.name if model.for_clinical_use else f"{model.name}{_NOT_CLINICAL}"  # in the SR's content
    algorithm = hd.sr.AlgorithmIdentification(name=named, version=model.version)
    groups = [
        hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=segment.label),
            referenced_segment=hd.sr.ReferencedSegment(
                segmentation.SOPClassUID,
                segmentation.SOPInstanceUID,
                index,
                source_series=hd.sr.SourceSeriesForSegmentation(source_series_uid),
            ),
            finding_type=_coded(segment.code.type),
            finding_category=_coded(segment.code.category),
            algorithm_id=algorithm,
            measurements=[
                hd.sr.Measurement(
                    name=codes.SCT.Volume,
                    value=round(volumes[segment.label], 3),
                    unit=MILLILITRE,
                    algorithm_id=algorithm,
                )
            ],
        )
        for index, segment in enumerate(segments, start=1)
    ]
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(),
        procedure_reported=_PROCEDURES.get(modality, codes.LN.CTUnspecifiedBodyRegion),
        imaging_measurements=groups,
    )
    return hd.sr.Comprehensive3DSR(
        evidence=[segmentation],
        content=report,
        series_instance_uid=generate_uid(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        series_description=_series_description(model, "measurements"),
    )


def _warm_up_slice(index: int, study: str, series: str, frame_of_reference: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_of_reference
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "WARM^UP", "WARMUP", "", "O"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.ReferringPhysicianName = "20000101", "000000", "", ""
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber, ds.Modality = "1", 1, index + 1, "CT"
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0.0, 0.0, float(index)], [1.0, 0, 0, 0, 1.0, 0]
    ds.PixelSpacing, ds.SliceThickness = [1.0, 1.0], 1.0
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = bytes(32)
    return ds


def warm_up(segments: tuple[Segment, ...]) -> None:
    """Write results once for a synthetic 4x4x2 series: highdicom and pydicom load their tables
    of the standard and compile their value patterns on first use (about a second), which the
    first real series would otherwise wait for."""
    study, series, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
    volume = build_volume([_warm_up_slice(i, study, series, frame_of_reference) for i in range(2)])
    labels = np.zeros(volume.array.shape, dtype=np.uint8)
    labels[1:3, 1:3, :] = segments[0].number
    write_results(volume, labels, segments, ModelIdentity("warm-up", "0", ""))
