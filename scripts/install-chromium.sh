#!/usr/bin/env bash
# Debian's chromium, for the test that opens the sweep report in a headless browser (tests/test_report.py).
# Does nothing if a chromium is already on PATH. Needs root (or sudo) for apt-get; CI runs as root.
set -euo pipefail

for name in chromium chromium-browser; do
    if command -v "$name" >/dev/null 2>&1; then
        echo "install-chromium.sh: $(command -v "$name") is installed" >&2
        exit 0
    fi
done
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-chromium.sh: error: need root or sudo to apt-get install chromium" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "install-chromium.sh: installed $(chromium --version)" >&2
