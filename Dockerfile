# mloop's server image: `mloop serve` as a non-root user, on any Python 3.11 base image.
#
#   docker build -t mloop:0.1.0 .
#   podman build --format docker --network host \
#     --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt \
#     --build-arg BASE_IMAGE=localhost/python-base:3.11 -t mloop:0.1.0 .
#
# Two stages: the first installs the dependencies and builds mloop's wheel into a venv, the last
# copies that venv onto a fresh base (no build tools, no source). Dependencies sit in a layer of
# their own, keyed by pyproject.toml only, so editing the source rebuilds in seconds.
# `mloop build-image NAME@ALIAS -t TAG` builds on top of this image with one model baked in.
# Behind a TLS-intercepting proxy, pass its CA bundle as the optional build secret `ca` (above).
# podman needs `--format docker` to keep the HEALTHCHECK (OCI images have none).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
# Extras from pyproject.toml [project.optional-dependencies] (comma-separated; "" for none).
ARG MLOOP_EXTRAS=postgres,redis,celery,s3
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
# The official images have `python` and `python3`; Debian's python3 package only `python3`.
RUN "$(command -v python3 || command -v python)" -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml ./
RUN --mount=type=secret,id=ca,target=/run/secrets/ca,required=false \
    --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    /opt/venv/bin/python -c "import sys, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; extras = [e for e in sys.argv[1].split(',') if e]; deps = p['dependencies'] + [d for e in extras for d in p['optional-dependencies'][e] if not d.startswith('mloop[')]; print('\n'.join(deps))" "$MLOOP_EXTRAS" > /tmp/requirements.txt \
    && /opt/venv/bin/pip install -r /tmp/requirements.txt
COPY README.md ./
COPY src ./src
RUN --mount=type=secret,id=ca,target=/run/secrets/ca,required=false \
    --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/venv/bin/pip install --no-deps /wheels/mloop-*.whl \
    && /opt/venv/bin/pip check

FROM ${BASE_IMAGE} AS runtime
ARG MLOOP_VERSION=0.1.0
LABEL org.opencontainers.image.title="mloop" \
      org.opencontainers.image.description="mloop model server: train, track, register, govern, deploy, serve, monitor" \
      org.opencontainers.image.version="${MLOOP_VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric uid, so Kubernetes' runAsNonRoot can verify it (deploy/kubernetes).
RUN groupadd --gid 10001 mloop \
    && useradd --uid 10001 --gid 10001 --home-dir /var/lib/mloop --no-create-home \
       --shell /usr/sbin/nologin mloop \
    && mkdir -p /var/lib/mloop \
    && chown 10001:10001 /var/lib/mloop
COPY --from=build /opt/venv /opt/venv
# MLOOP_HOME holds the embedded state (SQLite, secrets): a volume, so a read-only root works.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/mloop \
    MLOOP_HOME=/var/lib/mloop \
    MLOOP_HOST=0.0.0.0 \
    MLOOP_PORT=8000 \
    GIT_PYTHON_REFRESH=quiet
VOLUME ["/var/lib/mloop"]
WORKDIR /var/lib/mloop
USER 10001:10001
EXPOSE 8000
STOPSIGNAL SIGTERM
# /health answers as soon as the process is up (/ready waits for the model). Python, since the
# slim bases have no curl; https when the server has a certificate (MLOOP_SSL_CERTFILE).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, ssl, urllib.request; tls = bool(os.environ.get('MLOOP_SSL_CERTFILE')); url = ('https' if tls else 'http') + '://127.0.0.1:' + os.environ.get('MLOOP_PORT', '8000') + '/health'; urllib.request.urlopen(url, timeout=4, context=ssl._create_unverified_context() if tls else None)"]
ENTRYPOINT ["mloop"]
CMD ["serve"]
