# syntax=docker/dockerfile:1.7
# jupyter-yolo, jetson variant: NVIDIA Jetson Orin (JetPack 6, L4T r36, CUDA 12.6), arm64 only.
# Python 3.11 (ultralytics 8.4 needs it; L4T r36 has 3.10) comes from uv's standalone builds;
# torch and torchvision are NVIDIA's JetPack 6 builds. The container contract (ports, volume,
# environment, signals) is docker/CONTRACT.md. Build on arm64 from the repository root:
#   docker build -f docker/jetson.Dockerfile -t jupyter-yolo:jetson .

# ---------------------------------------------------------------- the wheel (Node only here)
FROM node:20.19.5-bookworm-slim AS wheel
# Debian's python3 builds the wheel; apt versions follow the pinned Debian release of the base
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY constraints.txt pyproject.toml README.md ./
# versions come from constraints.txt (-c), which pins every package
# hadolint ignore=DL3013
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip install --no-cache-dir -c constraints.txt \
      build hatchling hatch-jupyter-builder jupyter-builder
COPY labextension/package.json labextension/package-lock.json labextension/
RUN npm ci --prefix labextension --no-audit --no-fund
COPY jupyter_yolo jupyter_yolo
COPY jupyter-config jupyter-config
COPY labextension labextension
COPY notebooks notebooks
ENV PATH=/opt/build/bin:$PATH
RUN python -m build --wheel --no-isolation --outdir /wheels .

# ---------------------------------------------------------------- uv, for Python 3.11
FROM ghcr.io/astral-sh/uv:0.13.8 AS uv

# ---------------------------------------------------------------- the image
FROM nvcr.io/nvidia/l4t-jetpack:r36.4.0
ARG VERSION=0.1.0
ARG VCS_REF=unknown
ARG BUILD_DATE=unknown
ARG PYTHON_VERSION=3.11.14
ARG TORCH_INDEX_URL=https://pypi.jetson-ai-lab.io/jp6/cu126
LABEL org.opencontainers.image.title="jupyter-yolo (jetson)" \
      org.opencontainers.image.description="JupyterLab for Ultralytics YOLO on NVIDIA Jetson (JetPack 6)" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="AGPL-3.0-only" \
      org.opencontainers.image.vendor="jupyter-yolo" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.base.name="nvcr.io/nvidia/l4t-jetpack:r36.4.0" \
      io.jupyter-yolo.variant="jetson" \
      io.jupyter-yolo.contract="1"

# wget: KubeRay's probes of Ray pods run it (the images are Ray nodes too, docker/kuberay).
# Video: opencv-python and av (PyAV, H.264 encoding with libx264) bundle FFmpeg in their
# wheels; the user is in `video` for cameras mapped in (/dev/video*, docker/CONTRACT.md).
# sshd (started only with SSH_AUTHORIZED_KEYS; its host keys are made per workspace, so the
# package's are removed); libGL and GLib for OpenCV. apt versions follow the pinned base release
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssh-server libgl1 libglib2.0-0 procps wget \
 && rm -f /etc/ssh/ssh_host_* \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1000 yolo \
 && useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash yolo \
 && usermod --append --groups video yolo \
 && install -d -o 1000 -g 1000 /opt/venv /workspace /opt/jupyter-yolo /opt/jupyter-yolo/weights \
 && echo "export PATH=/opt/venv/bin:\$PATH" > /etc/profile.d/jupyter-yolo.sh

ENV PATH=/opt/venv/bin:$PATH \
    YOLO_WORKSPACE=/workspace \
    YOLO_WEIGHTS_DIR=/opt/jupyter-yolo/weights \
    YOLO_OFFLINE=1 \
    YOLO_AUTOINSTALL=False \
    HF_HUB_OFFLINE=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    JUPYTER_PORT=8888 \
    SSH_PORT=22 \
    PYTHONUNBUFFERED=1 \
    UV_PYTHON_INSTALL_DIR=/opt/python

# pretrained weights at build time: nothing is downloaded at run time
ADD --checksum=sha256:f59b3d833e2ff32e194b5bb8e08d211dc7c5bdf144b90d2c8412c47ccfc83b36 --chown=1000:1000 --chmod=0644 \
    https://github.com/ultralytics/assets/releases/download/v8.3.0/yolov8n.pt /opt/jupyter-yolo/weights/yolov8n.pt

COPY --from=uv /uv /usr/local/bin/uv
RUN uv python install "${PYTHON_VERSION}" \
 && uv venv --seed --allow-existing --python "${PYTHON_VERSION}" /opt/venv \
 && chown -R 1000:1000 /opt/venv
COPY --chown=1000:1000 constraints.txt docker/constraints/jetson.txt /opt/jupyter-yolo/
# the wheel stays in the image (a few hundred kB): what was installed, reinstallable
COPY --from=wheel /wheels /opt/jupyter-yolo/wheels
USER 1000:1000
# the ray extra (ray[default,tune], pinned): the image is also a Ray node (docker/kuberay)
# versions come from constraints.txt (-c) with its torch lines replaced by jetson.txt
# hadolint ignore=DL3013
RUN grep -vE '^(torch|torchvision|triton|nvidia-|cuda-)' /opt/jupyter-yolo/constraints.txt \
      > /opt/jupyter-yolo/constraints-jetson.txt \
 && cat /opt/jupyter-yolo/jetson.txt >> /opt/jupyter-yolo/constraints-jetson.txt \
 && pip install --no-cache-dir -c /opt/jupyter-yolo/constraints-jetson.txt \
      --index-url "${TORCH_INDEX_URL}" torch torchvision \
 && pip install --no-cache-dir -c /opt/jupyter-yolo/constraints-jetson.txt \
      "/opt/jupyter-yolo/wheels/jupyter_yolo-${VERSION}-py3-none-any.whl[ray]" onnx

COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/jupyter-yolo-entrypoint
WORKDIR /workspace
VOLUME ["/workspace"]
EXPOSE 8888 22
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["jupyter-yolo", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/jupyter-yolo-entrypoint"]
