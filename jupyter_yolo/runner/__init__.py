"""The job runner: ``python -m jupyter_yolo.runner JOB_DIR`` runs one job of the job contract.

Modules: ``main`` (the job's life cycle), ``tasks`` (train/val/predict/export on ultralytics),
``callbacks`` (trainer events to ``batch``/``epoch`` events, stop handling), ``journal`` (event
writing), ``job`` (job.json and status.json), ``stop`` (stop requests), ``logcap`` (size-capped
log capture), ``offline`` (no network, settings, fonts), ``resources`` (CPUs, /dev/shm, workers).
Importing this package has no side effects and does not import torch or ultralytics.
"""
