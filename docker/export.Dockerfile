# syntax=docker/dockerfile:1.7
# medserve export on a GPU host: PyTorch -> verified ONNX -> INT8 QDQ -> TensorRT engine.
# The NGC PyTorch 24.10 image carries TensorRT 10.5, the version inside the Triton 24.10 image,
# so an engine built here loads in docker/triton.Dockerfile.
#
#   docker build -f docker/export.Dockerfile -t medserve/export:0.1.0-24.10 .
#   docker run --rm --gpus all --user "$(id -u):$(id -g)" -v "$PWD:/workspace/checkout" -e PYTHONPATH=/workspace/checkout \
#     medserve/export:0.1.0-24.10 /workspace/checkout/devtools/zoo/specs/ct_nodule_classifier.yaml --output /workspace/checkout/model_repository
#
# (the demo zoo is development tooling of the checkout, mounted here; a team's own spec and
# model source are mounted the same way, or its TorchScript archive needs no source at all)
#
# Pinned by tag (see docker/triton.Dockerfile for pinning by digest).

FROM nvcr.io/nvidia/pytorch:24.10-py3

# The NGC image constrains pip to its own builds (PIP_CONSTRAINT); the `export` extra pins the
# torch version that CI verifies exports with, so that constraint is lifted for this install.
ENV PIP_CONSTRAINT="" \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /opt/medserve
COPY pyproject.toml README.md ./
COPY contract/ contract/
COPY preprocessing/ preprocessing/
COPY postprocessing/ postprocessing/
COPY export/ export/
COPY medserve/ medserve/
RUN python -m pip install --no-cache-dir "./[export]" \
    && groupadd --system --gid 10001 medserve \
    && useradd --system --uid 10001 --gid medserve --create-home --home-dir /home/medserve medserve \
    && install -d -o medserve -g medserve /workspace/model_repository

WORKDIR /workspace
USER 10001:10001

ENTRYPOINT ["medserve", "export"]
CMD ["--help"]
