"""``python -m jupyter_yolo.runner JOB_DIR``: run one job (see :mod:`jupyter_yolo.runner.main`)."""

import sys

from .main import main

if __name__ == "__main__":
    sys.exit(main())
