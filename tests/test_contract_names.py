"""The job folder's file names, statuses and box metric keys come from the contract only."""

from __future__ import annotations

import ast
from pathlib import Path

from jupyter_yolo.contract import files
from jupyter_yolo.contract.status import STATUSES
from jupyter_yolo.contract.tasks import TASKS

PACKAGE = Path(__file__).resolve().parent.parent / "jupyter_yolo"
NAMES = {
    files.JOB_FILE,
    files.STATUS_FILE,
    files.EVENTS_FILE,
    files.LOG_FILE,
    files.LOG_OLD_FILE,
    files.PREDICTIONS_FILE,
}


def literal_names(path: Path) -> list[str]:
    """Where a string constant of ``path`` is exactly a contract file name (not in docstrings
    or messages, which only mention one)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and node.value in NAMES:
            found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value!r}")
    return found


def test_job_file_names_are_the_contracts() -> None:
    owners = [*sorted((PACKAGE / "jobs").glob("*.py")), *sorted((PACKAGE / "runner").glob("*.py"))]
    found = [hit for path in owners for hit in literal_names(path)]
    assert found == [], "use the contract's names (contract.files):\n" + "\n".join(found)


def test_statuses_and_metric_keys_are_the_contracts() -> None:
    from jupyter_yolo import openapi
    from jupyter_yolo.jobs import registry
    from jupyter_yolo.runner.callbacks import METRIC_KEYS

    assert registry.STATUSES is STATUSES and openapi.STATUSES is STATUSES
    assert tuple(METRIC_KEYS.values()) == TASKS["detect"].metric_keys
    assert list(METRIC_KEYS) == ["precision", "recall", "mAP50", "mAP50-95"]


def test_one_geometry_literal_and_no_dead_agreement_gate() -> None:
    """contract.tasks.Geometry is the only list of preview geometries; predict has no gate
    that every task passes (AGREEMENT_READY was TASK_NAMES, so its branch never ran)."""
    holders = [
        path.name
        for path in sorted((PACKAGE / "contract").glob("*.py"))
        if '"rotated-box", "class-scores"' in path.read_text(encoding="utf-8")
    ]
    assert holders == ["tasks.py"]
    from jupyter_yolo.runner import predict

    assert not hasattr(predict, "AGREEMENT_READY")
