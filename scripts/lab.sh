#!/usr/bin/env bash
# Start JupyterLab with the jupyter_yolo extension on the workspace folder (default ./workspace).
# Authentication stays on: set JUPYTER_TOKEN to choose the token, otherwise Jupyter generates one
# and prints the URL that carries it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
export YOLO_WORKSPACE=${YOLO_WORKSPACE:-$PWD/workspace}
mkdir -p "$YOLO_WORKSPACE"
"$venv/bin/jupyter-yolo" init --workspace "$YOLO_WORKSPACE"
args=(--no-browser --ServerApp.root_dir="$YOLO_WORKSPACE" --ServerApp.ip="${LAB_IP:-127.0.0.1}"
      --ServerApp.port="${LAB_PORT:-8888}")
[ "$(id -u)" = 0 ] && args+=(--allow-root)
exec "$venv/bin/jupyter" lab "${args[@]}" "$@"
