"""IHE ATNA shipping: every audit entry as a DICOM audit message over syslog on TLS (RFC 5425).

The log itself is the durable spool: a cursor file remembers the next entry to send (index and
byte offset), advanced only after the receiver took the messages, so a receiver that was down
gets everything when it comes back. Messages are RFC 5424 with octet-counting framing.

Given the witness file, the forwarder also ships every signed checkpoint (MSGID ``checkpoint``),
so the SIEM becomes a second witness that the appliance's own disk cannot roll back.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from audit.atna import to_xml
from audit.log import ENTRIES, read_records
from audit.reader import decrypt
from durable import write_durably

log = logging.getLogger(__name__)

_PRIORITY = 10 * 8 + 5  # facility authpriv (10), severity notice (5)
_MSGID = "IHE+RFC-3881"


@dataclass(frozen=True)
class Receiver:
    host: str
    port: int
    tls: ssl.SSLContext


def frame(body: str, app_name: str, message_id: str = _MSGID) -> bytes:
    """An octet-counted RFC 5424 message (UTF-8 body with its BOM)."""
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    header = f"<{_PRIORITY}>1 {stamp} {socket.gethostname()} {app_name} {os.getpid()} {message_id} - "
    message = header.encode() + "\ufeff".encode() + body.encode()
    return f"{len(message)} ".encode() + message


class SyslogForwarder:
    def __init__(
        self,
        directory: Path,
        key: bytes,
        cursor: Path,
        receiver: Receiver,
        app_name: str,
        source_id: str,
        witness: Path | None = None,
    ) -> None:
        self.directory = directory
        self.witness = witness
        self.cursor = cursor
        self.receiver = receiver
        self.app_name = app_name
        self.source_id = source_id
        self._aead = AESGCM(key)
        self._connection: ssl.SSLSocket | None = None

    def _position(self) -> dict[str, int]:
        saved = json.loads(self.cursor.read_text()) if self.cursor.exists() else {}
        return {"index": 0, "offset": 0, "checkpoints": 0, **saved}

    def _save(self, position: dict[str, int]) -> None:
        write_durably(self.cursor, json.dumps(position).encode())

    def _connect(self) -> ssl.SSLSocket:
        if self._connection is None:
            raw = socket.create_connection((self.receiver.host, self.receiver.port), timeout=10)
            self._connection = self.receiver.tls.wrap_socket(raw, server_hostname=self.receiver.host)
        return self._connection

    def pump(self, stop: threading.Event | None = None) -> int:
        """Send every entry (and checkpoint) after the cursor; return how many entries went.

        Raises OSError while the receiver is unreachable; the cursor keeps what was sent.
        """
        position = self._position()
        start = dict(position)
        try:
            for record in read_records(self.directory / ENTRIES, position["offset"], position["index"]):
                if stop is not None and stop.is_set():
                    break
                xml = to_xml(decrypt(record, self._aead), self.source_id)
                self._connect().sendall(frame(xml, self.app_name))
                position.update(index=record.index + 1, offset=record.end)
            notes = self.witness.read_text().splitlines() if self.witness and self.witness.exists() else []
            for line in notes[position["checkpoints"] :]:
                self._connect().sendall(frame(json.loads(line)["note"], self.app_name, "checkpoint"))
                position["checkpoints"] += 1
        except OSError:
            self.close()
            raise
        finally:
            if position != start:
                self._save(position)
        return position["index"] - start["index"]

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None
