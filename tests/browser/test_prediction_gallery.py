"""The prediction gallery in a real JupyterLab and Chromium, on a lab started as the product
starts it (no news flags on the command line): no 'official Jupyter news' prompt; opening every
Dashboard tab starts no job and no warm worker; the gallery with ground truth, readable labels
on a dark and a light image, the legend and the neutral note of an image with nothing found.
Screenshots of each are artifacts."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from ..conftest import install_dataset
from ..inference_models import trained_model
from ..server_process import ServerProcess
from .conftest import screenshot
from .notebook_ui import open_notebook, panel_screenshot, run_code_cell, wait_until

DASHBOARD = ".yolo-dashboard"
DETECTION = ".yolo-detection-panel"
TALL = {"width": 1400, "height": 2000}
NEWS = "official Jupyter news"

CELLS = [
    "from jupyter_yolo.widgets import Dashboard\n\n"
    "board = Dashboard(detection={'model': 'shapes-n.pt', 'samples': 8})\nboard",
    # a dark and a light version of a validation image, as uploads
    "import io\nfrom PIL import Image, ImageEnhance\n"
    "d = board.detection\n"
    "source = Image.open(io.BytesIO(d.client.dataset_file('shapes', d._images[d.gallery.paths[0]]"
    ".dataset_path))).convert('RGB')\n"
    "for name, factor in (('dark', 0.35), ('light', 1.8)):\n"
    "    out = io.BytesIO()\n"
    "    ImageEnhance.Brightness(source).enhance(factor).save(out, format='PNG')\n"
    "    d.add_image(f'upload:{name}.png', out.getvalue(), select=False)\n"
    "d.truth_w.value = True\n"
    "found = d.predict_gallery()\n"
    "print(sum(len(v) for v in found.values()), 'objects in', len(found), 'images')",
    "boxes = d.predict(d.gallery.paths[2])\nprint(len(boxes), d.image_w.value)",
    "blank = io.BytesIO()\nImage.new('RGB', (128, 128), (128, 128, 128)).save(blank, 'PNG')\n"
    "d.add_image('upload:blank.png', blank.getvalue(), select=False)\n"
    "print(d.predict('upload:blank.png'))",
]


@pytest.fixture
def product_lab(
    tmp_path: Path, shapes_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """``jupyter lab`` as the container starts it: the shipped config only, no test flags."""
    workspace = tmp_path / "workspace"
    install_dataset(shapes_template, workspace / "datasets" / "shapes")
    (workspace / "weights").mkdir(parents=True)
    model = trained_model(tmp_path_factory.getbasetemp())
    shutil.copy2(model.weights, workspace / "weights" / "shapes-n.pt")
    server = ServerProcess(workspace, workspace, module="jupyterlab")
    server.start(timeout=120)
    try:
        yield server
    finally:
        server.stop()


def workers(lab: ServerProcess) -> list[Any]:
    return list(lab.request("GET", "/yolo/predict/workers")["workers"])


def news_shown(page: Any) -> bool:
    return bool(page.locator(f".jp-toast-message:has-text('{NEWS}')").count()) or (
        NEWS in (page.locator(".Toastify").first.inner_text() if page.locator(".Toastify").count()
                 else "")
    )  # fmt: skip


@pytest.mark.slow
def test_gallery_truth_labels_and_no_prediction_unasked(
    browser: Any, product_lab: ServerProcess
) -> None:
    lab = product_lab
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, lab.root / "gallery.ipynb")
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(f"{lab.url}/lab?token={lab.token}")
        page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
        page.wait_for_selector(".jp-LauncherCard", timeout=120_000)
        time.sleep(3)  # the announcements plugin asks right after the app is restored
        assert not news_shown(page), "JupyterLab asked about news"
        screenshot(page, "lab-fresh-no-news")
        settings = lab.request(
            "GET", "/lab/api/settings/@jupyterlab/apputils-extension:notification"
        )
        fetch_news = settings["schema"]["properties"]["fetchNews"]["default"]
        assert fetch_news == "false", settings["schema"]["properties"]["fetchNews"]

        page.set_viewport_size(TALL)
        open_notebook(page, lab, "gallery.ipynb")
        assert not news_shown(page)
        jobs = [j["id"] for j in lab.request("GET", "/yolo/jobs")["jobs"]]
        run_code_cell(page, 0)
        page.wait_for_selector(f"{DASHBOARD} .lm-TabBar-tab", timeout=120_000)
        for title in ("Datasets", "Training", "Detection", "Hardware", "Detection"):
            page.locator(f"{DASHBOARD} .lm-TabBar-tab:has-text('{title}')").click()
            time.sleep(0.5)
        page.wait_for_selector(f"{DETECTION} .yolo-gallery img", timeout=60_000)
        time.sleep(1)
        assert [j["id"] for j in lab.request("GET", "/yolo/jobs")["jobs"]] == jobs
        assert workers(lab) == [], "opening the tabs started a warm worker"

        run_code_cell(page, 1, timeout=600)  # dark and light uploads, the whole gallery
        run_code_cell(page, 2, timeout=300)  # one image large, ground truth on
        wait_until(lambda: page.locator(f"{DETECTION} .yolo-legend").count(), 30, "no legend shown")
        legend = page.locator(f"{DETECTION} .yolo-legend").inner_text()
        assert all(name in legend for name in ("circle", "square", "triangle")), legend
        captions = page.locator(f"{DETECTION} .yolo-gallery-open").all_inner_texts()
        assert any("object" in c for c in captions), captions
        panel_screenshot(page, DETECTION, "gallery-truth-legend")
        page.locator(f"{DETECTION} button[title^='open upload:dark.png']").click()
        wait_until(
            lambda: page.locator(f"{DETECTION} .yolo-note", has_text="dark.png").count(),
            120,
            "clicking a tile did not show it large",
        )
        panel_screenshot(page, f"{DETECTION} .js-plotly-plot", "gallery-dark-image-labels")
        page.locator(f"{DETECTION} button[title^='open upload:light.png']").click()
        wait_until(
            lambda: page.locator(f"{DETECTION} .yolo-note", has_text="light.png").count(),
            120,
            "the light image was not shown large",
        )
        panel_screenshot(page, f"{DETECTION} .js-plotly-plot", "gallery-light-image-labels")

        run_code_cell(page, 3, timeout=300)  # nothing found: a neutral note
        note = page.locator(f"{DETECTION} .yolo-empty").first
        note.wait_for(timeout=60_000)
        assert "No objects found" in note.inner_text()
        panel_screenshot(page, f"{DETECTION} .yolo-empty", "gallery-nothing-found-note")
        assert [j["id"] for j in lab.request("GET", "/yolo/jobs")["jobs"]] == jobs
    except BaseException:
        screenshot(page, "FAILED-test_prediction_gallery")
        raise
    finally:
        context.close()
