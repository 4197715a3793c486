"""The contract every part of jupyter-yolo shares, and the one place each name is defined.

A pure package: the standard library and PyYAML only, never tornado, torch, ultralytics or any
other part of ``jupyter_yolo``. It owns the job folder's file names, the job kinds and statuses,
the typed shapes of ``job.json``, ``status.json``, events and REST payloads, the atomic writer,
and the task profile table (:mod:`.tasks`) with the architectures of the installed ultralytics
(:mod:`.architectures`).
"""
