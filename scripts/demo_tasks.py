"""Manual acceptance run: real trained models of several tasks, seen as a user sees them.

Not part of the test suite (it trains for minutes). Steps, each a sub-command, sharing a state
file in the demo folder (default ``/tmp/yolo-demo``):

    python scripts/demo_tasks.py start            # a JupyterLab with jupyter-yolo, temp workspace
    python scripts/demo_tasks.py train segment:25 pose:20 classify obb
                                                  # built-in synthetic datasets + their recipes
    python scripts/demo_tasks.py wait             # until every training has ended
    python scripts/demo_tasks.py shoot            # notebook panels + sidebar in Chromium
    python scripts/demo_tasks.py stop

Screenshots go to ``artifacts/screenshots/user-*.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from jupyter_yolo.client import YoloClient  # noqa: E402
from jupyter_yolo.datasets.synthetic_tasks import SYNTHETIC_NAMES, TRAIN_RECIPES  # noqa: E402

SHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("YOLO_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _state_path(folder: Path) -> Path:
    return folder / "state.json"


def _load(folder: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(_state_path(folder).read_text())
    return state


def _save(folder: Path, state: dict[str, Any]) -> None:
    tmp = _state_path(folder).with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(_state_path(folder))


def _client(state: dict[str, Any]) -> YoloClient:
    return YoloClient(state["url"], token=state["token"])


def start(folder: Path) -> None:
    """Start JupyterLab with the extension on ``folder/workspace``, detached."""
    workspace = folder / "workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_TOKEN")}
    args = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        f"--port={port}",
        "--port-retries=0",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.root_dir={workspace}",
        f"--IdentityProvider.token={token}",
        f"--YoloApp.workspace={workspace}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with (folder / "server.log").open("ab") as log:
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    state = {"url": f"http://127.0.0.1:{port}", "token": token, "pid": proc.pid, "jobs": {}}
    if _state_path(folder).exists():
        state["jobs"] = _load(folder).get("jobs", {})
    _save(folder, state)
    client = _client(state)
    for _ in range(600):
        if proc.poll() is not None:
            sys.exit(f"server exited: {(folder / 'server.log').read_text()[-3000:]}")
        try:
            client.tasks()
            print(f"lab at {state['url']}/lab?token={token} (pid {proc.pid})")
            return
        except Exception:
            time.sleep(0.5)
    sys.exit("the server did not answer")


def train(folder: Path, specs: list[str]) -> None:
    """Create each task's synthetic dataset and queue its recipe (``task[:epochs]``)."""
    state = _load(folder)
    client = _client(state)
    have = {d["name"] for d in client.datasets()}
    for spec in specs:
        task, _, epochs = spec.partition(":")
        name = SYNTHETIC_NAMES[task]
        if name not in have:
            client.request("POST", "yolo/datasets", json_body={"synthetic": task}, timeout=600)
        recipe = dict(TRAIN_RECIPES[task])
        if epochs:
            recipe["epochs"] = int(epochs)
        job = client.train(name, device="cpu", workers=0, **recipe)
        state["jobs"][task] = job["id"]
        print(task, job["id"], recipe)
    _save(folder, state)


def wait(folder: Path) -> None:
    """Wait for every queued training; print its final headline."""
    state = _load(folder)
    client = _client(state)
    for task, job_id in state["jobs"].items():
        done = client.wait(job_id, timeout=7200)
        progress = done.get("progress") or {}
        print(task, job_id, done["status"], progress.get("headline"), done.get("error"))


def _notebook(state: dict[str, Any], client: YoloClient) -> tuple[Any, list[tuple[int, str]]]:
    """A notebook: per task a training panel and a prediction panel; a dataset panel."""
    import nbformat

    cells = [
        "from pathlib import Path\n"
        "from jupyter_yolo.widgets.training import TrainingPanel\n"
        "from jupyter_yolo.widgets.detection import DetectionPanel\n"
        "from jupyter_yolo.widgets.datasets import DatasetsPanel"
    ]
    shots: list[tuple[int, str]] = []
    for task, job_id in state["jobs"].items():
        name = SYNTHETIC_NAMES[task]
        images = [s for s in client.dataset_samples(name, split="val", count=4).get("samples", [])]
        cells.append(f"t_{task} = TrainingPanel.attach({job_id!r})\nt_{task}")
        shots.append((len(cells) - 1, f"user-training-{task}"))
        image = images[1]["path"] if len(images) > 1 else images[0]["path"]
        path = f"datasets/{name}/{image}"
        cells.append(
            f"p_{task} = DetectionPanel(model='job:{job_id}:best', backend='pytorch')\n"
            f"p_{task}.add_image({path!r}, Path({path!r}).read_bytes(), select=False)\n"
            f"p_{task}.predict({path!r})\np_{task}"
        )
        shots.append((len(cells) - 1, f"user-predict-{task}"))
        cells.append(f"d_{task} = DatasetsPanel(dataset={name!r})\nd_{task}")
        shots.append((len(cells) - 1, f"user-dataset-{task}"))
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    book.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return book, shots


def shoot(folder: Path, settle_ms: int, tasks: list[str], other: str | None) -> None:
    """Open the demo notebook in Chromium, run it, screenshot every panel and the sidebar."""
    import nbformat
    from playwright.sync_api import sync_playwright

    state = _load(folder)
    _end_sessions(state)
    if other:
        state["jobs"] = json.loads(Path(other).read_text())["jobs"]
    if tasks:
        state["jobs"] = {t: j for t, j in state["jobs"].items() if t in tasks}
    client = _client(state)
    book, shots = _notebook(state, client)
    nbformat.write(book, folder / "workspace" / "demo.ipynb")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 1800}).new_page()
        page.set_default_timeout(120_000)
        page.goto(f"{state['url']}/lab?token={state['token']}")
        page.wait_for_selector("#jp-main-dock-panel", timeout=180_000)
        page.goto(f"{state['url']}/lab/tree/demo.ipynb")
        page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=180_000)
        page.wait_for_function(
            """() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]
                     .some(e => /ipykernel\\) \\| Idle/.test(e.textContent || ''))""",
            timeout=180_000,
        )
        _dismiss(page)
        count = page.locator(".jp-Notebook .jp-CodeCell").count()
        for index in range(count):
            _run_cell(page, index)
        for index, name in shots:
            page.wait_for_timeout(settle_ms)
            cell = page.locator(".jp-Notebook .jp-CodeCell").nth(index)
            target = cell.locator(".jp-OutputArea").first
            target.scroll_into_view_if_needed()
            page.wait_for_timeout(settle_ms)
            target.screenshot(path=str(SHOTS / f"{name}.png"))
            print(SHOTS / f"{name}.png")
        # the jobs sidebar, beside the notebook
        tab = page.locator('.jp-SideBar li[data-id="jupyter-yolo-jobs"]')
        if not page.locator("#jupyter-yolo-jobs").is_visible():  # the restored layout may show it
            tab.click()
        page.locator("#jupyter-yolo-jobs .jp-yolo-JobRow").first.wait_for()
        page.set_viewport_size({"width": 1400, "height": 900})
        page.wait_for_timeout(settle_ms)
        page.screenshot(path=str(SHOTS / "user-sidebar.png"))
        print(SHOTS / "user-sidebar.png")
        browser.close()


def _end_sessions(state: dict[str, Any]) -> None:
    """Shut down the kernels of earlier shots: a reopened notebook would get their widgets."""
    client = _client(state)
    for session in client.request("GET", "api/sessions") or []:
        client.request("DELETE", f"api/sessions/{session['id']}")


def _dismiss(page: Any) -> None:
    button = page.locator(".jp-toast-button:has-text('No'), .Toastify button:has-text('No')")
    if button.count():
        button.first.click()


def _run_cell(page: Any, index: int) -> None:
    cell = page.locator(".jp-Notebook .jp-CodeCell").nth(index)
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputPrompt").first.click()
    page.locator(
        ".jp-NotebookPanel-toolbar [data-command='notebook:run-cell-and-select-next']"
    ).first.click()
    page.wait_for_function(
        """([index]) => {
            const cell = document.querySelectorAll('.jp-Notebook .jp-CodeCell')[index];
            const prompt = cell && cell.querySelector('.jp-InputPrompt');
            return !!prompt && /\\[\\d+\\]/.test(prompt.textContent || '');
        }""",
        arg=[index],
        timeout=600_000,
    )


def stop(folder: Path) -> None:
    """Stop the demo server (its own process group)."""
    state = _load(folder)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(state["pid"], signal.SIGTERM)


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["start", "train", "wait", "shoot", "stop"])
    parser.add_argument(
        "tasks", nargs="*", help="train: task[:epochs] each (default segment, pose); shoot: tasks"
    )
    parser.add_argument("--state", help="shoot: another state file's jobs (e.g. a shorter run)")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/yolo-demo"))
    parser.add_argument("--settle-ms", type=int, default=1500)
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    try:
        if args.step == "start":
            start(args.folder)
        elif args.step == "train":
            train(args.folder, args.tasks or ["segment", "pose"])
        elif args.step == "wait":
            wait(args.folder)
        elif args.step == "shoot":
            shoot(args.folder, args.settle_ms, args.tasks, args.state)
        else:
            stop(args.folder)
    except urllib.error.URLError as exc:
        sys.exit(f"the demo server cannot be reached: {exc}")


if __name__ == "__main__":
    main()
