"""A predict job's .pt is loaded only when the model is needed (its facts come from the cache)."""

from __future__ import annotations

import json
from pathlib import Path

from jupyter_yolo.inference.cache import WeightsCache
from jupyter_yolo.inference.reference import FACTS_FILE, Reference


def test_stored_facts_spare_loading_the_model(tmp_path: Path) -> None:
    weights = tmp_path / "not-a-checkpoint.pt"
    weights.write_bytes(b"loading this would fail")
    cache = WeightsCache(tmp_path / "exports", "0123abcd")
    cache.folder.mkdir(parents=True)
    facts = {"task": "segment", "imgsz": 320, "data": "datasets/x/data.yaml"}
    (cache.folder / FACTS_FILE).write_text(json.dumps(facts))

    reference = Reference(weights, cache)

    assert reference.facts() == facts
    assert not reference.loaded


def test_incomplete_stored_facts_are_not_trusted(tmp_path: Path) -> None:
    weights = tmp_path / "missing.pt"
    cache = WeightsCache(tmp_path / "exports", "0123abcd")
    cache.folder.mkdir(parents=True)
    (cache.folder / FACTS_FILE).write_text(json.dumps({"task": "detect"}))

    reference = Reference(weights, cache)
    loads: list[Path] = []

    def load() -> object:
        loads.append(weights)
        return object()

    reference.model = load  # type: ignore[method-assign]
    facts = reference.facts()  # a bare object has no overrides: every fact is unknown

    assert loads == [weights]
    assert facts == {"task": None, "imgsz": None, "data": None}
    assert json.loads((cache.folder / FACTS_FILE).read_text()) == facts
