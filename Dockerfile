# spotify-tokener: the service, Debian's Chromium and tini, run as an unprivileged user.
#   docker build -t spotify-tokener .
#   docker run -d --name tokener -p 127.0.0.1:3000:3000 spotify-tokener
# See the README's "Docker" section for compose, /dev/shm and the Chromium sandbox.

# Build stage: the project and its pinned dependencies into a virtualenv, so neither the source tree
# nor pip's cache reaches the final image. Every dependency ships wheels for amd64 and arm64 (checked):
# no compiler needed.
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/venv/bin/pip install --no-cache-dir ".[browser]"

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="spotify-tokener" \
      org.opencontainers.image.description="Serves Spotify web-player access tokens to LavaSrc and other clients." \
      org.opencontainers.image.licenses="MIT"

# Debian's Chromium headless shell (bookworm-security follows Chrome stable) rather than Playwright's
# download: one browser, from the distribution's security updates. The shell, not the full Chromium:
# it is what Playwright itself runs headless, much lighter per fetch (BENCHMARKS.md). Versions
# are not pinned because bookworm-security replaces the old package as soon as a fix ships.
# libatomic1: the Node binary inside Playwright's driver needs it, and the slim image lacks it.
# libnss3-tools: certutil, which fills Chromium's trust store when TOKENER_CA_FILE is set.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium-headless-shell libatomic1 libnss3-tools tini \
    && rm -rf /var/lib/apt/lists/*

# Never root: a compromised page gets an unprivileged user with no capabilities, not root.
RUN groupadd --gid 10001 tokener \
    && useradd --no-log-init --uid 10001 --gid 10001 \
        --create-home --home-dir /home/tokener --shell /usr/sbin/nologin tokener

COPY --from=build /opt/venv /opt/venv

# Outside a container the service listens on 127.0.0.1; inside one it must listen on every interface
# to be reachable through its published port (publish it on 127.0.0.1, see docs/docker.md).
# (DL3064 mistakes the TOKENER_ prefix for a secret: nothing secret is set here.)
# hadolint ignore=DL3064
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=3000 \
    TOKENER_BROWSER_PATH=/usr/lib/chromium/chromium-headless-shell

# Numeric, so Kubernetes' runAsNonRoot can check it.
USER 10001:10001
WORKDIR /home/tokener
EXPOSE 3000

# No curl in the image: Python's own urllib. /health never starts the browser and needs no API key.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('TOKENER_PORT') or os.environ.get('PORT', '3000'); urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=4)"]

# tini as PID 1 forwards SIGTERM to the service and reaps whatever Chromium leaves behind.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["spotify-tokener"]
