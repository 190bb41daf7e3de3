#!/usr/bin/env bash
# Debian packages the tests and benchmarks talk to: dcmtk (storescu/echoscu/storescp), Orthanc
# with its DICOMweb plugin (a real PACS), PostgreSQL, docker-compose (to validate the compose file),
# rsyslog with GnuTLS (a SIEM receiving audit messages over syslog/TLS), Tesseract (burned-in text OCR),
# Chromium (the browser the web pages are tested in, driven by Playwright), npm (fetches OHIF's build).
set -euo pipefail
packages=(dcmtk tesseract-ocr tesseract-ocr-eng orthanc orthanc-dicomweb postgresql docker-compose rsyslog rsyslog-gnutls make chromium fonts-dejavu-core)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
command -v npm >/dev/null || missing+=(npm)  # any npm will do (a Node.js install often brings its own)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
# The packaged services need not start on their own: the tests start their own instances.
created_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    created_policy=1
fi
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
[ -z "$created_policy" ] || $sudo rm -f /usr/sbin/policy-rc.d
