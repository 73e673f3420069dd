#!/usr/bin/env bash
# Run a command as root, directly or through sudo: scripts/as-root.sh systemctl stop tinyproxy
set -euo pipefail
if [[ "$(id -u)" == 0 ]]; then exec "$@"; else exec sudo "$@"; fi
