# syntax=docker/dockerfile:1.7
# jupyter-yolo, ascend variant: Huawei Ascend NPUs (Atlas A2, 910B) with CANN and torch_npu,
# x86_64 and arm64. The host's Ascend driver is mounted at /usr/local/Ascend/driver; the
# entrypoint loads CANN's set_env.sh. The container contract (ports, volume, environment,
# signals) is docker/CONTRACT.md. Build from the repository root:
#   docker build -f docker/ascend.Dockerfile -t jupyter-yolo:ascend .

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

# ---------------------------------------------------------------- the image
FROM ascendai/cann:9.1.0-910b-ubuntu22.04-py3.11
ARG VERSION=0.1.0
ARG VCS_REF=unknown
ARG BUILD_DATE=unknown
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
LABEL org.opencontainers.image.title="jupyter-yolo (ascend)" \
      org.opencontainers.image.description="JupyterLab for Ultralytics YOLO on Ascend NPUs (CANN, torch_npu)" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="AGPL-3.0-only" \
      org.opencontainers.image.vendor="jupyter-yolo" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.base.name="docker.io/ascendai/cann:9.1.0-910b-ubuntu22.04-py3.11" \
      io.jupyter-yolo.variant="ascend" \
      io.jupyter-yolo.contract="1"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# wget: KubeRay's probes of Ray pods run it (the images are Ray nodes too, docker/kuberay).
# The image runs as its user with uid 1000, a member of HwHiAiUser (the group of the Ascend
# device nodes) when the base defines it; a base user that has uid 1000 already is renamed.
# Video: opencv-python and av (PyAV, H.264 encoding with libx264) bundle FFmpeg in their
# wheels; the user is in `video` for cameras mapped in (/dev/video*, docker/CONTRACT.md).
# sshd's package host keys are removed (they are made per workspace); libGL and GLib for
# OpenCV. Every bash (login shells through profile.d, others through BASH_ENV) loads CANN's
# environment as the entrypoint does: KubeRay starts `ray start` in `bash -c` instead of the
# entrypoint, and a Ray node's jobs must see the NPUs too.
# apt versions follow the pinned base release
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssh-server libgl1 libglib2.0-0 procps wget \
 && rm -f /etc/ssh/ssh_host_* \
 && rm -rf /var/lib/apt/lists/* \
 && if getent passwd 1000 >/dev/null; then \
      usermod --login yolo --home /home/yolo --move-home --shell /bin/bash "$(getent passwd 1000 | cut -d: -f1)"; \
    else \
      useradd --uid 1000 --user-group --create-home --shell /bin/bash yolo; \
    fi \
 && if getent group HwHiAiUser >/dev/null; then usermod --append --groups HwHiAiUser yolo; fi \
 && usermod --append --groups video yolo \
 && install -d -o 1000 -g 1000 /opt/venv /workspace /opt/jupyter-yolo /opt/jupyter-yolo/weights \
 && echo "export PATH=/opt/venv/bin:\$PATH" > /etc/profile.d/jupyter-yolo.sh \
 && echo "for f in /usr/local/Ascend/ascend-toolkit/set_env.sh /usr/local/Ascend/nnal/atb/set_env.sh; do if [ -r \"\$f\" ]; then . \"\$f\"; fi; done" \
      > /etc/profile.d/jupyter-yolo-ascend.sh

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
    BASH_ENV=/etc/profile.d/jupyter-yolo-ascend.sh

# pretrained weights at build time: nothing is downloaded at run time
ADD --checksum=sha256:f59b3d833e2ff32e194b5bb8e08d211dc7c5bdf144b90d2c8412c47ccfc83b36 --chown=1000:1000 --chmod=0644 \
    https://github.com/ultralytics/assets/releases/download/v8.3.0/yolov8n.pt /opt/jupyter-yolo/weights/yolov8n.pt

COPY --chown=1000:1000 constraints.txt docker/constraints/ascend.txt /opt/jupyter-yolo/
# the wheel stays in the image (a few hundred kB): what was installed, reinstallable
COPY --from=wheel /wheels /opt/jupyter-yolo/wheels
USER 1000:1000
# the ray extra (ray[default,tune], pinned): the image is also a Ray node (docker/kuberay)
# versions come from constraints.txt (-c) with its torch lines replaced by ascend.txt; torch
# itself is the CPU build (x86_64: the +cpu wheel) that torch_npu extends
# hadolint ignore=DL3013
RUN grep -vE '^(torch|torchvision|triton|nvidia-|cuda-)' /opt/jupyter-yolo/constraints.txt \
      > /opt/jupyter-yolo/constraints-ascend.txt \
 && cat /opt/jupyter-yolo/ascend.txt >> /opt/jupyter-yolo/constraints-ascend.txt \
 && python3 -m venv /opt/venv \
 && pip install --no-cache-dir -c /opt/jupyter-yolo/constraints-ascend.txt \
      --index-url "${TORCH_INDEX_URL}" --extra-index-url https://pypi.org/simple \
      "/opt/jupyter-yolo/wheels/jupyter_yolo-${VERSION}-py3-none-any.whl[ray]" torch-npu onnx

COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/jupyter-yolo-entrypoint
WORKDIR /workspace
VOLUME ["/workspace"]
EXPOSE 8888 22
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["jupyter-yolo", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/jupyter-yolo-entrypoint"]
