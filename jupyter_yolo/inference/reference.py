"""The ``.pt`` a predict job starts from, loaded only when something needs the model itself.

A job whose backend is an export already in the cache never needs the PyTorch model: loading it
(half a second and its memory) was only to read the checkpoint's task, image size and data. Those
facts are kept beside the exports (:data:`FACTS_FILE`, keyed by the weights' content like
everything in the cache), so only the first job on a weights file loads it for them.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from ..contract.files import write_json_atomic
from .cache import WeightsCache, read_json
from .loader import checkpoint_facts, load_yolo

FACTS_FILE = "facts.json"
FACT_KEYS = ("task", "imgsz", "data")


class Reference:
    """The weights' PyTorch model on first use, and its checkpoint facts (cached by content)."""

    def __init__(self, weights: Path, cache: WeightsCache) -> None:
        self.weights = weights
        self.cache = cache
        self._model: Any = None

    @property
    def loaded(self) -> bool:
        """Whether the model was loaded (by :meth:`model`)."""
        return self._model is not None

    def model(self) -> Any:
        """The ``ultralytics.YOLO`` of the weights, loaded once."""
        if self._model is None:
            self._model = load_yolo(self.weights)
        return self._model

    def facts(self) -> dict[str, Any]:
        """``task``, ``imgsz`` and ``data`` of the checkpoint (:func:`.loader.checkpoint_facts`)."""
        path = self.cache.folder / FACTS_FILE
        stored = read_json(path)
        if stored is not None and all(key in stored for key in FACT_KEYS):
            return {key: stored[key] for key in FACT_KEYS}
        facts = checkpoint_facts(self.model())
        with contextlib.suppress(OSError):  # a read-only cache only costs the next job a load
            write_json_atomic(path, {key: facts.get(key) for key in FACT_KEYS})
        return facts
