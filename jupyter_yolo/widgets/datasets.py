"""The datasets panel: upload or import, the validation report, a class histogram and samples.

Small archives go through a ``FileUpload`` (the browser sends the file to the kernel, the kernel
streams it to the server with a progress bar); large ones are put in the workspace first (scp,
the file browser ...) and imported by their workspace-relative path. While the server extracts,
converts and validates, the panel shows its stage from ``GET /yolo/datasets/uploads``.
"""

from __future__ import annotations

import posixpath
import re
import threading
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from ..client import YoloClient, YoloClientError
from .common import (
    STYLE,
    Ticker,
    error_text,
    esc,
    fmt_bytes,
    get_client,
    in_background,
    note,
    table,
)
from .figure import live_figure
from .samples import samples_figure

SAMPLE_COLUMNS = 4
THUMBNAIL = 192
NAME_CLEAN = re.compile(r"[^A-Za-z0-9_.-]+")


def dataset_name_for(filename: str) -> str:
    """A valid dataset name from an archive's file name (``My Data (1).zip`` -> ``My_Data_1``)."""
    stem = posixpath.basename(filename)
    for suffix in (".zip", ".ZIP"):
        stem = stem.removesuffix(suffix)
    name = NAME_CLEAN.sub("_", stem).strip("_.-")[:64]
    return name or "dataset"


def report_html(dataset: dict[str, Any]) -> str:
    """The dataset's summary and validation findings as HTML."""
    report = dataset.get("report") or {}
    status = dataset.get("status")
    kind = {"ok": "ok", "warnings": "warning"}.get(str(status), "error")
    parts = [
        note(
            kind,
            (
                f"<b>{esc(dataset.get('name'))}</b>: {esc(status)} \u00b7 "
                f"{esc(dataset.get('images'))} "
                f"images \u00b7 {esc(dataset.get('instances'))} boxes \u00b7 "
                f"{esc(dataset.get('classes'))} classes \u00b7 {fmt_bytes(dataset.get('size'))} "
                f"\u00b7 {esc(dataset.get('errors'))} errors, {esc(dataset.get('warnings'))} "
                "warnings"
            ),
            raw=True,
        )
    ]
    for line in dataset.get("notes") or []:
        parts.append(note("info", str(line)))
    splits = dataset.get("splits") or {}
    if splits:
        parts.append(
            table(
                [
                    [
                        name,
                        s.get("images"),
                        s.get("labelled"),
                        s.get("backgrounds"),
                        s.get("instances"),
                        s.get("unreadable_images"),
                    ]
                    for name, s in splits.items()
                ],
                ["split", "images", "labelled", "backgrounds", "boxes", "unreadable"],
            )
        )
    problems = report.get("problems") or []
    if problems:
        rows = [
            [p.get("severity"), p.get("code"), p.get("file"), p.get("line"), p.get("message")]
            for p in problems[:50]
        ]
        more = " (first 50)" if len(problems) > 50 or report.get("problems_truncated") else ""
        parts.append(f'<div class="yolo-h">Findings{more}</div>')
        parts.append(table(rows, ["severity", "code", "file", "line", "message"]))
    return STYLE + "".join(parts)


def histogram_figure() -> go.FigureWidget:
    """An empty stacked bar chart: boxes per class and split."""
    fig = live_figure()
    fig.update_layout(
        barmode="stack",
        height=280,
        template="plotly_white",
        title="Boxes per class",
        margin={"l": 40, "r": 10, "t": 40, "b": 40},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


class DatasetsPanel(widgets.VBox):  # type: ignore[misc]
    """Bring a dataset in and check it: upload, import, report, histogram, samples."""

    def __init__(
        self,
        client: YoloClient | None = None,
        *,
        dataset: str | None = None,
        samples: int = 8,
    ) -> None:
        self.client = get_client(client)
        self.sample_count = samples
        self._lock = threading.Lock()
        self.dataset: dict[str, Any] | None = None
        self._named_after = ""  # the name filled in from the last file chosen
        self.upload_w = widgets.FileUpload(accept=".zip", multiple=False, description="Choose .zip")
        self.name_w = widgets.Text(
            description="name", placeholder="dataset name", layout=widgets.Layout(width="260px")
        )
        self.upload_button = widgets.Button(
            description="Upload", icon="upload", button_style="primary"
        )
        self.path_w = widgets.Combobox(
            description="path",
            placeholder="uploads/big.zip (workspace-relative)",
            options=self._workspace_archives(),
            ensure_option=False,
            layout=widgets.Layout(width="420px"),
        )
        self.import_button = widgets.Button(description="Import", icon="folder-open")
        self.progress_w = widgets.FloatProgress(
            value=0, min=0, max=1, layout=widgets.Layout(width="260px")
        )
        self.stage_w = widgets.HTML()
        self.choose_w = widgets.Dropdown(
            description="dataset", layout=widgets.Layout(width="320px")
        )
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.delete_button = widgets.Button(
            description="Delete", icon="trash", button_style="danger"
        )
        self.message_w = widgets.HTML()
        self.report_w = widgets.HTML()
        self.histogram = histogram_figure()
        self.samples_box = widgets.VBox()
        self.samples_figure: go.FigureWidget | None = None
        super().__init__(
            children=[
                widgets.HTML(
                    STYLE + '<div class="yolo-h">Datasets</div>'
                    '<div class="yolo-muted">Upload a small zip from this computer, or '
                    "import a large one already in the workspace.</div>"
                ),
                widgets.HBox([self.upload_w, self.name_w, self.upload_button]),
                widgets.HBox([self.path_w, self.import_button]),
                widgets.HBox([self.progress_w, self.stage_w]),
                self.message_w,
                widgets.HBox([self.choose_w, self.refresh_button, self.delete_button]),
                self.report_w,
                self.histogram,
                self.samples_box,
            ]
        )
        self.add_class("yolo-datasets-panel")
        self.upload_w.observe(self._archive_chosen, names="value")
        self.upload_button.on_click(lambda _: self._run(self.upload_chosen))
        self.import_button.on_click(lambda _: self._run(self._import_clicked))
        self.refresh_button.on_click(lambda _: self._run(self.refresh))
        self.delete_button.on_click(lambda _: self._run(self._delete_clicked))
        self._refreshing = False
        self.choose_w.observe(self._chosen, names="value")
        self.refresh(select=dataset)

    # ------------------------------------------------------------------------------ helpers

    def _run(self, fn: Any) -> None:
        self.message_w.value = ""
        in_background(fn, self._show_error, name="yolo-datasets")

    def _show_error(self, exc: BaseException) -> None:
        self.message_w.value = note("error", error_text(exc))

    def _workspace_archives(self) -> list[str]:
        """Zip files and folders under the workspace's ``uploads/`` (best effort)."""
        try:
            prefix = self.client.workspace_server_path()
            if prefix is None:
                return []
            folder = "/".join(filter(None, [prefix, "uploads"]))
            listing = self.client.request("GET", f"api/contents/{folder}", params={"content": 1})
        except YoloClientError:
            return []
        options = []
        for item in listing.get("content") or []:
            if item.get("type") == "directory" or str(item.get("name", "")).endswith(".zip"):
                options.append(f"uploads/{item['name']}")
        return sorted(options)

    def _archive_chosen(self, _: Any) -> None:
        """A file chosen: the name follows it, unless the person typed a name of their own."""
        files = list(self.upload_w.value or ())
        if files and self.name_w.value.strip() in ("", self._named_after):
            self._named_after = dataset_name_for(str(files[0]["name"]))
            self.name_w.value = self._named_after

    def _watch_operation(self, name: str) -> Ticker:
        def poll() -> None:
            operations = self.client.dataset_uploads().get("uploads") or []
            for op in operations:
                if op.get("name") == name and op.get("stage") != "receiving":
                    done, total = op.get("stage_done"), op.get("stage_total")
                    counts = f" {done}/{total}" if total else ""
                    self.stage_w.value = (
                        f'<span class="yolo-muted">server: {esc(op["stage"])}{esc(counts)}</span>'
                    )
                    if op.get("stage_fraction") is not None:
                        self.progress_w.value = float(op["stage_fraction"])

        return Ticker(poll, 0.5).start()

    # ------------------------------------------------------------------------------ actions

    def upload(self, name: str, archive: bytes, filename: str | None = None) -> dict[str, Any]:
        """Upload a zip archive's bytes as dataset ``name``; show its report; return it."""
        self.upload_button.disabled = True
        self.progress_w.value = 0
        self.progress_w.bar_style = "info"

        def progress(sent: int, total: int) -> None:
            self.progress_w.value = sent / total if total else 1.0
            self.stage_w.value = (
                f'<span class="yolo-muted">sending {fmt_bytes(sent)} of {fmt_bytes(total)}</span>'
            )

        watcher = self._watch_operation(name)
        try:
            dataset = self.client.upload_dataset(
                name, archive, filename=filename, progress=progress
            )
        finally:
            watcher.stop()
            self.upload_button.disabled = False
        return self._added(dataset)

    def upload_chosen(self) -> dict[str, Any]:
        """Upload the archive chosen in the file picker."""
        files = list(self.upload_w.value or ())
        if not files:
            raise ValueError("Choose a .zip archive first.")
        item = files[0]
        name = self.name_w.value.strip() or dataset_name_for(str(item["name"]))
        return self.upload(name, bytes(item["content"]), filename=str(item["name"]))

    def import_path(self, path: str, name: str | None = None) -> dict[str, Any]:
        """Import a workspace-relative zip or folder as a dataset; show its report."""
        self.import_button.disabled = True
        self.progress_w.value = 0
        label = name or dataset_name_for(path.rstrip("/"))
        watcher = self._watch_operation(label)
        try:
            dataset = self.client.import_dataset(name, path)
        finally:
            watcher.stop()
            self.import_button.disabled = False
        return self._added(dataset)

    def _import_clicked(self) -> None:
        path = (self.path_w.value or "").strip()
        if not path:
            raise ValueError("Type the workspace-relative path of a .zip or a folder.")
        self.import_path(path, self.name_w.value.strip() or None)

    def _added(self, dataset: dict[str, Any]) -> dict[str, Any]:
        self.progress_w.value = 1.0
        self.progress_w.bar_style = "success" if dataset.get("status") != "error" else "danger"
        self.stage_w.value = f'<span class="yolo-muted">{esc(dataset["name"])} added</span>'
        self.refresh(select=dataset["name"])
        return dataset

    def _delete_clicked(self) -> None:
        name = self.choose_w.value
        if name:
            self.client.delete_dataset(name)
            self.refresh()

    # ------------------------------------------------------------------------------ showing

    def refresh(self, select: str | None = None) -> None:
        """Reload the dataset list and show ``select`` (or the one chosen)."""
        names = [str(d["name"]) for d in self.client.datasets()]
        target = select or self.choose_w.value
        if target not in names:
            target = names[0] if names else None
        self._refreshing = True
        try:
            self.choose_w.options = names
            self.choose_w.value = target
        finally:
            self._refreshing = False
        self.show(target)

    def _chosen(self, _: Any) -> None:
        if not self._refreshing:
            self._run(self.show)

    def show(self, name: str | None = None) -> dict[str, Any] | None:
        """Show a dataset's report, class histogram and samples."""
        name = name or self.choose_w.value
        if not name:
            self.report_w.value = STYLE + note("info", "No dataset yet: upload one.")
            return None
        dataset = self.client.dataset(name)
        with self._lock:
            self.dataset = dataset
        self.report_w.value = report_html(dataset)
        self._draw_histogram(dataset.get("report") or {})
        self._draw_samples(name, dataset)
        return dataset

    def _draw_histogram(self, report: dict[str, Any]) -> None:
        rows = report.get("class_histogram") or []
        splits = [s for s in ("train", "val", "test") if any(r.get(s) for r in rows)]
        names = [str(r.get("name")) for r in rows]
        with self.histogram.batch_update():
            self.histogram.data = []
        self.histogram.add_traces(
            [go.Bar(name=split, x=names, y=[r.get(split) or 0 for r in rows]) for split in splits]
        )

    def _draw_samples(self, name: str, dataset: dict[str, Any]) -> None:
        splits = dataset.get("splits") or {}
        split = "val" if (splits.get("val") or {}).get("images") else next(iter(splits), None)
        if split is None:
            return
        samples = self.client.dataset_samples(
            name, split=split, count=self.sample_count, thumbnail=THUMBNAIL
        )
        figure = live_figure(samples_figure(samples))
        old = self.samples_figure
        self.samples_figure = figure
        self.samples_box.children = [figure]
        if old is not None:
            old.close()
