"""Inference backends chosen by measurement.

Which runtimes this container offers, exports cached per weights, a short measured trial that
picks the fastest backend agreeing with PyTorch, and thread settings derived from the
container's CPU quota.

Modules and where they may be imported:

* ``backends`` (the one table of backend names), ``agreement`` (boxes matched by IoU, scores
  compared), ``cache`` (the export cache and the stored choice) and ``threads`` (settings only):
  pure Python, safe in the server process.
* ``export``, ``loader`` and ``trial`` import torch / ultralytics / the runtimes: runner and
  benchmark processes only.
"""

from __future__ import annotations

from .backends import AUTO, BACKEND_CHOICES, BACKENDS, Backend

__all__ = ["AUTO", "BACKENDS", "BACKEND_CHOICES", "Backend"]
