#!/usr/bin/env bash
# OHIF's prebuilt viewer (@ohif/app from the npm registry, pinned) into DIR, made to live under
# /viewer/ of the appliance: its absolute asset paths and webpack's public path rewritten. Run by
# `make install`; never committed. The appliance writes the viewer's app-config.js itself.
set -euo pipefail
VERSION=3.12.0
target=${1:?usage: fetch-viewer.sh DIR}
[ -f "$target/.version" ] && [ "$(cat "$target/.version")" = "$VERSION" ] && exit 0
command -v npm >/dev/null || { echo "npm is needed to fetch the viewer (Debian: apt-get install npm)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@ohif/app@$VERSION" >/dev/null && tar xzf "ohif-app-$VERSION.tgz")
dist="$work/package/dist"
bundle=$(ls "$dist"/app.bundle.*.js)
[ "$(grep -c '__webpack_require__.p = "/";' "$bundle")" = 1 ] || { echo "unexpected OHIF build: public path not found" >&2; exit 1; }
sed -i 's|__webpack_require__.p = "/";|__webpack_require__.p = "/viewer/";|' "$bundle"
sed -i -e "s|window.PUBLIC_URL = '/';|window.PUBLIC_URL = '/viewer/';|" -e 's#\(src\|href\)="/#\1="/viewer/#g' "$dist/index.html"
grep -q "window.PUBLIC_URL = '/viewer/';" "$dist/index.html" && grep -q 'src="/viewer/app-config.js"' "$dist/index.html" || { echo "unexpected OHIF index.html" >&2; exit 1; }
rm -f "$dist/app-config.js"  # the appliance serves its own, pointing at its DICOMweb
rm -rf "$target"
mkdir -p "$(dirname "$target")"
mv "$dist" "$target"
echo "$VERSION" > "$target/.version"
