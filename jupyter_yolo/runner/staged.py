"""Predict batches in stages: the next batch is read and preprocessed while this one infers.

``model.predict(frames)`` does everything on the loop's thread, one step after the other: the
letterbox and tensor conversion of a batch wait for the previous batch's inference and
postprocessing, and the inference waits for them. Here the first batch goes through
``model.predict`` (which sets ultralytics' predictor up with the job's arguments, and warms the
model up); every later batch is read, decoded and preprocessed by that same predictor on the
read-ahead thread (:class:`~.pipeline.ReadAhead`), and the loop's thread runs the predictor's
own ``inference`` and ``postprocess`` on it. The steps are ultralytics' own, on the same
images, so the results are the ones ``model.predict`` gives; each result's ``speed`` says the
batch's per-image share as ultralytics reports it.

Not for tracking: the tracker runs inside ``model.track`` frame by frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from .media import Frame
from .pipeline import ReadAhead


def _take(frames: Iterator[Frame], size: int) -> list[Frame]:
    group: list[Frame] = []
    for frame in frames:
        group.append(frame)
        if len(group) >= size:
            break
    return group


def _finish(predictor: Any, group: list[Frame], im: Any, prepared_s: float) -> list[Any]:
    """The predictor's inference and postprocess of a preprocessed batch, as ``predict`` does."""
    import torch

    images = [frame.image for frame in group]
    n = len(images)
    with torch.inference_mode():
        started = time.perf_counter()
        preds = predictor.inference(im)
        inferred = time.perf_counter()
        # what model.predict's loop sets before postprocess (paths of in-memory images)
        predictor.batch = ([f"image{i}.jpg" for i in range(n)], images, [""] * n)
        results: list[Any] = list(predictor.postprocess(preds, im, images))
        done = time.perf_counter()
    for result in results:
        result.speed = {
            "preprocess": prepared_s * 1e3 / n,
            "inference": (inferred - started) * 1e3 / n,
            "postprocess": (done - inferred) * 1e3 / n,
        }
    return results


def predicted_batches(
    model: Any,
    frames: Iterator[Frame],
    size: int,
    args: dict[str, Any],
    *,
    check: Callable[[], None],
    primed: Callable[[], None] = lambda: None,
    depth: int = 2,
) -> Iterator[tuple[list[Frame], list[Any]]]:
    """``(frames, results)`` per batch of ``size``; ``check`` (the stop request) per batch.

    ``primed`` runs once the predictor is set up (after the first batch). Close the generator
    (or exhaust it) before closing the source: it waits for the read-ahead thread to leave it.
    """
    first = _take(frames, size)
    if not first:
        return
    check()
    yield first, list(model.predict([f.image for f in first], stream=False, **args))
    primed()
    predictor = model.predictor

    def prepared() -> Iterator[tuple[list[Frame], Any, float]]:
        import torch

        while group := _take(frames, size):
            started = time.perf_counter()
            with torch.inference_mode():
                im = predictor.preprocess([frame.image for frame in group])
            yield group, im, time.perf_counter() - started

    ahead = ReadAhead(prepared(), depth)
    try:
        for group, im, prepared_s in ahead:
            check()
            yield group, _finish(predictor, group, im, prepared_s)
    finally:
        ahead.close()
