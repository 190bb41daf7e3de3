"""The JSON log: a library's record is scrubbed of the values it quotes; an exception keeps its
type and frames (its message only from our own modules, which never put PHI in one)."""

from __future__ import annotations

import json
import logging
import logging.handlers
import warnings

from appliance.runtime.logs import JsonFormatter, PlainFormatter, ScrubLibraryRecords


def _formatted(logger: str, formatter: logging.Formatter, **kwargs: object) -> str:
    record = logging.getLogger(logger).makeRecord(logger, logging.ERROR, "x.py", 1, "%s", ("",), None)
    record.__dict__.update(kwargs)
    ScrubLibraryRecords().filter(record)
    return formatter.format(record)


def _failure() -> tuple:
    try:
        raise ValueError("Quixlebottom^Wilhelmina PID7382049")
    except ValueError as exc:
        return (type(exc), exc, exc.__traceback__)


def test_a_library_record_and_its_exception_lose_their_values_but_keep_type_and_frames():
    line = json.loads(
        _formatted(
            "uvicorn.error",
            JsonFormatter(),
            msg="Exception in ASGI application for '%s'",
            args=("Quixlebottom",),
            exc_info=_failure(),
        )  # fmt: skip
    )
    assert "Quixlebottom" not in json.dumps(line)
    assert line["message"] == "Exception in ASGI application for …"
    assert line["exception"]["type"] == "ValueError" and "message" not in line["exception"]
    assert line["exception"]["frames"][-1].startswith("test_logs.py:")
    plain = _formatted("uvicorn.error", PlainFormatter(), msg="boom", args=(), exc_info=_failure())
    assert "Quixlebottom" not in plain and "ValueError" in plain and "test_logs.py" in plain


def test_our_own_records_keep_their_text_and_exception_message():
    line = json.loads(
        _formatted("appliance.server", JsonFormatter(), msg="series %s", args=("1.2.3",), exc_info=_failure())
    )
    assert line["message"] == "series 1.2.3"
    assert line["exception"]["message"] == "Quixlebottom^Wilhelmina PID7382049"  # ours: never PHI in practice


def test_a_captured_warning_keeps_its_category_and_place_not_its_values():
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        text = warnings.formatwarning(
            "Invalid value for VR UI: 'Quixlebottom^Wilhelmina PID7382049'",
            UserWarning,
            "/lib/pydicom/valuerep.py",
            440,
        )
    line = json.loads(_formatted("py.warnings", JsonFormatter(), msg="%s", args=(text,)))
    assert line["message"] == "UserWarning at pydicom/valuerep.py:440: Invalid value for VR UI: …"


def test_a_librarys_chatter_below_warning_is_dropped_and_ours_kept():
    library = logging.getLogger("highdicom").makeRecord(
        "highdicom", logging.INFO, "x.py", 1, "loaded", (), None
    )
    ours = logging.getLogger("appliance.server").makeRecord(
        "appliance.server", logging.INFO, "x.py", 1, "hi", (), None
    )
    assert ScrubLibraryRecords().filter(library) is False
    assert ScrubLibraryRecords().filter(ours) is True


def test_the_serving_process_rotates_its_log_and_the_others_follow(tmp_path):
    from appliance.runtime import logs

    logs.configure(tmp_path, "INFO", rotates=True)
    try:
        rotating = next(
            h for h in logging.getLogger().handlers if isinstance(h, logging.handlers.RotatingFileHandler)
        )
        assert rotating.maxBytes == logs.ROTATE_BYTES and rotating.backupCount == logs.ROTATE_KEEP
        logs.configure(tmp_path, "INFO")
        assert any(isinstance(h, logging.handlers.WatchedFileHandler) for h in logging.getLogger().handlers)
    finally:
        for handler in logging.getLogger().handlers:
            handler.close()
        logging.getLogger().handlers.clear()
        logging.captureWarnings(False)
