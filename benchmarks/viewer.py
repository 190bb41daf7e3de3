"""Time to the first image in the viewer: the same OHIF build on the appliance's DICOMweb
(decrypting) and on Orthanc's, measured in the browser, one run.

Each round sends a fresh ``--slices``-slice 512x512 CT study to both, then opens it in OHIF in a
new tab of a warmed browser profile, one per server, kept on disk as a clinician's browser keeps
its profile (the viewer's own code already in its disk cache and V8's code cache: two untimed
rounds put it there, as Chrome caches a script's compiled code at its second load; a fresh in-
memory context would fetch OHIF's 15 MB bundle on every visit) and measures, in the page, the time
from navigation to the first frame in which the viewport's canvas shows the CT
(``performance.now()`` when a sampled pixel of the canvas is lit). Which server goes first
alternates from round to round.

Peers in their best documented configuration: Orthanc as Debian ships it with its DICOMweb plugin
(``orthanc-dicomweb``, its default metadata mode), ``TCP_NODELAY=1``, behind nginx, which serves
OHIF's files and proxies ``/dicom-web/`` with keep-alive connections (the Orthanc book's way to
put OHIF in front of Orthanc: the same origin, no CORS); the appliance on its embedded defaults
serving the viewer itself, a signed-in clinician's session cookie, inference off (no model runs
on the studies while they are viewed). Needs nginx (Debian: ``apt-get install nginx-light``).

    python benchmarks/viewer.py [--slices 200] [--rounds 9] [--screenshots DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.web.pages.viewer import CONFIG, viewer_directory  # noqa: E402
from testbed.accounts import enrol  # noqa: E402
from testbed.browser import chromium_profiles  # noqa: E402
from testbed.dcmtk import storescu_parallel  # noqa: E402
from testbed.dicomweb_peers import appliance_and_orthanc  # noqa: E402
from testbed.processes import free_port, wait_for  # noqa: E402
from testbed.synthetic import FakePatient, ct_series, write_series  # noqa: E402

WARM_UP = 2  # untimed rounds: the bundle into the disk cache, then its compiled code into V8's cache

# the first frame in which a canvas of the viewport shows the image: some sampled pixels lit
FIRST_IMAGE = """() => {
  for (const canvas of document.querySelectorAll("canvas")) {
    if (canvas.width < 128 || canvas.height < 128) continue;
    const context = canvas.getContext("2d");
    if (!context) continue;
    const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
    let lit = 0;
    for (let i = 0; i < pixels.length; i += 4 * 101) if (pixels[i] > 40) lit++;
    if (lit > 100) return performance.now();
  }
  return false;
}"""

NGINX = """worker_processes auto;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
  include /etc/nginx/mime.types;
  types {{ application/wasm wasm; }}
  access_log off;
  sendfile on;
  tcp_nodelay on;
  client_body_temp_path {root}/tmp-body;
  proxy_temp_path {root}/tmp-proxy;
  fastcgi_temp_path {root}/tmp-fastcgi;
  uwsgi_temp_path {root}/tmp-uwsgi;
  scgi_temp_path {root}/tmp-scgi;
  upstream orthanc {{ server 127.0.0.1:{orthanc}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{port};
    root {site};
    location = /viewer/app-config.js {{ alias {root}/app-config.js; }}
    location /viewer/ {{ try_files $uri /viewer/index.html; }}
    location /dicom-web/ {{
      proxy_pass http://orthanc;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }}
    location / {{ root {build}; }}
  }}
}}
"""


def nginx_for_orthanc(root: Path, orthanc_port: int) -> tuple[subprocess.Popen, int]:
    """nginx serving OHIF's build under /viewer/ (and its root assets) and proxying /dicom-web/."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        sys.exit("nginx is needed for Orthanc's side (Debian: apt-get install nginx-light)")
    build = viewer_directory(None).resolve()
    site = root / "site"
    site.mkdir(parents=True)
    (site / "viewer").symlink_to(build)
    config = {**CONFIG, "dataSources": [dict(CONFIG["dataSources"][0])]}
    source = config["dataSources"][0]
    source["configuration"] = {
        **source["configuration"],
        "wadoUriRoot": "/dicom-web",
        "qidoRoot": "/dicom-web",
        "wadoRoot": "/dicom-web",
    }
    (root / "app-config.js").write_text(f"window.config = {json.dumps(config)};\n")
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(NGINX.format(root=root, orthanc=orthanc_port, port=port, site=site, build=build))
    user = "user root;\n" if os.geteuid() == 0 else ""  # its workers must read the private folders here
    conf.write_text(user + conf.read_text())
    process = subprocess.Popen([nginx, "-c", str(conf), "-g", "daemon off;"], stderr=subprocess.DEVNULL)
    return process, port


def first_image_seconds(context, url: str, shot: Path | None) -> float:  # type: ignore[no-untyped-def]
    """Seconds from navigation to the first image; ``shot``: a screenshot then, to see what was found."""
    page = context.new_page()
    try:
        page.goto(url, wait_until="commit")
        found = page.wait_for_function(FIRST_IMAGE, polling="raf", timeout=180_000)
        if shot is not None:
            page.screenshot(path=str(shot))
        return float(found.json_value()) / 1000
    finally:
        page.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--screenshots", type=Path, help="a folder: each server's view at its first image")
    args = parser.parse_args()
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        with appliance_and_orthanc(root) as (home, appliance, orthanc):
            run(args, root, home, appliance, orthanc)


def run(args: argparse.Namespace, root: Path, home: Path, appliance, orthanc) -> None:  # type: ignore[no-untyped-def]
    """The rounds, alternated: a fresh study to both, then its first image in each."""
    nginx, port = nginx_for_orthanc(root / "nginx", orthanc.http_port)
    front = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(front), 30, "nginx")
        token = enrol(home, appliance.base_url, "bench", "clinician").token(appliance.base_url)
        ours, theirs = [], []
        with chromium_profiles(root / "profile-appliance", root / "profile-orthanc") as contexts:
            our_context, their_context = contexts
            our_context.add_cookies(
                [{"name": "appliance_session", "value": token, "url": appliance.base_url}]
            )
            for index in range(WARM_UP + args.rounds):
                patient = FakePatient(f"Viewer^Round{index}", f"VIEW{index:04d}", "19700101")
                series = ct_series(args.slices, patient, size=512, seed=index)
                files = write_series(root / f"round{index}", series)
                storescu_parallel(appliance.dicom_port, files, "APPLIANCE")
                storescu_parallel(orthanc.dicom_port, files, "ORTHANC")
                path = f"/viewer/viewer?StudyInstanceUIDs={series[0].StudyInstanceUID}"
                time.sleep(2)  # the appliance's series is complete and indexed for both
                shots = [args.screenshots / f"{who}-{index}.png" if args.screenshots else None
                         for who in ("appliance", "orthanc")]  # fmt: skip
                if index % 2:  # who goes first alternates: neither always opens on a busier machine
                    b = first_image_seconds(their_context, front + path, shots[1])
                    a = first_image_seconds(our_context, appliance.base_url + path, shots[0])
                else:
                    a = first_image_seconds(our_context, appliance.base_url + path, shots[0])
                    b = first_image_seconds(their_context, front + path, shots[1])
                label = f"round {index}" + (" (warm-up)" if index < WARM_UP else "")
                print(f"{label}: appliance {a:.2f} s, orthanc {b:.2f} s")
                if index >= WARM_UP:
                    ours.append(a)
                    theirs.append(b)
        a, b = statistics.median(ours), statistics.median(theirs)
        print(
            f"time to first image, {args.slices}-slice 512x512 CT (median of {args.rounds}): "
            f"appliance {a:.2f} s, orthanc {b:.2f} s, appliance/orthanc speed {b / a:.2f}"
        )
    finally:
        nginx.terminate()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/viewer/app-config.js", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
