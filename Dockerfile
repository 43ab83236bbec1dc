# settleguard worker image.
#
#   docker build -t settleguard:local .
#   docker run --rm settleguard:local --help
#
# Two stages: the builder installs the package and its dependencies into a virtualenv at
# /opt/venv; the runtime stage copies only that virtualenv onto a fresh slim base, so no
# compiler, pip cache or source tree ends up in the final image.

# Pinned tag (patch release and Debian release), the same for both stages so the
# virtualenv's interpreter symlink (/opt/venv/bin/python -> /usr/local/bin/python3.12)
# stays valid in the runtime stage.
ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm

########################################################################################
FROM ${PYTHON_IMAGE} AS builder

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /src

# Dependencies first, from pyproject.toml alone: this layer is rebuilt only when the
# dependency list changes, not on every source edit.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt

# A C compiler: the package has a C extension (models/_treewalk.c) and the detection core
# is compiled by mypyc (SETTLEGUARD_COMPILE=1, setup.py), about twice as fast per event.
# Only the builder has it: the runtime stage copies the built virtualenv alone.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

# Then the package itself (the build context is an allow-list, see .dockerignore).
COPY . ./
RUN SETTLEGUARD_COMPILE=1 pip install --no-cache-dir . \
    && pip check \
    && settleguard --help > /dev/null

########################################################################################
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="settleguard" \
      org.opencontainers.image.description="Real-time anomaly detection for after-sales settlement claims"

# SETTLEGUARD_WEB_HOST=0.0.0.0: outside a container the worker binds its web server
# (/healthz, /metrics) to 127.0.0.1 by default. Inside a container 127.0.0.1 is the
# container's own loopback and unreachable from Prometheus or the published port, so the
# image binds all of the container's interfaces. That is acceptable only because the
# container network isolates it: the port is reachable from the compose network and from
# whatever `-p`/`ports:` publishes (deploy/docker-compose.yml publishes it on the host's
# 127.0.0.1 only). Do not run this image with host networking.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    SETTLEGUARD_WEB_HOST=0.0.0.0 \
    SETTLEGUARD_WEB_PORT=6066 \
    SETTLEGUARD_DATA_DIR=/app/var/worker

# Fixed, unprivileged uid/gid so volume ownership is predictable across rebuilds.
RUN groupadd --system --gid 10001 settleguard \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin settleguard

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app

# The worker's state directory must exist, owned by the service user, in the image:
# a fresh named volume mounted here inherits this ownership.
RUN mkdir -p /app/var/worker && chown -R 10001:10001 /app

USER 10001:10001

EXPOSE 6066

# Slim images have no curl: probe /healthz with the standard library. urlopen raises on
# a non-2xx answer or a refused connection, which makes python exit non-zero.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SETTLEGUARD_WEB_PORT', '6066'), timeout=4)"]

ENTRYPOINT ["settleguard"]
CMD ["worker"]
