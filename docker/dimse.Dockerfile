# syntax=docker/dockerfile:1.7
# The medserve DICOM node's receiver: the DIMSE C-STORE / C-ECHO SCP (python -m dimse) with its
# durable spool, series assembly and /metrics + /healthz. Same product packages and extra as the
# gateway image (the receiver checks headers with preprocessing/ and records into jobs/), plus
# pynetdicom; never torch.
#
#   docker build -f docker/dimse.Dockerfile -t medserve/dimse:0.1.0 .
#
# Build context: the repository root; docker/dimse.Dockerfile.dockerignore lets only
# pyproject.toml, README.md and the product packages the receiver imports in.

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
COPY dimse/ dimse/
# A regular (non-editable) install: the runtime stage needs /opt/venv only, not /src.
RUN pip install --no-cache-dir "./[gateway]" "pynetdicom==3.0.4"


FROM python:3.11.10-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="medserve-dimse" \
      org.opencontainers.image.description="medserve DICOM node receiver: C-STORE / C-ECHO SCP, durable spool, series assembly" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MEDSERVE_DIMSE_HOST=0.0.0.0 \
    MEDSERVE_DIMSE_PORT=11112 \
    MEDSERVE_DIMSE_METRICS_PORT=9112 \
    MEDSERVE_WORK_DIR=/var/lib/medserve

# The gateway's UID: both write the node's work directory (spool, SQLite job store) when they
# share one volume. /var/lib/medserve holds the spool (MEDSERVE_WORK_DIR/spool; mount a volume).
RUN groupadd --system --gid 10001 medserve \
    && useradd --system --uid 10001 --gid medserve --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin medserve \
    && install -d -o medserve -g medserve -m 0750 /var/lib/medserve

COPY --from=build /opt/venv /opt/venv

WORKDIR /tmp
USER 10001:10001
EXPOSE 11112 9112

# /healthz (metrics port) answers 200 while the receiver serves associations and assembles series.
HEALTHCHECK --interval=15s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9112/healthz', timeout=2)"]

CMD ["python", "-m", "dimse"]
