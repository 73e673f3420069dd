#!/bin/sh
# Inside the image's build only: installs the service's wheel into /opt/venv and takes out what it never
# runs, measured in docs/docker.md:
# - the debugging symbols of the wheels' libraries and of Playwright's Node (curl_cffi 41 MB -> 7 MB);
# - the Swagger UI assets the service does not serve (swagger-ui-py ships every variant, 25 MB).
# /opt/venv has no pip, setuptools or wheel to remove: it was made without them (the Dockerfile).
set -eu
venv=/opt/venv
/opt/tools/bin/pip --python "$venv/bin/python" install --no-deps /wheels/*.whl

find "$venv" -type f \( -name '*.so' -o -name '*.so.*' -o -path '*/playwright/driver/node' \) \
    -exec strip --strip-unneeded {} +

# The files to keep come from the service itself, so a change there cannot serve a file removed here.
"$venv/bin/python" - <<'PY'
from spotify_tokener.http.openapi import SWAGGER_ASSETS, SWAGGER_FILES

for path in SWAGGER_ASSETS.iterdir():
    if path.name not in SWAGGER_FILES and path.name != "LICENSE":
        path.unlink()
PY
