"""IHE ATNA shipping: every audit entry as a DICOM audit message over syslog on TLS (RFC 5425).

The log itself is the durable spool: a cursor file remembers the next entry to send (index and
byte offset), advanced only after the receiver took the messages, so a receiver that was down
gets everything when it comes back. Messages are RFC 5424 with octet-counting framing.
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

log = logging.getLogger(__name__)

_PRIORITY = 10 * 8 + 5  # facility authpriv (10), severity notice (5)
_MSGID = "IHE+RFC-3881"


@dataclass(frozen=True)
class Receiver:
    host: str
    port: int
    tls: ssl.SSLContext


def frame(entry: dict, app_name: str, source_id: str) -> bytes:
    """One entry as an octet-counted RFC 5424 message whose body is the audit XML."""
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    header = f"<{_PRIORITY}>1 {stamp} {socket.gethostname()} {app_name} {os.getpid()} {_MSGID} - "
    message = header.encode() + "\ufeff".encode() + to_xml(entry, source_id).encode()
    return f"{len(message)} ".encode() + message


class SyslogForwarder:
    def __init__(
        self, directory: Path, key: bytes, cursor: Path, receiver: Receiver, app_name: str, source_id: str
    ) -> None:
        self.directory = directory
        self.cursor = cursor
        self.receiver = receiver
        self.app_name = app_name
        self.source_id = source_id
        self._aead = AESGCM(key)
        self._connection: ssl.SSLSocket | None = None

    def _position(self) -> tuple[int, int]:
        if not self.cursor.exists():
            return 0, 0
        saved = json.loads(self.cursor.read_text())
        return saved["index"], saved["offset"]

    def _save(self, index: int, offset: int) -> None:
        tmp = self.cursor.with_suffix(".tmp")
        tmp.write_text(json.dumps({"index": index, "offset": offset}))
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, self.cursor)

    def _connect(self) -> ssl.SSLSocket:
        if self._connection is None:
            raw = socket.create_connection((self.receiver.host, self.receiver.port), timeout=10)
            self._connection = self.receiver.tls.wrap_socket(raw, server_hostname=self.receiver.host)
        return self._connection

    def pump(self, stop: threading.Event | None = None) -> int:
        """Send every entry after the cursor; return how many went. Raises OSError if unreachable."""
        index, offset = self._position()
        sent = 0
        try:
            for record in read_records(self.directory / ENTRIES, offset, index):
                if stop is not None and stop.is_set():
                    break
                self._connect().sendall(frame(decrypt(record, self._aead), self.app_name, self.source_id))
                index, offset = record.index + 1, record.end
                sent += 1
        except OSError:
            self.close()
            raise
        finally:
            if sent:
                self._save(index, offset)
        return sent

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None
