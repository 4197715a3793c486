#!/bin/bash
# The one entrypoint of every jupyter-yolo image (docker/CONTRACT.md). The logic lives in typed,
# tested Python (jupyter_yolo/container); this script only loads a vendor runtime's environment
# where the image has one (Ascend CANN's set_env.sh files are bash) and hands over with exec,
# keeping the process id, so the signals `docker stop` sends reach the entrypoint. Arguments go
# to JupyterLab.
set -eu
for vendor_env in /usr/local/Ascend/ascend-toolkit/set_env.sh /usr/local/Ascend/nnal/atb/set_env.sh; do
  if [ -r "$vendor_env" ]; then
    set +u
    # shellcheck disable=SC1090
    . "$vendor_env"
    set -u
  fi
done
exec jupyter-yolo serve "$@"
