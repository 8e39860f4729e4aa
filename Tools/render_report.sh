#!/usr/bin/env bash
# Render a self-contained HTML report (octet compare --html) to a PNG with headless Chromium,
# to look at it as a person would, e.g. in CI artifacts.
#
#   Tools/render_report.sh report.html report.png [WIDTH,HEIGHT]
#
# Uses Debian's packages: apt-get install chromium-headless-shell (or chromium).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 REPORT.html OUT.png [WIDTH,HEIGHT]" >&2; exit 2; }
html="$(realpath "$1")"; png="$2"; size="${3:-1200,1900}"
for b in chromium-headless-shell chromium chromium-browser; do
    if command -v "$b" >/dev/null 2>&1; then browser="$b"; break; fi
done
[ -n "${browser:-}" ] || { echo "$0: no Chromium found (apt-get install chromium-headless-shell)" >&2; exit 1; }
# --no-sandbox: needed when running as root (containers); the page is local and has no script.
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="$size" \
    --screenshot="$(realpath -m "$png")" "file://$html" 2>/dev/null
[ -s "$png" ] || { echo "$0: $browser wrote no image" >&2; exit 1; }
echo "$png"
