#!/usr/bin/env bash
# Make sure a Chromium the service can drive is installed; quick when one already is.
# Order: TOKENER_BROWSER_PATH, Playwright's own download, a system package (Debian/Ubuntu).
set -euo pipefail

PYTHON="${1:-.venv/bin/python}"

have_browser() {
    if [[ -n "${TOKENER_BROWSER_PATH:-}" ]]; then
        [[ -x "${TOKENER_BROWSER_PATH}" ]]
        return
    fi
    "$PYTHON" - <<'PY' && return 0
import os, sys
from playwright.sync_api import sync_playwright
with sync_playwright() as p:
    sys.exit(0 if os.path.isfile(p.chromium.executable_path) else 1)
PY
    command -v chromium >/dev/null || command -v chromium-browser >/dev/null \
        || command -v google-chrome >/dev/null || command -v google-chrome-stable >/dev/null
}

as_root() {
    if [[ "$(id -u)" == 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

if have_browser; then
    exit 0
fi

echo "==> installing Chromium with Playwright"
if "$PYTHON" -m playwright install chromium && have_browser; then
    as_root "$PYTHON" -m playwright install-deps chromium || \
        echo "warning: could not install Chromium's system libraries (needs root); see README troubleshooting"
    exit 0
fi

echo "==> Playwright's download is unavailable here; installing the system chromium package"
if command -v apt-get >/dev/null; then
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
if have_browser; then
    exit 0
fi
echo "error: no Chromium could be installed. Install one and set TOKENER_BROWSER_PATH to it." >&2
exit 1
