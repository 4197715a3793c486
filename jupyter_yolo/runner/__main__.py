"""``python -m jupyter_yolo.runner JOB_DIR``: run one job (see :mod:`jupyter_yolo.runner.main`)."""

from .main import exit_process, main

if __name__ == "__main__":
    exit_process(main())
