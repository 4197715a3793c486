"""The jupyter_server extension app: settings as traits, the core, the handlers."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Enum, Float, Int, List, TraitError, Unicode, default, validate

from . import __version__
from .accelerators.cluster import ClusterService
from .accelerators.service import AcceleratorService
from .contract.executors import EXECUTORS, RAY_VERSION
from .datasets.store import DatasetStore
from .errors import YoloError
from .jobs.manager import JobManager
from .jobs.ray_api import check_address
from .jobs.schema import HardwareView, device_problem
from .ownership import WorkspaceOwnership
from .runner.resources import usable_cpus
from .serving.pool import PoolSettings, WorkerPool
from .serving.prepare import Preparer, PrepareSettings
from .serving.service import PredictLimits, PredictService
from .workspace import Workspace

PROBE_RETRY_S = 60.0  # a failed hardware probe is not run again for every job request


class YoloApp(ExtensionApp):
    """Ultralytics YOLO in JupyterLab: accelerator report, datasets and training jobs."""

    name = "jupyter_yolo"
    description = __doc__ or ""
    load_other_extensions = True

    workspace = Unicode(
        help=(
            "Folder holding datasets, weights, runs and the job registry. Defaults to "
            "$YOLO_WORKSPACE, else the folder 'yolo' under the server's root directory."
        ),
    ).tag(config=True)

    probe_timeout = Float(
        90.0,
        help="Seconds the hardware probe subprocess (it imports torch) may run before a kill.",
    ).tag(config=True)

    probe_python = Unicode(
        help="Python interpreter that runs the hardware probe and the job runners.",
    ).tag(config=True)

    default_device = Unicode(
        help=(
            "The ultralytics device of jobs whose request names none ('cpu', '0', '0,1', "
            "'mps', 'npu:0' ...). Empty: ultralytics picks (the first GPU, else the CPU). "
            "Defaults to $YOLO_DEVICE."
        ),
    ).tag(config=True)

    @default("default_device")
    def _default_device_default(self) -> str:
        return os.environ.get("YOLO_DEVICE", "").strip()

    max_jobs_per_device = Int(
        1, help="How many jobs may run at once on one device; later jobs wait in the queue."
    ).tag(config=True)

    stop_grace_period = Float(
        30.0,
        help=(
            "Seconds a job gets to finish its batch and save last.pt after a stop request, "
            "before its process group gets SIGTERM."
        ),
    ).tag(config=True)

    kill_grace_period = Float(
        5.0, help="Seconds between SIGTERM and SIGKILL to a stopping job's process group."
    ).tag(config=True)

    stop_jobs_on_shutdown = Bool(
        True,
        help=(
            "Stop running jobs gracefully when the server shuts down cleanly. Jobs always "
            "survive a crash of the server and are re-attached at the next start."
        ),
    ).tag(config=True)

    executor = Unicode(
        "local",
        help=(
            "Where jobs run by default: 'local' (a process of this machine) or 'ray' (submitted "
            "to the Ray cluster at ray_address through its Jobs API). With ray_address set, a "
            "job request may choose either with its 'executor' field."
        ),
    ).tag(config=True)

    ray_address = Unicode(
        "",
        help=(
            "The http(s) URL of the Ray head's Jobs API (its dashboard, e.g. "
            "http://ray-head:8265). Empty: no Ray cluster. The workspace must be shared storage "
            "mounted at the same path on every Ray node; the cluster must run Ray "
            f"{RAY_VERSION}."
        ),
    ).tag(config=True)

    ray_python = Unicode(
        "python3",
        help=(
            "The Python interpreter on the Ray nodes that runs the job runner "
            "(python -m jupyter_yolo.runner.ray_entry): it must have jupyter-yolo and Ray "
            f"{RAY_VERSION} installed (the product's images do)."
        ),
    ).tag(config=True)

    event_notification = Enum(
        ["auto", "poll"],
        "auto",
        help=(
            "How a long poll of a job's events (GET /yolo/jobs/{id}/events?timeout=S) learns of "
            "new events: 'auto' is woken by the kernel (inotify on Linux) as soon as the runner "
            "writes, and polls where that cannot be used; 'poll' re-reads the job's files every "
            "0.25 s (for a workspace on a filesystem whose changes inotify does not report)."
        ),
    ).tag(config=True)

    @validate("executor")
    def _check_executor(self, proposal: Any) -> str:
        value = str(proposal["value"]).strip()
        if value not in EXECUTORS:
            raise TraitError(
                f"YoloApp.executor must be one of {', '.join(EXECUTORS)}, got {value!r}."
            )
        return value

    @validate("ray_address")
    def _check_ray_address(self, proposal: Any) -> str:
        value = str(proposal["value"]).strip()
        if not value:
            return ""
        try:
            return check_address(value)
        except ValueError as exc:
            raise TraitError(f"YoloApp.ray_address: {exc}") from None

    job_log_max_bytes = Int(
        2 * 1024 * 1024, help="Size at which a job's log file is rotated (one old file is kept)."
    ).tag(config=True)

    max_upload_bytes = Int(
        2 * 1024**3,
        help=(
            "Largest dataset archive accepted by POST /yolo/datasets, in bytes. A larger "
            "Content-Length is refused (413) before the body is read; a body that streams past "
            "the limit is cut off with a 413."
        ),
    ).tag(config=True)

    max_extracted_bytes = Int(
        8 * 1024**3,
        help=(
            "Most bytes a dataset archive or imported folder may expand to, counted as files "
            "are really written."
        ),
    ).tag(config=True)

    max_archive_entries = Int(
        200_000,
        help="Most entries (files and folders) a dataset archive or imported folder may hold.",
    ).tag(config=True)

    max_compression_ratio = Float(
        100.0,
        help=(
            "Largest ratio of uncompressed to compressed size for an archive entry over 1 MiB "
            "and for a whole archive; above it the archive is refused as a zip bomb."
        ),
    ).tag(config=True)

    builtin_dataset = Bool(
        True,
        help=(
            "Generate the embedded synthetic 'shapes' dataset in datasets/shapes when it is "
            "missing, in a background thread after the server starts."
        ),
    ).tag(config=True)

    allowed_stream_sources = List(
        Unicode(),
        default_value=[],
        help=(
            "Hosts (name or IP, optionally host:port) whose live streams predict jobs may read "
            "(rtsp://, rtmp://, http(s):// MJPEG or HLS). The product is offline by design: a "
            "stream from any other host is refused, and the job's network guard lets only the "
            "listed host of its own source through. Local capture devices (/dev/video*) need no "
            "entry. Example: c.YoloApp.allowed_stream_sources = ['camera1.local', '10.0.0.7:554']"
        ),
    ).tag(config=True)

    max_predict_workers = Int(
        2,
        help=(
            "Most warm inference workers (one per model, backend, image size and device) kept "
            "at once for POST /yolo/predict; starting one more evicts the least recently used "
            "idle worker."
        ),
    ).tag(config=True)

    predict_idle_timeout = Float(
        600.0,
        help="Seconds an inference worker may sit idle before it is stopped to free its memory.",
    ).tag(config=True)

    predict_memory_limit = Int(
        4 * 1024**3,
        help=(
            "Bytes of resident memory all inference workers together may use; over it the least "
            "recently used idle workers are stopped (a busy one never is)."
        ),
    ).tag(config=True)

    predict_queue_size = Int(
        32,
        help=(
            "Requests that may wait for one inference worker; one more is answered 429 with "
            "Retry-After."
        ),
    ).tag(config=True)

    predict_timeout = Float(
        120.0,
        help=(
            "Seconds one POST /yolo/predict may take on its worker (starting the worker not "
            "counted); a worker over it is killed and restarted, and the request gets 503."
        ),
    ).tag(config=True)

    predict_start_timeout = Float(
        300.0,
        help=(
            "Seconds an inference worker may take to start (load the model, choose and prepare "
            "its backend, warm up) before it is killed and the request gets 503."
        ),
    ).tag(config=True)

    max_predict_body_bytes = Int(
        64 * 1024**2,
        help="Largest POST /yolo/predict body (one image, or a multipart of several), in bytes.",
    ).tag(config=True)

    max_predict_images = Int(
        16, help="Most images one POST /yolo/predict request may carry or name."
    ).tag(config=True)

    prepare_after_training = Bool(
        True,
        help=(
            "When a training job succeeds, export its best.pt and measure its backends for "
            "POST /yolo/predict?backend=auto in the background (one low-priority process at a "
            "time, nice 19, only while no job is queued or running (a job that starts makes it "
            "yield), within "
            "predict_start_timeout), then start its warm worker, so the prediction panel's first "
            "answer does not wait for that work; a request that comes earlier is answered by "
            "PyTorch meanwhile. False: the first auto request does the work."
        ),
    ).tag(config=True)

    max_image_pixels = Int(
        40_000_000,
        help=(
            "Most pixels (width x height) an image given to POST /yolo/predict may have; a "
            "larger one (or a decompression bomb) is refused with 413 before it is decoded."
        ),
    ).tag(config=True)

    @validate("max_predict_workers", "predict_queue_size")
    def _check_predict_counts(self, proposal: Any) -> int:
        """Refuse a worker count under 1 or a negative queue at start-up, naming the setting."""
        name, value = proposal["trait"].name, proposal["value"]
        lowest = 1 if name == "max_predict_workers" else 0
        if value < lowest:
            raise TraitError(
                f"YoloApp.{name} must be at least {lowest}, got {value}"
                + (" (0 lets a request wait for no busy worker)." if lowest == 0 else ".")
            )
        return int(value)

    @validate(
        "predict_idle_timeout",
        "predict_timeout",
        "predict_start_timeout",
        "predict_memory_limit",
        "max_predict_body_bytes",
        "max_predict_images",
        "max_image_pixels",
    )
    def _check_predict_limits(self, proposal: Any) -> float:
        """Refuse a timeout or limit that is not above 0 (or not a number), naming the setting."""
        name, value = proposal["trait"].name, proposal["value"]
        if not value > 0:  # also NaN
            what = "seconds" if "timeout" in name else "a limit"
            raise TraitError(f"YoloApp.{name} must be above 0 ({what}), got {value}.")
        return value  # type: ignore[no-any-return]

    @default("workspace")
    def _default_workspace(self) -> str:
        env = os.environ.get("YOLO_WORKSPACE")
        if env:
            return env
        root = self.serverapp.root_dir if self.serverapp is not None else os.getcwd()
        return str(Path(root) / "yolo")

    @default("probe_python")
    def _default_probe_python(self) -> str:
        return sys.executable

    def initialize_settings(self) -> None:
        """Build the core services once; nothing here imports torch or ultralytics."""
        self.yolo_workspace = Workspace(Path(self.workspace))
        moved = self.yolo_workspace.create(migrate=False)
        self.ownership = WorkspaceOwnership(self.yolo_workspace.root)
        owner = self.ownership.acquire()
        if owner is None:  # never under a server that still uses the registry where it was
            problem = self.yolo_workspace.try_migrate_registry()
            moved += [problem] if problem else []
        for message in moved:
            self.log.warning("jupyter_yolo: %s", message)
        self.datasets = DatasetStore(
            self.yolo_workspace,
            max_upload_bytes=self.max_upload_bytes,
            max_extracted_bytes=self.max_extracted_bytes,
            max_archive_entries=self.max_archive_entries,
            max_compression_ratio=self.max_compression_ratio,
            log=self.log,
        )
        self.accelerators = AcceleratorService(
            python=self.probe_python, timeout=self.probe_timeout, log=self.log
        )
        self.cluster = ClusterService(self.ray_address, self.executor)
        default_device = self._checked_default_device()
        self.jobs = JobManager(
            self.yolo_workspace,
            python=self.probe_python,
            max_jobs_per_device=self.max_jobs_per_device,
            stop_grace_period=self.stop_grace_period,
            kill_grace_period=self.kill_grace_period,
            log_max_bytes=self.job_log_max_bytes,
            log=self.log,
            cuda_available=self._cuda_available,
            dataset_check=self.datasets.check_for_training,
            default_device=default_device,
            hardware=self._hardware_view,
            owner=owner,
            allowed_stream_sources=tuple(self.allowed_stream_sources),
            executor=self._checked_executor(),
            ray_address=self.ray_address,
            ray_python=self.ray_python,
            event_notification=self.event_notification,
        )
        for message in moved:
            self.jobs.report_problem("workspace", message)
        self.predict_service = self._build_predict_service(default_device)
        self.log.info("jupyter_yolo %s: workspace %s", __version__, self.yolo_workspace.root)

    def _build_predict_service(self, default_device: str | None) -> PredictService:
        """The warm inference workers of POST /yolo/predict (none starts before a request)."""
        pool = WorkerPool(
            PoolSettings(
                workspace=self.yolo_workspace.root,
                python=self.probe_python,
                cpus=usable_cpus(),
                max_workers=self.max_predict_workers,
                idle_timeout=self.predict_idle_timeout,
                memory_limit=self.predict_memory_limit,
                queue_size=self.predict_queue_size,
                timeout=self.predict_timeout,
                start_timeout=self.predict_start_timeout,
                kill_grace=self.kill_grace_period,
                max_pixels=self.max_image_pixels,
            ),
            log=self.log,
        )
        service = PredictService(
            self.yolo_workspace,
            self.jobs.validator,
            pool,
            PredictLimits(
                max_body_bytes=self.max_predict_body_bytes,
                max_images=self.max_predict_images,
                max_pixels=self.max_image_pixels,
            ),
            default_device=default_device,
            hardware=self._hardware_view,
            cuda_available=self._cuda_available,
        )
        if self.prepare_after_training and self.jobs.supervising:
            service.preparer = Preparer(
                pool,
                PrepareSettings(
                    workspace=self.yolo_workspace.root,
                    timeout=self.predict_start_timeout,
                    kill_grace=self.kill_grace_period,
                ),
                call_for=service.default_call,
                jobs_active=self.jobs.waiting_or_running,
                training_ending=self.jobs.training_ending,
                loop=lambda: self.jobs._loop,  # the supervisor's: set once jobs are supervised
                log=self.log,
            )
            self.jobs.on_finished = service.job_finished
            self.jobs.on_started = service.job_started
        return service

    def _checked_executor(self) -> str:
        """``executor``, or ``local`` (logged) when it is ``ray`` without a ``ray_address``."""
        if self.executor == "ray" and not self.ray_address:
            self.log.error(
                "jupyter_yolo: YoloApp.executor is 'ray' but YoloApp.ray_address is empty; jobs "
                "run locally until the address of the Ray head's Jobs API is set."
            )
            return "local"
        return self.executor

    def _checked_default_device(self) -> str | None:
        """``default_device`` when ultralytics knows it; a bad value is logged and ignored."""
        device = self.default_device.strip()
        problem = device_problem(device) if device else None
        if problem:
            self.log.error("jupyter_yolo: ignoring default_device (YOLO_DEVICE): %s", problem)
            return None
        return device or None

    _probe_failure: tuple[float, str] | None = None

    def _hardware_view(self) -> HardwareView:
        """The accelerator report for checking a job's device; probes once when there is none."""
        report = self.accelerators.cached_report
        if report is not None:
            return report, None
        failed = self._probe_failure
        if failed is not None and time.monotonic() - failed[0] < PROBE_RETRY_S:
            return None, failed[1]
        try:
            return self.accelerators.report_sync(), None
        except YoloError as exc:
            self._probe_failure = (time.monotonic(), exc.message)
            return None, exc.message

    def _cuda_available(self) -> bool:
        """Whether TensorRT export makes sense: from the report when probed, else /dev nodes."""
        report = self.accelerators.cached_report
        if report is not None:
            return bool(report.get("devices", {}).get("cuda"))
        return any(Path("/dev").glob("nvidia[0-9]*"))

    def initialize_handlers(self) -> None:
        """Register the REST API under ``/yolo/``."""
        from .handlers import (
            accelerators,
            datasets,
            jobs,
            notebooks,
            openapi,
            plotly_widget,
            predict,
            tasks,
            workspace,
        )

        self.handlers.extend(
            [
                *accelerators.HANDLERS,
                *datasets.HANDLERS,
                *jobs.HANDLERS,
                *openapi.HANDLERS,
                *predict.HANDLERS,
                *tasks.HANDLERS,
            ]
        )
        # for the JupyterLab front end: example notebook copies, the workspace's place in the root
        self.handlers.extend([*notebooks.HANDLERS, *workspace.HANDLERS])
        # plotly's widget front end, imported once per page by the panels' figures
        self.handlers.extend(plotly_widget.HANDLERS)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """Once the event loop runs: supervise jobs; clean dataset leftovers, make 'shapes'."""
        self.jobs.ensure_started()
        if self.predict_service.preparer is not None:
            self.predict_service.preparer.attach_loop()
        self.start_dataset_background()

    def start_dataset_background(self) -> None:
        """Clean dataset scratch leftovers and create 'shapes' if configured (once, threaded).

        Only the server that owns the workspace does it: scratch space may be another server's.
        """
        if self.jobs.supervising:
            self.datasets.start_background(builtin=self.builtin_dataset)

    async def stop_extension(self) -> None:
        """Shut down cleanly: running jobs are stopped gracefully when configured to."""
        await self.predict_service.shutdown()
        await self.jobs.shutdown(stop_jobs=self.stop_jobs_on_shutdown)
        self.ownership.release()
