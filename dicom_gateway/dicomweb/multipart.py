"""``multipart/related`` bodies (RFC 2387, PS3.18 8.6.1.2), produced part by part as a stream."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterable


def boundary() -> str:
    return f"appliance-{secrets.token_hex(16)}"


def content_type(part_type: str, boundary_value: str, transfer_syntax: str | None = None) -> str:
    syntax = f"; transfer-syntax={transfer_syntax}" if transfer_syntax else ""
    return f'multipart/related; type="{part_type}"; boundary={boundary_value}{syntax}'


def _head(part_type: str, boundary_value: str) -> bytes:
    return f"--{boundary_value}\r\nContent-Type: {part_type}\r\n\r\n".encode()


def _close(boundary_value: str) -> bytes:
    return f"--{boundary_value}--\r\n".encode()


def length(sizes: Iterable[int], part_type: str, boundary_value: str) -> int:
    """The length of the body ``stream`` makes of parts of these sizes: sent as Content-Length, it
    spares the chunked framing (and its copy of every part) when the parts' sizes are known."""
    head = len(_head(part_type, boundary_value))
    return sum(head + size + 2 for size in sizes) + len(_close(boundary_value))


async def stream(parts: Iterable[bytes], part_type: str, boundary_value: str) -> AsyncIterator[bytes]:
    """Each part as it comes (a series is never held whole), then the closing delimiter.

    Asynchronous, with each part made in the event loop (reading and decrypting one instance takes
    about a tenth of a millisecond per 512 KiB): a synchronous iterator would cost a hop to a worker
    thread and back per part. The part is yielded apart from its header, not copied after it.
    ``benchmarks/dicomweb.py`` gives the figures."""
    head, between = _head(part_type, boundary_value), b""
    for part in parts:
        yield between + head  # the previous part's line end with this one's header: one send, not two
        yield part
        between = b"\r\n"
    yield between + _close(boundary_value)
