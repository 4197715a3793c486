"""Browser tests: a real JupyterLab with the extension (token required) and Debian's Chromium.

Screenshots go to ``artifacts/screenshots/`` at the repository root; a failing test also leaves
one named after itself there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import REPO_ROOT, install_dataset
from ..server_process import ServerProcess

CHROMIUM = os.environ.get("YOLO_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is a browser test."""
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> None:
    """No pytest-jupyter event loop here: Playwright's sync API runs its own in this thread."""


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> None:
    """No in-process server here: browser tests use a real ``jupyter lab`` subprocess."""


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium; the README's test command installs it."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run 'make test' (it installs Debian's chromium)")
    return CHROMIUM


@pytest.fixture(scope="package")
def browser(chromium_path: str) -> Iterator[Any]:
    """One headless Chromium for the browser tests, driven by Playwright's sync API.

    Package scope: Playwright's event loop must be gone before pytest-jupyter tests run.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def lab_args() -> tuple[str, ...]:
    """Extra command-line settings of the ``lab`` fixture's server (a test file may override)."""
    return ()


@pytest.fixture
def lab(
    tmp_path: Path, shapes_template: Path, lab_args: tuple[str, ...]
) -> Iterator[ServerProcess]:
    """A real ``jupyter lab`` with the extension on a temporary workspace holding ``shapes``."""
    workspace = tmp_path / "workspace"
    install_dataset(shapes_template, workspace / "datasets" / "shapes")
    server = ServerProcess(
        workspace,
        workspace,
        module="jupyterlab",
        extra_args=(
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            *lab_args,
        ),
    )
    server.start(timeout=120)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(browser: Any, lab: ServerProcess, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A logged-in browser page on the lab (the token is exchanged for a cookie once)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{lab.url}/lab?token={lab.token}")
    page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
    yield page
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        screenshot(page, f"FAILED-{request.node.name}")
    context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember each phase's report on the item, so fixtures can see a failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as an artifact and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    path = SCREENSHOTS / f"{safe}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def copy_notebook(name: str, workspace: Path) -> Path:
    """Copy a notebook from notebooks/ into the lab's workspace."""
    dest = workspace / name
    shutil.copy(REPO_ROOT / "notebooks" / name, dest)
    return dest
