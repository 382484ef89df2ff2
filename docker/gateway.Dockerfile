# syntax=docker/dockerfile:1.7
# The medserve gateway: FastAPI + preprocessing (numpy, pydicom and its decoders) + tritonclient.
# Installs the `gateway` extra only, so torch never enters this image (tests/test_boundaries.py
# checks the import side of the same rule).
#
#   docker build -f docker/gateway.Dockerfile -t medserve/gateway:0.1.0 .
#
# Build context: the repository root; docker/gateway.Dockerfile.dockerignore lets only
# pyproject.toml, README.md, contract/, gateway/, jobs/, preprocessing/ and postprocessing/ in.

FROM python:3.11.10-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv \
    && pip install --no-cache-dir "pip==24.3.1"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY contract/ contract/
COPY preprocessing/ preprocessing/
COPY postprocessing/ postprocessing/
COPY gateway/ gateway/
COPY jobs/ jobs/
# A regular (non-editable) install: the runtime stage needs /opt/venv only, not /src.
RUN pip install --no-cache-dir "./[gateway]"


FROM python:3.11.10-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="medserve-gateway" \
      org.opencontainers.image.description="medserve HTTP gateway: DICOM in, predictions out (Triton over gRPC)" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MEDSERVE_HOST=0.0.0.0 \
    MEDSERVE_PORT=8080 \
    MEDSERVE_WORK_DIR=/var/lib/medserve

# A fixed numeric UID, so Kubernetes' runAsNonRoot can verify it; /var/log/medserve is where
# MEDSERVE_AUDIT_LOG_PATH points in docker-compose.yml and k8s/ (a volume there); /var/lib/medserve
# holds the jobs' inputs, results and the SQLite job store (MEDSERVE_WORK_DIR; mount a volume).
RUN groupadd --system --gid 10001 medserve \
    && useradd --system --uid 10001 --gid medserve --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin medserve \
    && install -d -o medserve -g medserve -m 0750 /var/log/medserve /var/lib/medserve

COPY --from=build /opt/venv /opt/venv

WORKDIR /tmp
USER 10001:10001
EXPOSE 8080

# /healthz answers while the process is alive; readiness (Triton reachable) is /readyz,
# used by Kubernetes' readinessProbe rather than here, so a Triton outage never restarts the gateway.
HEALTHCHECK --interval=15s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]

# MEDSERVE_WORKERS > 1 runs several gateway processes on the port (metrics added up across them).
CMD ["python", "-m", "gateway.server"]
