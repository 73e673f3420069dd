#!/usr/bin/env bash
# Install Debian/Ubuntu packages, as root or through sudo: scripts/ensure-apt.sh wrk redis-server
set -euo pipefail
run() { if [[ "$(id -u)" == 0 ]]; then "$@"; else sudo "$@"; fi; }
run apt-get update -qq
run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
