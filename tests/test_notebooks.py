"""The example notebooks run top to bottom with nbclient against a real jupyter server.

The kernel starts in the server's root folder and finds the server by itself from the Jupyter
runtime folder (quickstart, custom-dataset); the remote notebook gets only a URL and a token.
Tiny settings come in through environment variables read by each notebook's parameter cell.
Notebooks in the repository have no outputs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from .conftest import REPO_ROOT, install_dataset
from .server_process import ServerProcess, serving

NOTEBOOKS = REPO_ROOT / "notebooks"
TINY = {"YOLO_NB_EPOCHS": "2", "YOLO_NB_IMGSZ": "64", "YOLO_NB_BATCH": "8"}


@pytest.fixture(scope="module")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private Jupyter runtime folder shared by the server and the kernels."""
    path = tmp_path_factory.mktemp("runtime")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_RUNTIME_DIR", str(path))
        for name in ("JUPYTER_SERVER_URL", "JUPYTER_TOKEN"):
            patch.delenv(name, raising=False)
        yield path


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, shapes_template: Path, runtime_dir: Path
) -> Iterator[ServerProcess]:
    """A jupyter server with the extension; its root folder is the workspace."""
    workspace = tmp_path_factory.mktemp("notebooks") / "workspace"
    install_dataset(shapes_template, workspace / "datasets" / "shapes")
    with serving(workspace) as process:
        yield process


def execute(name: str, server: ServerProcess, env: dict[str, str]) -> nbformat.NotebookNode:
    """Run a copy of the notebook in the server's root folder; return it with its outputs."""
    source = NOTEBOOKS / name
    copy = server.root / name
    shutil.copy(source, copy)
    notebook = nbformat.read(copy, as_version=4)
    kernel_env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_TOKEN")}
    kernel_env.update(env)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(server.root)}},
    )
    client.execute(env=kernel_env)
    return notebook


def text_of(notebook: nbformat.NotebookNode) -> str:
    """Every stream and text output of the notebook."""
    parts: list[str] = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(str(output.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def widget_views(notebook: nbformat.NotebookNode) -> int:
    """How many widget views the notebook displayed."""
    return sum(
        1
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if "application/vnd.jupyter.widget-view+json" in output.get("data", {})
    )


def jobs(server: ServerProcess, **match: Any) -> list[dict[str, Any]]:
    """The server's jobs whose fields match."""
    listed: list[dict[str, Any]] = server.request("GET", "/yolo/jobs")["jobs"]
    return [j for j in listed if all(j.get(k) == v for k, v in match.items())]


def test_notebooks_in_the_repository_have_no_outputs() -> None:
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == ["custom-dataset.ipynb", "quickstart.ipynb", "remote-access.ipynb"]
    for path in NOTEBOOKS.glob("*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name


@pytest.mark.slow
def test_quickstart_runs(server: ServerProcess) -> None:
    notebook = execute("quickstart.ipynb", server, TINY)
    text = text_of(notebook)
    assert f"server: {server.url}/" in text
    assert "shapes: 40 images" in text
    assert "boxes on datasets/shapes/images/val/" in text
    assert widget_views(notebook) == 3  # accelerators, training, detection
    trained = jobs(server, kind="train", status="succeeded")
    assert trained and trained[0]["request"]["epochs"] == 2
    # the detection panel answers on a warm inference worker, not with a predict job
    assert not jobs(server, kind="predict")
    # (a PyTorch stand-in while the trained model is prepared in the background, then the
    # warm worker of its measured backend: prepare_after_training)
    workers = server.request("GET", "/yolo/predict/workers")["workers"]
    assert any(w["task"] == "detect" for w in workers), workers


@pytest.mark.slow
def test_custom_dataset_runs(server: ServerProcess) -> None:
    notebook = execute("custom-dataset.ipynb", server, {**TINY, "YOLO_NB_DATASET_NAME": "mine"})
    text = text_of(notebook)
    assert "mine: ok, 60 images" in text
    dataset = server.request("GET", "/yolo/datasets/mine")
    assert dataset["status"] == "ok" and dataset["images"] == 60
    assert widget_views(notebook) == 2
    assert jobs(server, kind="train", data="mine", status="succeeded")


@pytest.mark.slow
def test_remote_access_runs_with_url_and_token_only(server: ServerProcess, tmp_path: Path) -> None:
    env = {
        **TINY,
        "YOLO_NB_EPOCHS": "4",
        "YOLO_REMOTE_URL": server.url,
        "YOLO_REMOTE_TOKEN": server.token,
        "JUPYTER_RUNTIME_DIR": str(tmp_path),  # nothing to discover: URL and token only
    }
    notebook = execute("remote-access.ipynb", server, env)
    text = text_of(notebook)
    assert "AuthenticationError 403" in text
    assert "stop: stopped" in text
    assert "final: succeeded" in text
    assert "NotFoundError 404" in text
