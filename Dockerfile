# spotify-tokener: two images from this file, both run as an unprivileged user under tini.
#   docker build -t spotify-tokener .                      with Chromium's headless shell (the browser source)
#   docker build --target slim -t spotify-tokener:slim .   without a browser, a fifth of the size
#   docker run -d --name tokener -p 127.0.0.1:3000:3000 spotify-tokener
# docs/docker.md: Compose, what each image weighs, podman (--format docker), arm64, an extra CA for the build.

# Another base only where python:3.11-slim-bookworm cannot be had as such (a mirror, `make image-test`'s
# stand-in for another architecture): Debian bookworm with Python 3.11.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- Build stages: of these, only /opt/venv reaches an image.
# The pins, read from pyproject.toml: only a change to them, not to the rest of that file, installs the
# dependencies again; and a change under src/ rebuilds only the last, quick steps.
FROM ${BASE_IMAGE} AS pins
WORKDIR /src
COPY pyproject.toml ./
RUN python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb")); \
        print(*p["build-system"]["requires"], sep="\n", file=open("build.txt", "w")); \
        print(*p["project"]["dependencies"], sep="\n", file=open("runtime.txt", "w")); \
        print(*p["project"]["optional-dependencies"]["browser"], sep="\n", file=open("browser.txt", "w"))'

# Every dependency ships wheels for amd64 and arm64 (checked, docs/docker.md): no compiler needed.
FROM ${BASE_IMAGE} AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
# binutils: strip, for scripts/image-venv.sh.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY scripts/with-build-ca.sh /usr/local/bin/with-build-ca
COPY scripts/image-venv.sh /usr/local/bin/image-venv
WORKDIR /src
COPY --from=pins /src/build.txt /src/runtime.txt /src/browser.txt ./
# Two virtualenvs: /opt/tools builds (pip, and the setuptools pyproject.toml asks for), /opt/venv runs
# and is made without pip, setuptools or wheel.
RUN --mount=type=secret,id=build_ca \
    python -m venv /opt/tools \
    && python -m venv --without-pip /opt/venv \
    && with-build-ca /opt/tools/bin/pip install --quiet -r build.txt \
    && with-build-ca /opt/tools/bin/pip --python /opt/venv/bin/python install --quiet -r runtime.txt

FROM deps AS deps-browser
RUN --mount=type=secret,id=build_ca \
    with-build-ca /opt/tools/bin/pip --python /opt/venv/bin/python install --quiet -r browser.txt

FROM deps AS wheel
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/tools/bin/pip wheel --quiet --no-deps --no-build-isolation --wheel-dir /wheels .

FROM deps AS venv-slim
COPY --from=wheel /wheels /wheels
RUN image-venv

FROM deps-browser AS venv-full
COPY --from=wheel /wheels /wheels
RUN image-venv

# ---- What both images share.
FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="spotify-tokener" \
      org.opencontainers.image.description="Serves Spotify web-player access tokens to LavaSrc and other clients." \
      org.opencontainers.image.licenses="MIT"

# tini as PID 1 forwards SIGTERM to the service and reaps whatever Chromium leaves behind.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && apt-get clean && rm -rf /var/lib/apt/lists/*

# Never root: a compromised page gets an unprivileged user with no capabilities, not root.
# The state folder belongs to that user, and so does a new named volume mounted over it (docs/docker.md).
RUN groupadd --gid 10001 tokener \
    && useradd --no-log-init --uid 10001 --gid 10001 \
        --create-home --home-dir /home/tokener --shell /usr/sbin/nologin tokener \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/spotify-tokener

# (DL3064 mistakes the TOKENER_ prefix for a secret: nothing secret is set here.)
# Outside a container the service listens on 127.0.0.1; inside one it must listen on every interface
# to be reachable through its published port (publish it on 127.0.0.1, see docs/docker.md).
# hadolint ignore=DL3064
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=3000 \
    TOKENER_STATE_DIR=/var/lib/spotify-tokener
WORKDIR /home/tokener
EXPOSE 3000

# No curl in the image: Python's own urllib. /health never starts the browser and needs no API key.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('TOKENER_PORT') or os.environ.get('PORT', '3000'); urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=4)"]

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["spotify-tokener"]

# ---- The slim image: the browserless sources only, no Chromium, no Playwright.
FROM runtime AS slim
COPY --from=venv-slim /opt/venv /opt/venv
# hadolint ignore=DL3064
ENV TOKENER_SOURCES=direct,embed
# Numeric, so Kubernetes' runAsNonRoot can check it.
USER 10001:10001

# ---- The full image (the default target): the browser source too.
FROM runtime AS full
# Debian's Chromium headless shell (bookworm-security follows Chrome stable) rather than Playwright's
# download: one browser, from the distribution's security updates. The shell, not the full Chromium:
# it is what Playwright itself runs headless, much lighter per fetch (BENCHMARKS.md). Versions
# are not pinned because bookworm-security replaces the old package as soon as a fix ships.
# chromium-common depends on x11-utils and xdg-utils, which a headless shell never runs and which pull
# in Mesa, LLVM and Perl (about 230 MB): an empty package that provides both stands in for them.
# libatomic1: the Node binary inside Playwright's driver needs it, and the slim base lacks it.
# libnss3-tools: certutil, which fills Chromium's trust store when TOKENER_CA_FILE is set.
# hadolint ignore=DL3008
RUN mkdir -p /tmp/no-x11/DEBIAN \
    && printf '%s\n' 'Package: tokener-no-x11-utils' 'Version: 1' 'Architecture: all' \
        'Maintainer: spotify-tokener' 'Provides: x11-utils, xdg-utils' \
        'Description: stands in for X11 tools a headless Chromium never runs' > /tmp/no-x11/DEBIAN/control \
    && dpkg-deb --build /tmp/no-x11 /tmp/no-x11.deb >/dev/null \
    && dpkg -i /tmp/no-x11.deb \
    && rm -rf /tmp/no-x11 /tmp/no-x11.deb \
    && apt-get update \
    && apt-get install -y --no-install-recommends chromium-headless-shell libatomic1 libnss3-tools \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY --from=venv-full /opt/venv /opt/venv
# hadolint ignore=DL3064
ENV TOKENER_BROWSER_PATH=/usr/lib/chromium/chromium-headless-shell
USER 10001:10001
