"""Driving a JupyterLab notebook from Playwright: open, run code cells, read widget plots."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..server_process import ServerProcess
from .conftest import SCREENSHOTS

CELL_DONE = """([index]) => {
    const cell = document.querySelectorAll('.jp-Notebook .jp-CodeCell')[index];
    if (!cell) return false;
    const prompt = cell.querySelector('.jp-InputPrompt');
    return !!prompt && /\\[\\d+\\]/.test(prompt.textContent || '');
}"""

TRACE_POINTS = """([panel, name]) => {
    const root = document.querySelector(panel);
    const plot = root && root.querySelector('.js-plotly-plot');
    if (!plot || !plot.data) return -1;
    const trace = plot.data.find(t => t.name === name);
    return trace && trace.x ? trace.x.length : 0;
}"""

PLOT_TRACES = """([panel]) => {
    const root = document.querySelector(panel);
    const plot = root && root.querySelector('.js-plotly-plot');
    if (!plot || !plot.data) return null;
    return {
        traces: plot.data.length,
        drawn: root.querySelectorAll('.scatterlayer .trace path').length,
        images: root.querySelectorAll('.imagelayer image, .layer-above image, image').length,
        hover: plot.data.slice(1).map(t => t.text).slice(0, 5),
    };
}"""


def open_notebook(page: Any, lab: ServerProcess, path: str) -> None:
    """Open a notebook of the lab's root and wait until its kernel is idle."""
    page.goto(f"{lab.url}/lab/tree/{path}")
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=120_000)
    page.wait_for_function(
        """() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]
                 .some(e => /ipykernel\\) \\| Idle/.test(e.textContent || ''))""",
        timeout=120_000,
    )
    dismiss_news(page)


def dismiss_news(page: Any) -> None:
    """Answer JupyterLab's 'notified about official Jupyter news?' toast, which hides panels."""
    button = page.locator(".jp-toast-button:has-text('No'), .Toastify button:has-text('No')")
    if button.count():
        button.first.click()


def run_code_cell(page: Any, index: int, timeout: float = 180.0) -> None:
    """Run the ``index``-th code cell (0-based) and wait until it has finished."""
    cell = page.locator(".jp-Notebook .jp-CodeCell").nth(index)
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputPrompt").first.click()
    page.locator(
        ".jp-NotebookPanel-toolbar [data-command='notebook:run-cell-and-select-next']"
    ).first.click()
    page.wait_for_function(CELL_DONE, arg=[index], timeout=timeout * 1000)
    if cell.locator("[data-mime-type='application/vnd.jupyter.error']").count():
        raise AssertionError(f"code cell {index} raised:\n{cell.inner_text()}")


def trace_points(page: Any, panel: str, name: str) -> int:
    """Points of the trace ``name`` in the plot rendered inside ``panel`` (-1: no plot yet)."""
    return int(page.evaluate(TRACE_POINTS, [panel, name]))


def plot_summary(page: Any, panel: str) -> dict[str, Any] | None:
    """Trace count, drawn trace paths and images of the plot inside ``panel``."""
    result: dict[str, Any] | None = page.evaluate(PLOT_TRACES, [panel])
    return result


def wait_for_text(page: Any, selector: str, text: str, timeout: float = 180.0) -> None:
    """Wait until the element's text contains ``text``."""
    page.wait_for_function(
        """([selector, text]) => {
            const el = document.querySelector(selector);
            return !!el && (el.textContent || '').includes(text);
        }""",
        arg=[selector, text],
        timeout=timeout * 1000,
    )


def wait_until(predicate: Any, timeout: float, message: str, interval: float = 0.2) -> Any:
    """Poll ``predicate()`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(message)


def panel_screenshot(page: Any, selector: str, name: str) -> Path:
    """Save a screenshot of one rendered panel (the whole element, scrolled into view)."""
    dismiss_news(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    element = page.locator(selector).first
    element.scroll_into_view_if_needed()
    element.screenshot(path=str(path))
    return path


def hover_first_box(page: Any, panel: str) -> str:
    """Move the mouse into the first box drawn in the panel's plot; return the hover label."""
    box = page.locator(f"{panel} .scatterlayer .trace path.js-fill").first
    box.scroll_into_view_if_needed()
    bounds = box.bounding_box()
    assert bounds is not None
    page.mouse.move(bounds["x"] + bounds["width"] / 2, bounds["y"] + bounds["height"] / 2)
    label = page.locator(f"{panel} .hoverlayer .hovertext")
    label.first.wait_for(timeout=10_000)
    return str(label.first.text_content() or "")
