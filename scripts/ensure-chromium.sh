#!/usr/bin/env bash
# Make sure a browser the service can drive is installed; quick when one already is.
# Wanted: Chromium's headless shell, much lighter per fetch than a full Chromium
# (BENCHMARKS.md, "The headless shell"). From Playwright's own download where it works, else the
# system package; a full Chromium is the fallback where no shell can be had. The service chooses among
# what is installed (spotify_tokener/sources/browser/chromium.py); this script asks it what it would.
set -euo pipefail

PYTHON="${1:-.venv/bin/python}"
# Left when no headless shell could be installed, so later runs do not try again; `make clean` drops it.
NO_SHELL_MARK="$(dirname "$PYTHON")/../.no-headless-shell"

# 0: the service would run a headless shell; 2: a full Chromium; 1: nothing it could launch.
chosen() {
    "$PYTHON" - <<'PY'
import sys
from playwright.sync_api import sync_playwright
from spotify_tokener.domain.errors import BrowserMissing
from spotify_tokener.sources.browser.chromium import find_executable, is_headless_shell
with sync_playwright() as p:
    own = p.chromium.executable_path
try:
    sys.exit(0 if is_headless_shell(find_executable(None, own)) else 2)
except BrowserMissing:
    sys.exit(1)
PY
}

as_root() {
    if [[ "$(id -u)" == 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

if [[ -n "${TOKENER_BROWSER_PATH:-}" ]]; then
    [[ -x "${TOKENER_BROWSER_PATH}" ]] && exit 0
    echo "error: TOKENER_BROWSER_PATH is not an executable: ${TOKENER_BROWSER_PATH}" >&2
    exit 1
fi
status=0; chosen || status=$?
if [[ $status == 0 ]] || { [[ $status == 2 ]] && [[ -e "$NO_SHELL_MARK" ]]; }; then
    exit 0
fi

echo "==> installing Chromium and its headless shell with Playwright"
if "$PYTHON" -m playwright install chromium && chosen; then
    as_root "$PYTHON" -m playwright install-deps chromium || \
        echo "warning: could not install Chromium's system libraries (needs root); see docs/troubleshooting.md"
    exit 0
fi

echo "==> Playwright's download is unavailable here; installing the system package"
if command -v apt-get >/dev/null; then
    as_root apt-get update -qq || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-headless-shell \
        || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium || true
fi
status=0; chosen || status=$?
if [[ $status == 2 ]]; then
    touch "$NO_SHELL_MARK"
    echo "note: no headless shell could be installed; the service runs the full Chromium, slower and costlier per fetch (BENCHMARKS.md)"
fi
if [[ $status != 1 ]]; then
    exit 0
fi
echo "error: no Chromium could be installed. Install one and set TOKENER_BROWSER_PATH to it." >&2
exit 1
