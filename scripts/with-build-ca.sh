#!/bin/sh
# Inside the image's build only: runs a command (pip) trusting, besides the system's authorities, the
# extra CA the build was given as the secret `build_ca` (docs/docker.md).
# Without that secret the command runs as it is.
set -eu
extra=/run/secrets/build_ca
if [ -s "$extra" ]; then
    bundle="$(mktemp)"
    trap 'rm -f "$bundle"' EXIT
    cat /etc/ssl/certs/ca-certificates.crt "$extra" > "$bundle"
    export PIP_CERT="$bundle"
fi
"$@"
