"""DICOMweb: WADO-RS series retrieval and QIDO-RS study search, the appliance vs Orthanc, one run.

- WADO-RS: one series of ``--slices`` 512x512 CT instances, sent to both by C-STORE, retrieved
  whole (``multipart/related; type="application/dicom"; transfer-syntax=*``: as stored, no
  transcoding on either side) by the same httpx client, ``--rounds`` times alternated; the
  appliance decrypts every instance as it streams it.
- QIDO-RS: ``--studies`` one-instance studies (small images, random names, IDs and dates) sent to
  both, then four searches (all studies; a name wildcard; one patient ID; a date range), each
  ``--rounds`` times alternated after one untimed warm-up query per server (the appliance reads
  each study's summary from the store once, then from its encrypted table and memory).
- Worklist: the clinicians' worklist page over the same studies (all of them filtered and sorted
  by date on the server, the first 50 rendered as HTML, AI states included) against Orthanc's REST
  listing of every study with its main tags (``/studies?expand``), each ``--rounds`` times.

Peers in their best documented configuration: Orthanc as Debian ships it with its DICOMweb plugin
(``orthanc-dicomweb``), ``TCP_NODELAY=1`` (its DCMTK server needs it on loopback); the appliance on
its embedded defaults (SQLite, local encrypted store), a signed-in clinician's bearer token.

    python benchmarks/dicomweb.py [--slices 200] [--studies 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydicom.uid import generate_uid  # noqa: E402

from testbed.accounts import enrol  # noqa: E402
from testbed.dcmtk import storescu_parallel  # noqa: E402
from testbed.dicomweb_peers import appliance_and_orthanc  # noqa: E402
from testbed.synthetic import FakePatient, ct_series, write_series  # noqa: E402

SERIES_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def timed_get(client: httpx.Client, url: str, headers: dict) -> tuple[float, int]:
    started = time.perf_counter()
    size = 0
    with client.stream("GET", url, headers=headers, timeout=600) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            size += len(chunk)
    return time.perf_counter() - started, size


def studies(folder: Path, count: int) -> list[Path]:
    rng = random.Random(7)
    files = []
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for index in range(count):
        name = f"{rng.choice(letters)}{''.join(rng.choices(letters.lower(), k=7))}^{rng.choice(letters)}test"
        patient = FakePatient(name, f"PID{index:06d}", f"19{rng.randint(30, 99)}0{rng.randint(1, 9)}15")
        (dataset,) = ct_series(1, patient, size=8, seed=index, study_uid=generate_uid())
        dataset.StudyDate = f"20{rng.randint(15, 25)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        files += write_series(folder / f"s{index:05d}", [dataset])
    return files


def report(label: str, ours: list[float], theirs: list[float]) -> None:
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"{label:38s} appliance {a:8.3f} s  orthanc {b:8.3f} s  appliance/orthanc speed {b / a:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--studies", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        with appliance_and_orthanc(root) as (home, appliance, orthanc):
            token = enrol(home, appliance.base_url, "bench", "clinician").token(appliance.base_url)
            ours_headers = {"Authorization": f"Bearer {token}"}
            series = ct_series(args.slices, size=512, seed=1)
            storescu_parallel(appliance.dicom_port, write_series(root / "series", series), "APPLIANCE")
            storescu_parallel(orthanc.dicom_port, sorted((root / "series").iterdir()), "ORTHANC")
            study, uid = series[0].StudyInstanceUID, series[0].SeriesInstanceUID
            ours_url = f"{appliance.base_url}/dicomweb/studies/{study}/series/{uid}"
            theirs_url = f"http://127.0.0.1:{orthanc.http_port}/dicom-web/studies/{study}/series/{uid}"
            client = httpx.Client()
            ours, theirs = [], []
            for _ in range(args.rounds):
                seconds, our_bytes = timed_get(client, ours_url, {**ours_headers, "Accept": SERIES_ACCEPT})
                ours.append(seconds)
                seconds, their_bytes = timed_get(client, theirs_url, {"Accept": SERIES_ACCEPT})
                theirs.append(seconds)
            print(f"WADO-RS series of {args.slices} 512x512 CT: {our_bytes / 1e6:.1f} MB (appliance), "
                  f"{their_bytes / 1e6:.1f} MB (orthanc)")  # fmt: skip
            report("WADO-RS series retrieval (median)", ours, theirs)

            storescu_parallel(appliance.dicom_port, studies(root / "studies", args.studies), "APPLIANCE")
            storescu_parallel(orthanc.dicom_port, sorted((root / "studies").rglob("*.dcm")), "ORTHANC")
            queries = {
                "all studies": "",
                "PatientName=M*": "PatientName=M*",
                "PatientID=PID000123": "PatientID=PID000123",
                "StudyDate=20200101-20201231": "StudyDate=20200101-20201231",
            }
            json_accept = {"Accept": "application/dicom+json"}
            for name, query in queries.items():
                ours_q = f"{appliance.base_url}/dicomweb/studies?{query}"
                theirs_q = f"http://127.0.0.1:{orthanc.http_port}/dicom-web/studies?{query}"
                cold = timed_get(client, ours_q, {**ours_headers, **json_accept})[0]
                timed_get(client, theirs_q, json_accept)
                ours, theirs = [], []
                for _ in range(args.rounds):
                    ours.append(timed_get(client, ours_q, {**ours_headers, **json_accept})[0])
                    theirs.append(timed_get(client, theirs_q, json_accept)[0])
                found = client.get(ours_q, headers={**ours_headers, **json_accept})
                count = len(found.json()) if found.status_code == 200 else 0  # 204: none matched
                report(f"QIDO {name} ({count} of {args.studies + 1})", ours, theirs)
                if name == "all studies":
                    print(f"  (the appliance's first search, reading each study's summary: {cold:.2f} s)")
            page = {**ours_headers, "Accept": "text/html"}
            listing = f"http://127.0.0.1:{orthanc.http_port}/studies?expand"
            ours, theirs = [], []
            for _ in range(args.rounds):  # alternated
                ours.append(timed_get(client, f"{appliance.base_url}/worklist", page)[0])
                theirs.append(timed_get(client, listing, {})[0])
            report(f"worklist page vs REST listing ({args.studies + 1})", ours, theirs)


if __name__ == "__main__":
    main()
