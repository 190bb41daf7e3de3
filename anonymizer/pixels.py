"""Burned-in text: find it with Tesseract and black out its boxes in the pixel data.

Objects at risk (ultrasound, secondary capture, XA/RF, CR/DX/MG/IO, photographs, and anything whose
Burned In Annotation is YES) have every frame read by Tesseract (sparse-text mode). Every word it
reports is blacked out with a margin, whatever its confidence (over-redaction is safe). The redacted
frame is read again: text still found with confidence means the object is quarantined, as is an
at-risk object whose pixel data cannot be decoded. The result is written uncompressed (Explicit VR
Little Endian), so any compressed input gives a valid output; pixels outside the boxes are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian

from anonymizer.errors import Quarantined

AT_RISK_MODALITIES = {"US", "XA", "RF", "CR", "DX", "MG", "IO", "PX", "ES", "XC", "GM", "SM", "OT", "DOC"}
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
_MARGIN = 3
_CONFIDENT = 60.0


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    width: int
    height: int


def at_risk(dataset: Dataset) -> bool:
    return (
        str(dataset.get("BurnedInAnnotation", "")).upper() == "YES"
        or str(dataset.get("Modality", "")).upper() in AT_RISK_MODALITIES
        or str(dataset.get("SOPClassUID", "")).startswith(SECONDARY_CAPTURE_PREFIX)
    )


def _as_grey8(frame: np.ndarray, inverted: bool) -> np.ndarray:
    grey = frame.mean(axis=-1) if frame.ndim == 3 else frame.astype(np.float64)
    low, high = float(grey.min()), float(grey.max())
    scaled = (
        np.zeros(grey.shape, np.uint8)
        if high <= low
        else ((grey - low) * (255.0 / (high - low))).astype(np.uint8)
    )
    return 255 - scaled if inverted else scaled


def find_text(image: np.ndarray) -> list[tuple[Box, float, str]]:
    """Words Tesseract finds in an 8-bit image: box, confidence and text (kept in memory only)."""
    import pytesseract
    from PIL import Image

    data = pytesseract.image_to_data(
        Image.fromarray(image), config="--psm 11", output_type=pytesseract.Output.DICT
    )
    words = []
    for i, text in enumerate(data["text"]):
        if text.strip() and any(c.isalnum() for c in text):
            box = Box(data["left"][i], data["top"][i], data["width"][i], data["height"][i])
            words.append((box, float(data["conf"][i]), text))
    return words


def _blackout(frame: np.ndarray, boxes: list[Box], fill: float) -> None:
    rows, columns = frame.shape[:2]
    for box in boxes:
        top, left = max(box.top - _MARGIN, 0), max(box.left - _MARGIN, 0)
        bottom = min(box.top + box.height + _MARGIN, rows)
        right = min(box.left + box.width + _MARGIN, columns)
        frame[top:bottom, left:right] = fill


def redact_frame(frame: np.ndarray, inverted: bool = False) -> list[Box]:
    """Black out every word found in ``frame`` (in place); quarantine if text is still found after."""
    image = _as_grey8(frame, inverted)
    boxes = [box for box, _, _ in find_text(image)]
    if boxes:
        _blackout(frame, boxes, frame.min())
        remaining = [w for w in find_text(_as_grey8(frame, inverted)) if w[1] >= _CONFIDENT]
        if remaining:
            raise Quarantined(f"burned-in text remains after redaction ({len(remaining)} words found again)")
    return boxes


def redact_pixels(dataset: Dataset) -> int:
    """Redact burned-in text in every frame of ``dataset``; the number of boxes blacked out."""
    if "PixelData" not in dataset:
        return 0
    try:
        pixels = dataset.pixel_array
    except Exception as error:  # any decoder failure: the object cannot be checked
        raise Quarantined(
            f"pixel data at risk of burned-in text cannot be decoded ({type(error).__name__})"
        ) from None
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    samples = int(dataset.get("SamplesPerPixel", 1))
    stack = pixels.copy() if frames > 1 else pixels[np.newaxis].copy()
    if stack.ndim != (4 if samples > 1 else 3):
        raise Quarantined(f"pixel data of shape {pixels.shape} cannot be redacted")
    inverted = str(dataset.get("PhotometricInterpretation", "")) == "MONOCHROME1"
    count = sum(len(redact_frame(frame, inverted)) for frame in stack)
    if count:
        photometric = "RGB" if samples > 1 else str(dataset.PhotometricInterpretation)
        dataset.set_pixel_data(
            stack if frames > 1 else stack[0],
            photometric,
            int(dataset.BitsStored),
            generate_instance_uid=False,
        )
        dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return count


def redact_overlays(dataset: Dataset) -> int:
    """Clear the text Tesseract finds in overlay planes (60xx,3000) bit by bit; boxes cleared."""
    from pydicom.pixels import pack_bits

    count = 0
    for group in range(0x6000, 0x6020, 2):
        if (group, 0x3000) not in dataset:
            continue
        try:
            plane = dataset.overlay_array(group).astype(np.uint8)
        except Exception as error:
            raise Quarantined(
                f"overlay plane {group:04X} cannot be decoded ({type(error).__name__})"
            ) from None
        frames = plane if plane.ndim == 3 else plane[np.newaxis]
        boxes = sum(len(redact_frame(frame)) for frame in frames)
        if boxes:
            dataset[group, 0x3000].value = pack_bits(frames.reshape(-1))
            count += boxes
    return count


_WORD_VRS = {"OW": np.uint16, "OF": np.float32, "OD": np.float64, "OL": np.uint32, "OV": np.uint64}


def to_little_endian(dataset: Dataset) -> None:
    """Re-encode a (retired) big-endian object as Explicit VR Little Endian, pixel data included."""
    meta = getattr(dataset, "file_meta", None)
    if meta is None or meta.get("TransferSyntaxUID") != ExplicitVRBigEndian:
        return
    pixels = None
    if "PixelData" in dataset:
        try:
            pixels = dataset.pixel_array.copy()
        except Exception as error:
            raise Quarantined(f"big-endian pixel data cannot be decoded ({type(error).__name__})") from None
    for element in dataset.iterall():
        dtype = _WORD_VRS.get(element.VR)
        if dtype is not None and element.keyword != "PixelData" and isinstance(element.value, bytes):
            element.value = (
                np.frombuffer(element.value, np.dtype(dtype).newbyteorder(">")).astype(dtype).tobytes()
            )
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if pixels is not None:  # big endian is always native (uncompressed); write it interleaved
        if int(dataset.get("SamplesPerPixel", 1)) > 1:
            dataset.PlanarConfiguration = 0
        dataset.PixelData = pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()
