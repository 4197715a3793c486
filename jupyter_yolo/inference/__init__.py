"""Inference backends chosen by measurement.

Which runtimes this container offers, exports cached per weights, a short measured trial that
picks the fastest backend agreeing with PyTorch, and thread settings derived from the
container's CPU quota.

Modules and where they may be imported:

* ``backends`` (the one table of backend names), ``agreement`` / ``agreement_dense`` (each
  task's outputs compared by its own measure), ``geometry`` (box, mask and rotated-box IoU,
  keypoint distance), ``tolerance`` (per task and precision), ``cache`` (the export cache and the
  stored choice) and ``threads`` (settings only): safe in the server process (numpy at most).
* ``export``, ``loader``, ``candidates``, ``measure`` and ``trial`` import torch / ultralytics /
  the runtimes: runner and benchmark processes only.
"""

from __future__ import annotations

from .backends import AUTO, BACKEND_CHOICES, BACKENDS, Backend

__all__ = ["AUTO", "BACKENDS", "BACKEND_CHOICES", "Backend"]
