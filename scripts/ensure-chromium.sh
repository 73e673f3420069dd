#!/usr/bin/env bash
# Make sure a browser the service can drive is installed; quick when one already is.
# Wanted: Chromium's headless shell, much lighter per fetch than a full Chromium
# (BENCHMARKS.md, make bench-browsers). From Playwright's own download where it works, else the
# system package; a full Chromium is the fallback where no shell can be had. The service chooses among
# what is installed (spotify_tokener/sources/browser/chromium.py); this script asks it what it would.
set -euo pipefail

PYTHON="${1:-.venv/bin/python}"
here="$(dirname "$0")"
SHELL_FOUND=0 FULL_FOUND=2 NOTHING_FOUND=3

# What the service would launch: one of the codes above. Anything else means the question could not be
# asked (no virtualenv yet, a broken Playwright driver): that is an error, not a reason to install.
chosen() {
    "$PYTHON" - "$SHELL_FOUND" "$FULL_FOUND" "$NOTHING_FOUND" <<'PY'
import sys
from playwright.sync_api import sync_playwright
from spotify_tokener.domain.errors import BrowserMissing
from spotify_tokener.sources.browser.chromium import find_executable, is_headless_shell
shell, full, nothing = map(int, sys.argv[1:])
with sync_playwright() as p:
    own = p.chromium.executable_path
try:
    sys.exit(shell if is_headless_shell(find_executable(None, own)) else full)
except BrowserMissing:
    sys.exit(nothing)
PY
}

status=""
ask() {
    status=0
    chosen || status=$?
    if [[ $status != "$SHELL_FOUND" && $status != "$FULL_FOUND" && $status != "$NOTHING_FOUND" ]]; then
        echo "error: could not ask $PYTHON which browser it would run (exit $status); see above" >&2
        exit 1
    fi
}

configured="${TOKENER_BROWSER_PATH:-}"
if [[ -n "${configured//[[:space:]]/}" ]]; then  # a blank one means unset, as for the service
    [[ -f "$configured" && -x "$configured" ]] && exit 0
    echo "error: TOKENER_BROWSER_PATH is not an executable file: $configured" >&2
    exit 1
fi

ask
# Left in the virtualenv when no headless shell could be installed, so later runs do not try again;
# `make clean` removes it with the virtualenv.
no_shell_mark="$("$PYTHON" -c 'import sys; print(sys.prefix)')/.no-headless-shell"
if [[ $status == "$SHELL_FOUND" ]] || [[ $status == "$FULL_FOUND" && -e "$no_shell_mark" ]]; then
    exit 0
fi

echo "==> installing Chromium's headless shell with Playwright"
if "$PYTHON" -m playwright install --only-shell chromium; then
    ask
    if [[ $status == "$SHELL_FOUND" ]]; then
        "$here/as-root.sh" "$PYTHON" -m playwright install-deps chromium || \
            echo "warning: could not install Chromium's system libraries (needs root); see docs/troubleshooting.md"
        exit 0
    fi
fi

echo "==> Playwright's download is unavailable here; installing the system package"
if command -v apt-get >/dev/null; then
    "$here/as-root.sh" apt-get update -qq || true
    "$here/as-root.sh" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-headless-shell \
        || "$here/as-root.sh" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium || true
fi
ask
case $status in
    "$SHELL_FOUND") exit 0 ;;
    "$FULL_FOUND")
        touch "$no_shell_mark" || true
        echo "note: no headless shell could be installed; the service runs the full Chromium, slower and costlier per fetch (BENCHMARKS.md)"
        exit 0 ;;
esac
echo "error: no Chromium could be installed. Install one and set TOKENER_BROWSER_PATH to it." >&2
exit 1
