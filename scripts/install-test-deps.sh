#!/usr/bin/env bash
# What the tests need beyond Python packages: headless Chromium (Debian's package), which tests/test_report.py
# uses to open report.html. Installed once; a no-op when it is already there.
set -euo pipefail
if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "error: Chromium is missing and this user cannot install packages; install the 'chromium' package" >&2
    exit 1
  fi
fi
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
