"""The final validation of a run, kept as :data:`~jupyter_yolo.contract.results.RESULTS_FILE`.

:class:`ResultsCollector` watches the validations of a train job (the final one, ultralytics'
``final_eval`` with best.pt, is the one not run by the trainer) or of a val job. When the user
turned plots off, ultralytics leaves the detection confusion matrix empty; the collector then
fills it itself, with ultralytics' own matching (``ConfusionMatrix.process_batch`` on the
validator's prepared boxes), and no PNG is drawn. After the run, :meth:`ResultsCollector.write`
reads the validator's metrics (per-class rows, curves resampled to ``CURVE_POINTS``, the
confusion matrix), predicts a few validation images with the final weights and writes the file
atomically. Nothing here may fail the job: a failure is a ``warning`` event and the file holds
what was gathered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..contract.files import write_json_atomic
from ..contract.results import (
    CURVE_POINTS,
    RESULTS_FILE,
    ClassMetrics,
    ConfusionMatrix,
    Curve,
    ValidatorResults,
)
from .callbacks import task_metrics
from .common import JobContext
from .journal import number
from .val_images import val_images

CURVE_NAMES = {
    "Precision-Recall": "PR",
    "F1-Confidence": "F1",
    "Precision-Confidence": "Precision",
    "Recall-Confidence": "Recall",
}


def _names(validator: Any) -> list[str]:
    raw = getattr(getattr(validator, "metrics", None), "names", None) or getattr(
        validator, "names", None
    )
    if not isinstance(raw, dict):
        return []
    return [str(raw[k]) for k in sorted(raw, key=int)]


def _fill_confusion(validator: Any, on_error: Callable[[str], None]) -> None:
    """Wrap the validator's ``update_metrics`` so the detection confusion matrix is filled.

    Only validators that use ultralytics' detection ``update_metrics`` (detect, segment, pose,
    obb); classify and semantic fill theirs always, depth has none. The added work can never
    fail the validation: the first error is reported through ``on_error`` and ends it.
    """
    if getattr(validator, "_yolo_confusion_wrapped", False):
        return
    from ultralytics.models.yolo.detect.val import DetectionValidator
    from ultralytics.models.yolo.obb.val import OBBValidator

    if (
        not isinstance(validator, DetectionValidator)
        or type(validator).update_metrics is not DetectionValidator.update_metrics
    ):
        return
    original = validator.update_metrics
    # segment and pose prepare masks and keypoints too: the matrix needs the boxes only
    prepare = validator._prepare_batch if isinstance(validator, OBBValidator) else None
    failed = False

    def update_metrics(preds: Any, batch: Any) -> None:
        nonlocal failed
        original(preds, batch)
        if validator.args.plots or failed:
            return  # ultralytics fills it itself
        matrix: Any = validator.confusion_matrix
        try:
            for si, pred in enumerate(preds):
                pbatch = (
                    prepare(si, batch)
                    if prepare is not None
                    else DetectionValidator._prepare_batch(validator, si, batch)
                )
                conf = validator.args.conf
                matrix.process_batch(validator._prepare_pred(pred), pbatch, conf=conf)
        except Exception as exc:
            failed = True
            matrix.matrix[:] = 0  # a partial count would mislead
            on_error(f"the confusion matrix cannot be collected: {type(exc).__name__}: {exc}")

    setattr(validator, "update_metrics", update_metrics)  # noqa: B010 - this instance only
    setattr(validator, "_yolo_confusion_wrapped", True)  # noqa: B010


def resample(x: Any, y: Any, points: int = CURVE_POINTS) -> list[float]:
    """``y(x)`` at ``points`` evenly spaced x in [0, 1], each value finite (else 0)."""
    grid = np.linspace(0.0, 1.0, points)
    values = np.interp(grid, np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return [number(v, 5) or 0.0 for v in values]


def detection_rows(metrics: Any, names: list[str]) -> list[ClassMetrics]:
    """Per-class rows of a detect, segment, pose or obb validation (classes with labels)."""
    keys = [str(k) for k in metrics.keys]
    per_image = getattr(metrics, "nt_per_image", None)
    per_class = getattr(metrics, "nt_per_class", None)
    rows: list[ClassMetrics] = []
    for i, cls in enumerate(int(c) for c in metrics.ap_class_index):
        values = list(metrics.class_result(i))
        rows.append(
            {
                "cls": cls,
                "name": names[cls] if cls < len(names) else str(cls),
                "images": int(per_image[cls]) if per_image is not None else None,
                "instances": int(per_class[cls]) if per_class is not None else None,
                "metrics": {k: number(v) for k, v in zip(keys, values, strict=False)},
            }
        )
    return rows


def curves(metrics: Any, names: list[str]) -> list[Curve]:
    """The validator's PR, F1, P and R curves (box, and mask or pose), resampled."""
    out: list[Curve] = []
    classes = [int(c) for c in getattr(metrics, "ap_class_index", [])]
    for title, (x, y, x_label, y_label) in zip(
        metrics.curves, metrics.curves_results, strict=False
    ):
        base, _, kind = str(title).partition("(")
        rows = np.asarray(y, dtype=np.float64)
        if rows.ndim != 2 or not rows.shape[0] or len(classes) != rows.shape[0]:
            continue
        out.append(
            {
                "name": CURVE_NAMES.get(base, base),
                "kind": kind.rstrip(")") or "B",
                "x_label": str(x_label),
                "y_label": str(y_label),
                "x": [round(float(v), 4) for v in np.linspace(0.0, 1.0, CURVE_POINTS)],
                "per_class": {
                    (names[c] if c < len(names) else str(c)): resample(x, row)
                    for c, row in zip(classes, rows, strict=True)
                },
                "mean": resample(x, rows.mean(0)),
            }
        )
    return out


def confusion(validator: Any, names: list[str]) -> ConfusionMatrix | None:
    """The validator's confusion matrix (``[predicted][true]``), or None when it has none."""
    matrix = getattr(getattr(validator, "confusion_matrix", None), "matrix", None)
    if matrix is None:
        return None
    array = np.asarray(matrix, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != array.shape[1] or not array.size:
        return None
    size = array.shape[0]
    raw = getattr(validator.confusion_matrix, "names", None)
    labels = [str(raw[k]) for k in sorted(raw, key=int)] if isinstance(raw, dict) else names
    labels = labels[:size] + [str(i) for i in range(len(labels), size)]
    if size == len(names) + 1:
        labels = [*names, "background"]
    return {
        "names": labels,
        "matrix": [[number(v, 3) or 0.0 for v in row] for row in array],
    }


def classify_rows(matrix: ConfusionMatrix | None) -> list[ClassMetrics]:
    """Classify: each class's top-1 accuracy over its own images (columns of the matrix)."""
    if matrix is None:
        return []
    rows: list[ClassMetrics] = []
    counts = np.asarray(matrix["matrix"], dtype=np.float64)
    for cls, name in enumerate(matrix["names"]):
        total = float(counts[:, cls].sum())
        if total <= 0:
            continue
        rows.append(
            {
                "cls": cls,
                "name": name,
                "images": int(total),
                "instances": int(total),
                "metrics": {"metrics/accuracy_top1": number(counts[cls, cls] / total)},
            }
        )
    return rows


def semantic_rows(metrics: Any, names: list[str]) -> list[ClassMetrics]:
    """Semantic: each class's IoU and pixel accuracy (classes with ground-truth pixels)."""
    ious = np.asarray(getattr(metrics, "per_class_iou", []), dtype=np.float64).ravel()
    accuracy = np.asarray(getattr(metrics, "_per_class_pixel_acc", []), dtype=np.float64).ravel()
    pixels = np.asarray(getattr(metrics, "nt_per_class", []), dtype=np.int64).ravel()
    per_image = np.asarray(getattr(metrics, "nt_per_image", []), dtype=np.int64).ravel()
    rows: list[ClassMetrics] = []
    for cls, name in enumerate(names):
        if cls >= len(ious) or cls >= len(pixels) or pixels[cls] <= 0:
            continue
        rows.append(
            {
                "cls": cls,
                "name": name,
                "images": int(per_image[cls]) if cls < len(per_image) else None,
                "instances": int(pixels[cls]),
                "metrics": {
                    "metrics/mIoU": number(ious[cls]),
                    "metrics/pixel_acc": number(accuracy[cls]) if cls < len(accuracy) else None,
                },
            }
        )
    return rows


class ResultsCollector:
    """Follows a job's validations and writes the final one's results."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.validator: Any = None
        self.confusion_failed = False

    def attach(self, model: Any) -> None:
        """Register on an ``ultralytics`` model (its trainer and validators share callbacks)."""
        model.add_callback("on_val_start", self.on_val_start)

    def on_val_start(self, validator: Any) -> None:
        """A validation starts: the final one (not the trainer's per-epoch run) is kept."""
        if getattr(validator, "training", False):
            return
        self.validator = validator
        try:
            _fill_confusion(validator, self._warn)
        except Exception as exc:  # results must never fail the job
            self._warn(f"the confusion matrix cannot be collected: {exc}")

    def _warn(self, message: str) -> None:
        self.confusion_failed = True
        self.ctx.journal.warning("results_incomplete", message)

    def gather(self, weights: Path | None, model: Any) -> ValidatorResults | None:
        """The results of the kept validation (None when no final validation ran)."""
        validator = self.validator
        if validator is None:
            return None
        task = self.ctx.spec.task
        names = _names(validator)
        metrics = validator.metrics
        results: ValidatorResults = {
            "task": task,
            "names": names,
            "weights": self._workspace_path(weights),
            "metrics": task_metrics(dict(getattr(metrics, "results_dict", {}) or {}), task),
            "per_class": [],
            "curves": [],
            "confusion": None,
            "val_images": [],
            "speed_ms": {
                str(k): number(v, 3) for k, v in (getattr(validator, "speed", None) or {}).items()
            },
        }
        steps = (
            ("confusion", lambda: None if self.confusion_failed else confusion(validator, names)),
            ("per_class", lambda: self._rows(task, metrics, names, results["confusion"])),
            (
                "curves",
                lambda: curves(metrics, names) if hasattr(metrics, "ap_class_index") else [],
            ),
            ("val_images", lambda: val_images(self.ctx, validator, model, task, names)),
        )
        for key, step in steps:
            try:
                results[key] = step()  # type: ignore[literal-required]
            except Exception as exc:  # write what there is, say what is missing
                self.ctx.journal.warning(
                    "results_incomplete",
                    f"the run's {key.replace('_', ' ')} could not be collected: "
                    f"{type(exc).__name__}: {exc}",
                )
        return results

    @staticmethod
    def _rows(
        task: str, metrics: Any, names: list[str], matrix: ConfusionMatrix | None
    ) -> list[ClassMetrics]:
        if task == "classify":
            return classify_rows(matrix)
        if task == "semantic":
            return semantic_rows(metrics, names)
        if hasattr(metrics, "ap_class_index"):
            return detection_rows(metrics, names)
        return []

    def _workspace_path(self, weights: Path | None) -> str | None:
        if weights is None:
            return None
        try:
            return Path(weights).resolve().relative_to(self.ctx.spec.workspace.resolve()).as_posix()
        except (ValueError, OSError):
            return None

    def write(self, weights: Path | None, model: Any) -> bool:
        """Write :data:`RESULTS_FILE` in the job folder; False when there was nothing to write."""
        started = time.perf_counter()
        try:
            results = self.gather(weights, model)
            if results is None:
                return False
            write_json_atomic(self.ctx.job_dir / RESULTS_FILE, results)
        except Exception as exc:
            self.ctx.journal.warning(
                "results_incomplete", f"the run's results could not be written: {exc}"
            )
            return False
        self.ctx.journal.log(
            f"{RESULTS_FILE} written in {time.perf_counter() - started:.2f} s "
            f"({len(results['per_class'])} classes, {len(results['val_images'])} images)"
        )
        return True
