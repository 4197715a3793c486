"""Inference as a service: warm worker processes behind ``POST /yolo/predict``.

:mod:`.protocol` frames the messages between the server and a worker; :mod:`.pool` (server
side, no torch) starts, reuses, evicts and restarts workers; :mod:`.worker` is the worker
process (``python -m jupyter_yolo.serving.worker``), which imports ultralytics.
"""
