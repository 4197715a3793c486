"""The dataset store: list, describe, upload, import, delete and preview datasets.

Every dataset is a folder ``datasets/<name>/`` in the canonical YOLO layout (see
:mod:`.layouts`) with ``meta.json`` (format, source, notes) and a cached ``report.json``
(see :mod:`.validate`). New datasets are built in a scratch folder under the workspace's
``.tmp/`` (``ds-*``) and renamed into ``datasets/`` only when complete, so a failure or a server
kill never leaves half a dataset behind; leftovers are removed at the next start.

No tornado here: the handlers call these methods, the slow ones in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

from ..contract.files import write_atomic
from ..contract.tasks import TASK_NAMES
from ..errors import (
    Conflict,
    DatasetHasErrors,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
)
from ..safeyaml import describe
from ..strict import MAX_NAME_BYTES, MAX_PATH_BYTES, text_problem
from ..workspace import Workspace
from .archive import IMAGE_SUFFIXES, Limits, copy_folder, extract_zip
from .builtin import BUILTIN_NAME, ensure_builtin_dataset
from .layouts import normalise
from .operations import (
    DATASET_NAME,
    MAX_NAME_LENGTH,
    WORK_PREFIX,
    Operation,
    Upload,
    _disk_full,
    _full,
    _reason,
    check_name,
    check_text,
)
from .samples import dataset_samples
from .taskdetect import check_task_name, resolve_task
from .validate import (
    META_FILE,
    REPORT_FILE,
    broken_report,
    folder_size,
    read_meta,
    report_for,
    save_report,
    validate_dataset,
)

FINISHED_KEPT = 20
FINISHED_SECONDS = 600.0
WARM_SECONDS = 5.0  # a report checked by warm() this recently is used as is by the job gate
SERVED_SUFFIXES = IMAGE_SUFFIXES | {".txt", ".yaml", ".yml", ".json"}
MAX_LISTED_WARNINGS = 50

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- the store


class DatasetStore:
    """Everything the REST API does with datasets."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        max_upload_bytes: int,
        max_extracted_bytes: int,
        max_archive_entries: int,
        max_compression_ratio: float,
        log: logging.Logger | None = None,
    ) -> None:
        self.workspace = workspace
        self.max_upload_bytes = max_upload_bytes
        self.limits = Limits(
            max_extracted_bytes=max_extracted_bytes,
            max_entries=max_archive_entries,
            max_compression_ratio=max_compression_ratio,
        )
        self.log = log or logging.getLogger(__name__)
        self._lock = threading.Lock()
        self._reserved: set[str] = set()
        self._ops: dict[str, Operation] = {}
        self._finished: deque[Operation] = deque(maxlen=FINISHED_KEPT)
        self._report_locks: dict[str, threading.Lock] = {}
        self._warmed: dict[str, tuple[float, dict[str, Any]]] = {}
        self._background_started = False
        self._generating = False
        # one synthetic generation at a time, on its own single thread (not the default pool)
        self._synthetic_lock = threading.Lock()
        self._synthetic_pool: ThreadPoolExecutor | None = None
        self._warnings: list[str] = []
        self._logged: set[str] = set()
        try:
            workspace.create()
            self._stale = self._secure_tmp()
        except OSError as exc:
            self._stale = []
            self._warn(
                f"The dataset scratch folder {self.workspace.tmp} cannot be prepared: "
                f"{_reason(exc)}; uploads and imports will fail until it is fixed."
            )

    # ------------------------------------------------------------------ start-up problems

    def _warn(self, message: str, *, keep: bool = True) -> str:
        """Log a problem found on disk once; ``keep`` lists it in every later listing too."""
        with self._lock:
            new = message not in self._logged
            self._logged.add(message)
            if keep and message not in self._warnings:
                self._warnings.append(message)
        if new:
            self.log.warning("jupyter_yolo: %s", message)
        return message

    # ------------------------------------------------------------------ scratch space

    @property
    def tmp(self) -> Path:
        """The scratch folder (the workspace's ``.tmp``, a real folder)."""
        return Path(os.path.realpath(self.workspace.tmp))

    def _secure_tmp(self) -> list[Path]:
        """Make sure ``.tmp`` is a real folder; return the store's leftovers in it."""
        tmp = self.workspace.tmp
        if tmp.is_symlink():
            self.log.warning("jupyter_yolo: %s was a symbolic link; replaced by a folder", tmp)
            tmp.unlink()
        tmp.mkdir(parents=True, exist_ok=True)
        return sorted(p for p in tmp.iterdir() if p.name.startswith(WORK_PREFIX))

    def clean_stale(self) -> int:
        """Remove scratch folders left by a killed server (call once at start)."""
        stale, self._stale = self._stale, []
        for path in stale:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
        if stale:
            self.log.info("jupyter_yolo: removed %d stale dataset scratch folder(s)", len(stale))
        return len(stale)

    def start_background(self, *, builtin: bool) -> None:
        """At server start: clean leftovers and, if asked, create the built-in dataset.

        Runs once, in a daemon thread; later calls do nothing.
        """
        with self._lock:
            if self._background_started:
                return
            self._background_started = True

        self._generating = builtin and not os.path.lexists(self.workspace.datasets / BUILTIN_NAME)

        def work() -> None:
            self.clean_stale()
            try:
                self.scan()
            except Exception:
                self.log.exception("jupyter_yolo: checking the datasets folder failed")
            if builtin:
                try:
                    ensure_builtin_dataset(self.workspace)
                except Exception:
                    self.log.exception("jupyter_yolo: generating the built-in dataset failed")
                finally:
                    self._generating = False

        threading.Thread(target=work, name="jupyter_yolo-datasets", daemon=True).start()

    @property
    def builtin_pending(self) -> bool:
        """Whether the built-in dataset is being generated right now."""
        return self._generating

    def _work_dir(self) -> Path:
        path = self.tmp / f"{WORK_PREFIX}{secrets.token_hex(8)}"
        path.mkdir(mode=0o700)
        return path

    # ------------------------------------------------------------------ names

    def folder(self, name: str) -> Path:
        """The folder of an existing dataset, or a 404 (a 400 for a name no file can have)."""
        check_text(name, "dataset name", MAX_NAME_BYTES)
        path = self.workspace.datasets / name
        try:
            usable = DATASET_NAME.match(name) and not path.is_symlink() and path.is_dir()
        except OSError:
            usable = False
        if not usable:
            if name == BUILTIN_NAME and self.builtin_pending:
                raise Conflict(
                    "The built-in shapes dataset is still being generated; "
                    "try again in a few seconds."
                )
            raise NotFound(f"There is no dataset named {describe(name)}.")
        return path

    def _reserve(self, name: str) -> None:
        check_name(name)
        with self._lock:
            target = self.workspace.datasets / name
            if name in self._reserved:
                raise Conflict(f"A dataset named {name!r} is being uploaded or imported right now.")
            if os.path.lexists(target):
                raise Conflict(
                    f"A dataset named {name!r} already exists; delete it first "
                    f"(DELETE /yolo/datasets/{name}) or choose another name."
                )
            self._reserved.add(name)

    def _release(self, name: str) -> None:
        with self._lock:
            self._reserved.discard(name)

    # ------------------------------------------------------------------ uploads and imports

    def begin_upload(
        self,
        name: str,
        length: int | None,
        filename: str | None = None,
        *,
        task: str | None = None,
    ) -> Upload:
        """Reserve ``name`` and open a scratch file for an archive of ``length`` bytes.

        Checks run before any byte of the body is read: the name (400), a clash (409) and the
        declared length against ``max_upload_bytes`` (413).
        """
        check_name(name)
        task = check_task_name(task)
        if filename is not None:
            check_text(filename, "file name", MAX_NAME_BYTES)
        if length is not None and length > self.max_upload_bytes:
            raise PayloadTooLarge(
                f"The upload is {length} bytes, over the limit of {self.max_upload_bytes} bytes "
                f"(YoloApp.max_upload_bytes).",
                limit=self.max_upload_bytes,
            )
        self._reserve(name)
        op = Operation(
            name=name,
            kind="upload",
            source=f"upload:{filename or name + '.zip'}",
            bytes_total=length,
            task=task,
        )
        try:
            work = self._work_dir()
            upload = Upload(self, op, work, self.max_upload_bytes)
        except BaseException:
            self._release(name)
            raise
        with self._lock:
            self._ops[op.id] = op
        return upload

    def import_path(self, name: Any, relative: str, *, task: Any = None) -> dict[str, Any]:
        """Import a zip archive or a folder that is already in the workspace (blocking).

        ``task`` forces the dataset's task (one of the contract's task names); otherwise it is
        told from the contents.
        """
        name = check_name(name)
        forced = check_task_name(task)
        if not isinstance(relative, str):
            raise InvalidRequest(f"The import path must be text, not {describe(relative)}.")
        check_text(relative, "import path", MAX_PATH_BYTES)
        if any(len(part.encode("utf-8")) > MAX_NAME_BYTES for part in relative.split("/")):
            raise InvalidRequest(
                f"The import path {describe(relative)} has a name longer than {MAX_NAME_BYTES} "
                f"bytes, more than the file system allows."
            )
        source = self.workspace.resolve(relative, what="import path")
        tmp = self.tmp
        if source == self.workspace.root or source.is_relative_to(tmp):
            raise InvalidRequest(
                f"{describe(relative)} cannot be imported: give a zip archive or a dataset folder."
            )
        if source.is_dir():
            kind = "folder"
        elif source.is_file() and source.suffix.lower() == ".zip":
            kind = "zip"
        else:
            raise InvalidRequest(
                f"{describe(relative)} is neither a folder nor a .zip archive; give one of those."
            )
        self._reserve(name)
        op = Operation(
            name=name, kind="import", source=f"import:{relative}", stage="queued", task=forced
        )
        with self._lock:
            self._ops[op.id] = op
        try:
            work = self._work_dir()
        except BaseException:
            self._fail(op, None, "no scratch folder")
            raise
        if kind == "zip":
            return self._build(op, work, archive=source, keep_archive=True)
        return self._build(op, work, folder=source)

    def _synthetic_slot(self) -> None:
        """Take the one synthetic generation slot, or raise a 409 while it is taken."""
        if not self._synthetic_lock.acquire(blocking=False):
            raise Conflict(
                "A synthetic dataset is being generated; try again when it is done (one is "
                "generated at a time)."
            )

    async def create_synthetic_async(self, task: Any, name: Any = None) -> dict[str, Any]:
        """:meth:`create_synthetic` off the event loop, on the store's own single thread.

        A second request while one is generating is a 409 at once (it does not queue).
        """
        self._synthetic_slot()
        try:
            with self._lock:
                if self._synthetic_pool is None:
                    self._synthetic_pool = ThreadPoolExecutor(
                        max_workers=1, thread_name_prefix="yolo-synthetic"
                    )
                pool = self._synthetic_pool
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(pool, self._create_synthetic, task, name)
        finally:
            self._synthetic_lock.release()

    def create_synthetic(self, task: Any, name: Any = None) -> dict[str, Any]:
        """Generate a task's built-in synthetic dataset and register it (blocking).

        ``name`` defaults to the task's synthetic name (``shapes-seg`` ...). The dataset is
        generated in a scratch folder, then imported like a folder, so it is checked and
        registered the same way; nothing is left behind on failure. One generation runs at a
        time: a call while another generates is a 409.
        """
        self._synthetic_slot()
        try:
            return self._create_synthetic(task, name)
        finally:
            self._synthetic_lock.release()

    def _create_synthetic(self, task: Any, name: Any) -> dict[str, Any]:
        if task is None:
            raise InvalidRequest(
                f"'synthetic' names the task of the dataset to generate: one of "
                f"{', '.join(TASK_NAMES)}."
            )
        forced = check_task_name(task)
        assert forced is not None
        from .synthetic_tasks import SYNTHETIC_NAMES, generate_task_dataset

        name = check_name(SYNTHETIC_NAMES[forced] if name is None else name)
        self._reserve(name)
        op = Operation(
            name=name,
            kind="synthetic",
            source=f"synthetic:{forced}",
            stage="generating",
            task=forced,
        )
        with self._lock:
            self._ops[op.id] = op
        work: Path | None = None
        try:
            work = self._work_dir()
            generate_task_dataset(forced, work / "generated")
        except BaseException as exc:
            self._fail(op, work, _reason(exc))
            if isinstance(exc, OSError) and _disk_full(exc):
                raise _full() from exc
            raise
        return self._build(op, work, folder=work / "generated")

    def _build(
        self,
        op: Operation,
        work: Path,
        *,
        archive: Path | None = None,
        folder: Path | None = None,
        keep_archive: bool = False,
    ) -> dict[str, Any]:
        """Extract, convert, validate and rename into place; clean up on any failure."""
        try:
            raw = work / "raw"
            if archive is not None:
                op.enter("extracting")
                extracted = extract_zip(archive, raw, self.limits, progress=op.step)
                if not keep_archive:
                    archive.unlink()
            else:
                assert folder is not None
                op.enter("copying")
                extracted = copy_folder(folder, raw, self.limits, progress=op.step)
            op.enter("converting")
            staging = work / "dataset"
            converted = normalise(raw, staging)
            shutil.rmtree(raw, ignore_errors=True)
            task, task_source = resolve_task(staging, op.task)
            notes = list(converted.notes)
            skipped = extracted.note()
            if skipped:
                notes.append(skipped)
            meta = {
                "name": op.name,
                "format": converted.format,
                "task": task,
                "task_source": task_source,
                "source": op.source,
                "created": time.time(),
                "builtin": False,
                "split_created": converted.split_created,
                "notes": notes,
                "import_problems": converted.problems,
                "files": extracted.files,
                "bytes": extracted.bytes,
            }
            write_atomic(staging / META_FILE, json.dumps(meta, indent=1))
            op.enter("validating")
            report = validate_dataset(
                staging,
                extra_problems=converted.problems,
                progress=op.step,
                task=task,
                task_source=task_source,
            )
            save_report(staging, report)
            op.enter("registering")
            target = self.workspace.datasets / op.name
            with self._lock:
                if os.path.lexists(target):
                    raise Conflict(f"A dataset named {op.name!r} appeared meanwhile.")
                os.rename(staging, target)
        except OSError as exc:
            self._fail(op, work, str(exc))
            if _disk_full(exc):
                raise _full() from exc
            raise
        except BaseException as exc:
            self._fail(op, work, getattr(exc, "message", None) or str(exc) or type(exc).__name__)
            raise
        self._succeed(op, work)
        self.log.info("jupyter_yolo: dataset %s ready (%s, %s)", op.name, meta["format"], op.source)
        return self._describe(op.name, target, report, meta)

    def _succeed(self, op: Operation, work: Path) -> None:
        shutil.rmtree(work, ignore_errors=True)
        op.enter("done")
        op.ended = time.time()
        self._retire(op)

    def _fail(self, op: Operation, work: Path | None, reason: str | None) -> None:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        op.stage = "failed"
        op.error = reason
        op.ended = op.updated = time.time()
        self._retire(op)

    def _retire(self, op: Operation) -> None:
        with self._lock:
            self._ops.pop(op.id, None)
            self._reserved.discard(op.name)
            self._finished.append(op)

    def operations(self) -> dict[str, Any]:
        """Uploads and imports in flight, then those that ended in the last minutes."""
        now = time.time()
        with self._lock:
            active = [op.to_json() for op in self._ops.values()]
            recent = [
                op.to_json()
                for op in reversed(self._finished)
                if op.ended is not None and now - op.ended < FINISHED_SECONDS
            ]
        return {"uploads": active, "recent": recent, "max_upload_bytes": self.max_upload_bytes}

    # ------------------------------------------------------------------ reading

    def _report_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._report_locks.setdefault(name, threading.Lock())

    def report(self, name: str) -> dict[str, Any]:
        """The validation report of a dataset, from the cache when it is current (blocking)."""
        folder = self.folder(name)
        with self._report_lock(name):
            try:
                report = report_for(folder)
            except Exception as exc:
                self.log.exception("jupyter_yolo: the report of dataset %s failed", name)
                report = broken_report(f"The dataset cannot be checked: {_reason(exc)}")
        with self._lock:
            self._warmed[name] = (time.monotonic(), report)
        return report

    def _recent_report(self, name: str) -> dict[str, Any]:
        """The report checked in the last seconds (by :meth:`warm`), else a current one."""
        with self._lock:
            recent = self._warmed.get(name)
        if recent is not None and time.monotonic() - recent[0] < WARM_SECONDS:
            return recent[1]
        return self.report(name)

    def _describe(
        self, name: str, folder: Path, report: dict[str, Any], meta: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            created = meta.get("created") or folder.stat().st_mtime
        except OSError:
            created = None
        builtin = bool(meta.get("builtin")) or name == BUILTIN_NAME
        return {
            "name": name,
            "builtin": builtin,
            "format": meta.get("format", "yolo"),
            "task": report.get("task", meta.get("task", "detect")),
            "task_source": report.get("task_source", meta.get("task_source")),
            "source": meta.get("source", "builtin" if builtin else "workspace"),
            "created": created,
            "size": folder_size(folder),
            "status": report["status"],
            "errors": report["errors"],
            "warnings": report["warnings"],
            "classes": report["classes"],
            "images": report["images"],
            "instances": report["instances"],
            "splits": report["splits"],
            "notes": meta.get("notes", []),
            # not resolved: data.yaml may be a link out of the workspace (its report says so)
            "data": (folder / "data.yaml").relative_to(self.workspace.root).as_posix(),
            "report": report,
        }

    def get(self, name: str) -> dict[str, Any]:
        """A dataset's summary with its full validation report (blocking)."""
        report = self.report(name)
        folder = self.folder(name)
        return self._describe(name, folder, report, read_meta(folder))

    def _entries(self) -> tuple[list[str], list[str]]:
        """The dataset names in ``datasets/`` and what is wrong with the other entries there."""
        root = self.workspace.datasets
        problems: list[str] = []
        names: list[str] = []
        try:
            if root.is_symlink() or not root.is_dir():
                return [], [f"The datasets folder {root} is missing or not a folder."]
            entries = sorted(os.scandir(root), key=lambda e: e.name)
        except OSError as exc:
            return [], [f"The datasets folder {root} cannot be read: {_reason(exc)}."]
        for entry in entries:
            if entry.name.startswith("."):
                continue
            shown = f"datasets/{describe(entry.name)}"
            try:
                if entry.is_symlink():
                    problems.append(
                        f"{shown} is a link; links are not followed, so it is not "
                        f"listed. Replace it with the folder itself."
                    )
                    continue
                if not entry.is_dir():
                    problems.append(f"{shown} is a file, not a dataset folder; it is not listed.")
                    continue
            except OSError as exc:
                problems.append(f"{shown} cannot be read ({_reason(exc)}); it is not listed.")
                continue
            if text_problem(entry.name) or not DATASET_NAME.match(entry.name):
                problems.append(
                    f"{shown} is not a valid dataset name (1 to {MAX_NAME_LENGTH} letters, digits, "
                    f"'_', '.' or '-'); rename the folder to list it."
                )
                continue
            names.append(entry.name)
        return names, problems

    def scan(self) -> list[str]:
        """Check ``datasets/`` at start: log (once) every entry that cannot be listed."""
        _names, problems = self._entries()
        for problem in problems:
            self._warn(problem, keep=False)
        return problems

    def list_datasets(self) -> dict[str, Any]:
        """Every dataset with its counts and status (reports computed when missing; blocking).

        Nothing on disk can make the listing fail: an entry of ``datasets/`` that is not a
        usable dataset folder, or a dataset that cannot be described, is left out and named in
        ``warnings`` (and logged once).
        """
        datasets = []
        names, problems = self._entries()
        for name in names:
            try:
                summary = self.get(name)
            except NotFound:
                continue
            except Exception as exc:
                self.log.debug("listing dataset %s", name, exc_info=True)
                problems.append(
                    f"datasets/{name} cannot be described ({_reason(exc)}); it is not listed."
                )
                continue
            summary.pop("report")
            datasets.append(summary)
        if self.builtin_pending and BUILTIN_NAME not in names:
            datasets.insert(
                0,
                {
                    "name": BUILTIN_NAME,
                    "builtin": True,
                    "format": "yolo",
                    "task": "detect",
                    "source": "builtin",
                    "status": "preparing",
                },
            )
        datasets.sort(key=lambda d: (not d.get("builtin"), d["name"]))
        for problem in problems:
            self._warn(problem, keep=False)
        with self._lock:
            warnings = [*self._warnings, *problems]
        if len(warnings) > MAX_LISTED_WARNINGS:
            more = len(warnings) - MAX_LISTED_WARNINGS
            warnings = [*warnings[:MAX_LISTED_WARNINGS], f"... and {more} more problem(s)."]
        return {"datasets": datasets, "warnings": warnings}

    def warm(self, data: Any) -> None:
        """Compute a missing report for a job's ``data`` ahead of validation; never raises."""
        if not isinstance(data, str):
            return
        with contextlib.suppress(Exception):
            if DATASET_NAME.match(data) and not data.endswith((".yaml", ".yml")):
                self.report(data)
            else:
                name = self._dataset_of(self.workspace.resolve(data))
                if name is not None:
                    self.report(name)

    def _dataset_of(self, path: Path) -> str | None:
        """The dataset name when ``path`` lies inside ``datasets/<name>/``."""
        try:
            relative = path.resolve().relative_to(self.workspace.datasets.resolve())
        except ValueError:
            return None
        if len(relative.parts) < 2 or not DATASET_NAME.match(relative.parts[0]):
            return None
        return relative.parts[0]

    def check_for_training(self, yaml_path: Path) -> None:
        """Refuse (400) a job whose data.yaml belongs to a dataset whose report has errors."""
        name = self._dataset_of(yaml_path)
        folder = self.workspace.datasets / name if name is not None else None
        if name is None or folder is None or folder.is_symlink() or not folder.is_dir():
            return
        report = self._recent_report(name)
        if report["errors"]:
            first = next((p for p in report["problems"] if p["severity"] == "error"), None)
            where = ""
            if first is not None:
                location = first["file"] or ""
                if first.get("line"):
                    location += f":{first['line']}"
                where = f" The first: {location} {first['message']}".rstrip()
            raise DatasetHasErrors(
                f"The dataset {name!r} has {report['errors']} error(s) and cannot be used for "
                f"training; see its report at GET /yolo/datasets/{name}.{where}",
                dataset=name,
                report=f"/yolo/datasets/{name}",
                errors=report["errors"],
            )

    # ------------------------------------------------------------------ delete

    def delete(self, name: str, in_use: Callable[[Path], list[str]]) -> None:
        """Remove a dataset, unless a queued or running job uses it (409)."""
        check_text(name, "dataset name", MAX_NAME_BYTES)
        if not DATASET_NAME.match(name):
            raise NotFound(f"There is no dataset named {describe(name)}.")
        path = self.workspace.datasets / name
        if path.is_symlink():  # a link planted in datasets/: remove the link, never its target
            path.unlink()
            return
        folder = self.folder(name)
        jobs = in_use(folder)
        if jobs:
            raise Conflict(
                f"The dataset {name!r} is used by queued or running job(s) {', '.join(jobs)}; "
                f"stop them or wait for them to end first.",
                jobs=jobs,
            )
        try:
            trash = self._work_dir()
            os.rename(folder, trash / name)  # gone from datasets/ at once; the files go after
        except OSError as exc:
            raise Conflict(f"The dataset {name!r} cannot be deleted: {_reason(exc)}.") from None
        threading.Thread(
            target=shutil.rmtree,
            args=(trash,),
            kwargs={"ignore_errors": True},
            name="jupyter_yolo-delete",
            daemon=True,
        ).start()
        self.log.info("jupyter_yolo: dataset %s deleted", name)

    # ------------------------------------------------------------------ preview

    def samples(
        self, name: str, *, split: str, count: int, seed: int, thumbnail: int
    ) -> dict[str, Any]:
        """A few images of a split with their task's geometry, pixels and normalised (blocking)."""
        return dataset_samples(
            self.folder(name), name, split=split, count=count, seed=seed, thumbnail=thumbnail
        )

    def file_path(self, name: str, relative: str) -> Path:
        """A file inside the dataset folder (images, labels, yaml/json), or 400/404."""
        folder = self.folder(name)
        check_text(relative, "file path", MAX_PATH_BYTES)
        if "\\" in relative:
            raise InvalidRequest(f"The path {describe(relative)} has a forbidden character.")
        pure = PurePosixPath(relative)
        if pure.is_absolute() or ".." in pure.parts or any(p.startswith(".") for p in pure.parts):
            raise InvalidRequest(
                f"The path {describe(relative)} must stay inside the dataset (no leading '/', "
                f"no '..', no hidden names)."
            )
        if any(len(part.encode("utf-8")) > MAX_NAME_BYTES for part in pure.parts):
            raise InvalidRequest(
                f"The path {describe(relative)} has a name longer than {MAX_NAME_BYTES} bytes, "
                f"more than the file system allows."
            )
        if pure.suffix.lower() not in SERVED_SUFFIXES:
            raise NotFound(
                f"Only images, labels and yaml/json files are served, not {describe(relative)}."
            )
        current = folder
        try:
            for part in pure.parts:
                current = current / part
                if current.is_symlink():
                    raise NotFound(f"{describe(relative)} is a link, which is not served.")
            present = current.is_file()
        except OSError as exc:
            raise NotFound(f"{describe(relative)} cannot be read: {_reason(exc)}.") from None
        if not present:
            raise NotFound(f"The dataset {name!r} has no file {describe(relative)}.")
        return current


__all__ = [
    "BUILTIN_NAME",
    "DATASET_NAME",
    "REPORT_FILE",
    "DatasetStore",
    "Operation",
    "Upload",
    "check_name",
    "ensure_builtin_dataset",
]
