"""The appliance and Orthanc side by side for the HTTP benchmarks: each in a folder of ``root``, the
appliance with inference off (no model competes for the CPU), Orthanc with its DICOMweb plugin."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from testbed.processes import ApplianceProcess, OrthancProcess, run_cli

# no inference, and no free-space reserve (a benchmark's scratch folder may be on a small disk)
QUIET = {"APPLIANCE_INFERENCE__ENABLED": "false", "APPLIANCE_DICOM__MIN_FREE_BYTES": str(1024**2)}
ORTHANC_DICOMWEB = {
    "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
    "DicomWeb": {"Enable": True},
}


@contextmanager
def appliance_and_orthanc(root: Path) -> Iterator[tuple[Path, ApplianceProcess, OrthancProcess]]:
    """(the appliance's home, the appliance, Orthanc), both running; the source ``SCU`` allowed."""
    home = root / "home"
    run_cli(home, "init")
    run_cli(home, "sources", "add", "bench", "--ae", "SCU", "--host", "127.0.0.1")
    appliance = ApplianceProcess(home, root / "appliance.log", QUIET).start()
    try:
        orthanc = OrthancProcess(root / "orthanc").start(ORTHANC_DICOMWEB)
        try:
            yield home, appliance, orthanc
        finally:
            orthanc.stop()
    finally:
        appliance.stop()
