# syntax=docker/dockerfile:1.7
# NVIDIA Triton Inference Server for medserve: NGC 24.10 = Triton 2.51, the same server version
# as the CPU tritonserver (nvidia-pytriton 0.7.0) used in development and CI.
#
#   docker build -f docker/triton.Dockerfile -t medserve/triton:0.1.0-24.10 .
#
# Pinned by tag. To pin by digest as well, resolve it once where nvcr.io is reachable
# (`docker buildx imagetools inspect nvcr.io/nvidia/tritonserver:24.10-py3`) and write
# `FROM nvcr.io/nvidia/tritonserver:24.10-py3@sha256:<digest>`.
#
# Models come from a mounted repository (docker-compose.yml: ./model_repository; k8s: a PVC or
# --model-repository=s3://...); nothing model-specific is baked in.

FROM nvcr.io/nvidia/tritonserver:24.10-py3

# The model repository's default config.pbtxt runs each model through the generic Python-backend
# runner (model.py, written by `medserve export`), which executes the ONNX file with onnxruntime
# in this image's Python (3.10). numpy < 2 matches the Python-backend stub's build;
# onnxruntime-gpu also has the CPU execution provider, so the same image serves the CPU profile.
RUN python3 -m pip install --no-cache-dir "numpy==1.26.4" "onnxruntime-gpu==1.19.2"

# The NGC image ships the unprivileged user triton-server, uid and gid 1000 (numeric here, so
# Kubernetes' runAsNonRoot can verify it).
USER 1000:1000
WORKDIR /tmp
EXPOSE 8000 8001 8002

HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=2)"]

# Poll mode: a model copied into the repository is loaded within 30 s, a removed one unloaded.
# Add --model-config-name=<name> to choose <model>/configs/<name>.pbtxt (see docker-compose.yml).
CMD ["tritonserver", "--model-repository=/models", "--model-control-mode=poll", "--repository-poll-secs=30", "--strict-readiness=true", "--allow-metrics=true", "--allow-gpu-metrics=true", "--http-port=8000", "--grpc-port=8001", "--metrics-port=8002"]
