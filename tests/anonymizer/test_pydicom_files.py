"""Every file among pydicom's shipped test files that pydicom reads is de-identified or quarantined.

Each output reads back with pydicom and with dcmtk's ``dcmdump``; a quarantine must give its reason.
"""

from __future__ import annotations

import subprocess
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_files

from anonymizer.engine import Deidentifier

pytestmark = pytest.mark.slow


def test_pydicom_test_files(research: Deidentifier, tmp_path: Path) -> None:
    readable = []
    for name in get_testdata_files():
        try:
            readable.append((Path(name).name, dcmread(name)))
        except Exception:  # noqa: S112 - only files pydicom itself can read are in scope
            continue
    assert len(readable) > 100
    written, quarantined = 0, {}
    for name, dataset in readable:
        outcome = research.deidentify(dataset, name)  # an exception here fails the test
        if outcome.encoded is None:
            assert outcome.report.quarantined, name
            quarantined[name] = outcome.report.quarantined
            continue
        dcmread(BytesIO(outcome.encoded))
        path = tmp_path / f"{written}.dcm"
        path.write_bytes(outcome.encoded)
        dump = subprocess.run(["dcmdump", "-q", str(path)], capture_output=True, text=True, errors="replace")
        assert dump.returncode == 0 and "E:" not in dump.stderr, (name, dump.stderr[:500])
        written += 1
    # Quarantined, with their reasons: objects without SOP UIDs (DICOMDIRs, bare datasets), at-risk
    # pixel data pydicom cannot decode, and an image whose OCR still reads text after redaction.
    assert written >= 140, quarantined
    reasons = set(quarantined.values())
    assert all(
        r.startswith(("the object has no SOP", "pixel data at risk", "burned-in text remains"))
        for r in reasons
    ), reasons
