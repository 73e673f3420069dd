#!/usr/bin/env bash
# Install Debian/Ubuntu packages, as root or through sudo: scripts/ensure-apt.sh wrk redis-server
set -euo pipefail
here="$(dirname "$0")"
"$here/as-root.sh" apt-get update -qq
"$here/as-root.sh" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
