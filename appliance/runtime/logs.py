"""Structured logging: one JSON object a line, to stderr and ``logs/appliance.log`` in the home.

Our own modules log only UIDs, AE titles, hosts, counts and reasons. Libraries do not keep to
that: pydicom's validation warnings quote the values they found (a UID holding a name and an
MRN), and a library's exception message may hold anything. So every record from outside our
packages, and every Python warning (captured into logging), is scrubbed before any handler sees
it (:class:`ScrubLibraryRecords`): quoted text and every token holding a digit, ``^``, ``@`` or
``=`` become ``…``, and of an exception only its type and the traceback's frames are kept, not
its message. A library's records below WARNING are dropped (highdicom's INFO at each start), and
pynetdicom's below CRITICAL: its debug output dumps datasets and its errors repeat what the gateway
and the sender log themselves.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

OWN_PACKAGES = frozenset(
    {"appliance", "dicom_gateway", "anonymizer", "audit", "models", "durable", "workspace"}
)
WITHHELD = "…"
_QUOTED = re.compile(r"""b?'[^']*'|b?"[^"]*\"""")
_VALUE_LIKE = re.compile(r"[^\s,;:()\[\]]*[\d^@=][^\s,;:()\[\]]*")
_WARNING = re.compile(r"^(?P<file>.*?):(?P<line>\d+): (?P<category>\w+): (?P<text>.*)$", re.DOTALL)


def scrub(text: str) -> str:
    """``text`` without what may be a data value: quoted strings, tokens with digits, ``^``, ``@``, ``=``."""
    return _VALUE_LIKE.sub(WITHHELD, _QUOTED.sub(WITHHELD, text))


def _own(name: str) -> bool:
    return name.split(".", 1)[0] in OWN_PACKAGES


class ScrubLibraryRecords(logging.Filter):
    """Takes the values out of a library's record (and any warning) before a handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "scrubbed", False) or _own(record.name):
            return True
        if record.levelno < logging.WARNING:  # a library's chatter (highdicom's INFO at each start)
            return False
        message = record.getMessage()
        if record.name == "py.warnings":
            found = _WARNING.match(message.strip())
            if found:
                first = found["text"].splitlines()[0] if found["text"] else ""
                where = f"{Path(found['file']).parent.name}/{Path(found['file']).name}:{found['line']}"
                message = f"{found['category']} at {where}: {scrub(first)}"
            else:
                message = scrub(message.splitlines()[0] if message else "")
        else:
            message = scrub(message)
        record.msg, record.args = message, ()
        record.exception_message_withheld = True
        record.scrubbed = True
        return True


def _exception(record: logging.LogRecord) -> dict[str, Any] | None:
    if not record.exc_info or record.exc_info[0] is None:
        return None
    kind, value, tb = record.exc_info
    frames = [
        f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}" for frame in traceback.extract_tb(tb)
    ]
    described: dict[str, Any] = {"type": kind.__name__, "frames": frames}
    if not getattr(record, "exception_message_withheld", False) and _own(record.name):
        described["message"] = str(value)
    return described


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        exception = _exception(record)
        if exception is not None:
            entry["exception"] = exception
        return json.dumps(entry, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """``LEVEL logger: message`` lines; of an exception, its type and frames only (see :func:`_exception`)."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None}))
        exception = _exception(record)
        if exception is not None:
            line += (
                f" [{exception['type']}: {exception.get('message', WITHHELD)}; "
                + " <- ".join(reversed(exception["frames"]))
                + "]"
            )
        return line


def _install(handlers: list[logging.Handler], formatter: logging.Formatter, level: str | int) -> None:
    logging.captureWarnings(True)  # warnings go through the handlers' scrubbing, not straight to stderr
    root = logging.getLogger()
    root.handlers.clear()
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(ScrubLibraryRecords())
        root.addHandler(handler)
    root.setLevel(level)
    # pynetdicom's debug output dumps datasets, and its errors repeat what the gateway and the
    # sender log themselves (each refusal, each failed send with its cause): only its criticals pass
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


LOG_FILE = "appliance.log"
ROTATE_BYTES = 50 * 1024 * 1024
ROTATE_KEEP = 5


def configure(log_dir: Path, level: str, rotates: bool = False) -> None:
    """A serving process: JSON lines to stderr and to the home's log file. One process (``serve``'s
    main, ``rotates``) rolls the file over at 50 MiB, keeping 5; the others reopen it when it does."""
    log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = log_dir / LOG_FILE
    to_file: logging.Handler = (
        logging.handlers.RotatingFileHandler(path, maxBytes=ROTATE_BYTES, backupCount=ROTATE_KEEP)
        if rotates
        else logging.handlers.WatchedFileHandler(path)
    )
    _install([logging.StreamHandler(sys.stderr), to_file], JsonFormatter(), level)


def configure_command() -> None:
    """A command-line command: warnings and library records as plain lines on stderr, scrubbed."""
    _install([logging.StreamHandler(sys.stderr)], PlainFormatter(), "WARNING")
