#!/usr/bin/env bash
# Install Debian/Ubuntu packages, as root or through sudo: scripts/ensure-apt.sh wrk redis-server
# Waits up to five minutes for another apt to finish rather than failing at once on its lock.
set -euo pipefail
here="$(dirname "$0")"
wait_lock=(-o DPkg::Lock::Timeout=300)
"$here/as-root.sh" apt-get "${wait_lock[@]}" update -qq
"$here/as-root.sh" env DEBIAN_FRONTEND=noninteractive apt-get "${wait_lock[@]}" install -y -qq "$@"
