"""DIMSE command sets for C-ECHO and C-STORE (PS3.7 section 9.3 and Annex E), read and written in
Implicit VR Little Endian as the standard requires of every command set.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from dicom_gateway.pdu import PduRefused, unpadded

C_STORE_RQ, C_ECHO_RQ = 0x0001, 0x0030
_RESPONSE = 0x8000
_NO_DATASET = 0x0101
_ELEMENT = struct.Struct("<HHL")
_US = struct.Struct("<H")
_COMMENT_MAX = 64


@dataclass(frozen=True)
class Command:
    """The fields of a request command set that the SCP reads."""

    command_field: int
    message_id: int
    sop_class_uid: str
    sop_instance_uid: str
    has_dataset: bool


def _us(value: bytes, name: str) -> int:
    if len(value) != 2:
        raise PduRefused(f"DIMSE command with a malformed {name}")
    return int(_US.unpack(value)[0])


def decode_command(data: bytes) -> Command:
    """The request in a command set; PduRefused when it is not a well-formed one."""
    elements: dict[int, bytes] = {}
    view, position = memoryview(data), 0
    while position < len(view):
        if position + _ELEMENT.size > len(view):
            raise PduRefused("truncated DIMSE command")
        group, element, length = _ELEMENT.unpack_from(view, position)
        position += _ELEMENT.size
        if group != 0x0000 or position + length > len(view):
            raise PduRefused("malformed DIMSE command")
        elements[element] = bytes(view[position : position + length])
        position += length
    if 0x0100 not in elements or 0x0800 not in elements:
        raise PduRefused("DIMSE command without its Command Field or Command Data Set Type")
    return Command(
        command_field=_us(elements[0x0100], "Command Field"),
        message_id=_us(elements.get(0x0110, b"\x00\x00"), "Message ID"),
        sop_class_uid=unpadded(elements.get(0x0002, b"")),
        sop_instance_uid=unpadded(elements.get(0x1000, b"")),
        has_dataset=_us(elements[0x0800], "Command Data Set Type") != _NO_DATASET,
    )


def _element(tag: int, value: bytes, pad: bytes = b"\x00") -> bytes:
    if len(value) % 2:
        value += pad
    return _ELEMENT.pack(0x0000, tag, len(value)) + value


def encode_response(request: Command, status: int, comment: str | None = None) -> bytes:
    """The response command set to ``request`` with ``status`` (and an Error Comment, cut to 64)."""
    body = [
        _element(0x0002, request.sop_class_uid.encode("ascii", "replace")),
        _element(0x0100, _US.pack(request.command_field | _RESPONSE)),
        _element(0x0120, _US.pack(request.message_id)),
        _element(0x0800, _US.pack(_NO_DATASET)),
        _element(0x0900, _US.pack(status)),
    ]
    if comment:
        body.append(_element(0x0902, comment[:_COMMENT_MAX].encode("ascii", "replace"), b" "))
    if request.command_field == C_STORE_RQ:
        body.append(_element(0x1000, request.sop_instance_uid.encode("ascii", "replace")))
    command = b"".join(body)
    return _element(0x0000, struct.pack("<L", len(command))) + command
