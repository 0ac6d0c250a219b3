# syntax=docker/dockerfile:1
# flowersec-tunnel: the untrusted rendezvous daemon, as a small non-root image.
#
# Build:  docker build -t flowersec-tunnel \
#           --build-arg VERSION=0.1.0 --build-arg COMMIT="$(git rev-parse HEAD)" \
#           --build-arg DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)" .
# Run:    docker run -p 8080:8080 \
#           -v "$PWD/issuer_keys.json:/etc/flowersec/issuer_keys.json:ro" \
#           -e FSEC_TUNNEL_AUD=... -e FSEC_TUNNEL_ISS=... \
#           -e FSEC_TUNNEL_ALLOW_ORIGIN=https://app.example.com flowersec-tunnel

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Stage 1: build the project and its dependencies into a self-contained venv.
# Every dependency ships binary wheels, so no compiler is installed here
# either; pip refuses to build a dependency from source.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ONLY_BINARY=:all:
RUN python -m venv /opt/flowersec
WORKDIR /src
COPY pyproject.toml README.md ./
COPY flowersec_endpoint ./flowersec_endpoint
COPY flowersec_tunnel ./flowersec_tunnel
# Stamp the build values that --version and the ready line report.
ARG COMMIT=unknown
ARG DATE=unknown
RUN sed -i \
      -e "s|^BUILD_COMMIT = \"unknown\"|BUILD_COMMIT = \"${COMMIT}\"|" \
      -e "s|^BUILD_DATE = \"unknown\"|BUILD_DATE = \"${DATE}\"|" \
      flowersec_tunnel/goflags.py
RUN /opt/flowersec/bin/pip install --no-compile . \
    && /opt/flowersec/bin/pip uninstall --yes pip \
    && /opt/flowersec/bin/python -m compileall -q /opt/flowersec

# Stage 2: the runtime, with the venv and nothing used to build it.
FROM ${PYTHON_IMAGE}
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=unknown
LABEL org.opencontainers.image.title="flowersec-tunnel" \
      org.opencontainers.image.description="Untrusted rendezvous tunnel pairing Flowersec endpoints over WebSocket" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${DATE}"

RUN groupadd --system --gid 10001 flowersec \
    && useradd --system --uid 10001 --gid flowersec --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin flowersec
COPY --from=build /opt/flowersec /opt/flowersec

# The reference default is 127.0.0.1:0, useless in a container, hence the
# listen address here. The keyset is mounted read-only at the path below;
# FSEC_TUNNEL_AUD, FSEC_TUNNEL_ISS and FSEC_TUNNEL_ALLOW_ORIGIN have no
# defaults and must be given at run time.
ENV PATH=/opt/flowersec/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FSEC_TUNNEL_LISTEN=0.0.0.0:8080 \
    FSEC_TUNNEL_ISSUER_KEYS_FILE=/etc/flowersec/issuer_keys.json

USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM

# Probes the port of FSEC_TUNNEL_LISTEN on loopback with the image's own
# Python (https, unverified, when the daemon terminates TLS itself).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, ssl, urllib.request as r; e = os.environ.get; tls = bool(e('FSEC_TUNNEL_TLS_CERT_FILE')); c = ssl.create_default_context(); c.check_hostname = False; c.verify_mode = ssl.CERT_NONE; port = e('FSEC_TUNNEL_LISTEN', '0.0.0.0:8080').rsplit(':', 1)[1]; r.urlopen(('https' if tls else 'http') + '://127.0.0.1:' + port + '/healthz', timeout=2, context=c if tls else None).read()"]

ENTRYPOINT ["flowersec-tunnel"]
