"""Validation of job requests: known keys only, typed and bounded values, confined paths."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..contract.architectures import by_name as architectures_by_name
from ..contract.status import KINDS as JOB_KINDS
from ..contract.tasks import DEFAULT_TASK
from ..contract.tune import SEARCH_SPACE, TUNE_KIND
from ..datasets.keys import DATA_YAML_KEYS, FORBIDDEN_DATA_KEYS
from ..datasets.paths import folder_name_problem
from ..errors import InvalidRequest, YoloError
from ..inference.backends import AUTO, BACKEND_CHOICES, all_availability, refusal
from ..safeyaml import YamlRefused, describe, load_yaml
from ..strict import MAX_PATH_BYTES, describe_text, path_problem, text_problem
from ..workspace import Workspace
from .devices import absence, needs_report
from .media_source import check_source, mask_url
from .task_check import check_fit, check_offline, dataset_task, is_classify_root, model_task
from .tune_schema import validate_tune

DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
JOB_REFERENCE = re.compile(r"^job:([0-9a-f]{12})(?::(best|last))?$")
DEVICE = re.compile(r"^(cpu|mps|-1|\d+(,\d+)*|cuda(:\d+)?|xpu(:\d+)?|npu(:\d+)?)$")
EXPORT_FORMATS = ("onnx", "openvino", "torchscript", "engine")
PREDICT_MODEL_SUFFIXES = (".pt", ".onnx", ".engine", "_openvino_model", ".torchscript")
MAX_CLASSES = 1000
MAX_NAME_CHARS = 100
MAX_PREDICT_BATCH = 64
TRACKERS = ("bytetrack", "botsort")


@dataclass(frozen=True)
class Param:
    """One accepted request key: its type and bounds."""

    kind: type
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    check: Callable[[Any], str | None] | None = None

    def validate(self, key: str, value: Any) -> Any:
        """Return the value when it fits, else raise a 400 naming the key."""
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:
                raise InvalidRequest(f"'{key}' must be a finite number.") from None
        if self.kind is not bool and isinstance(value, bool):
            raise InvalidRequest(f"'{key}' must be {self.kind.__name__}, got a boolean.")
        if not isinstance(value, self.kind):
            shown = (
                describe(value) if isinstance(value, (list, dict)) else describe_text(str(value))
            )
            raise InvalidRequest(
                f"'{key}' must be {self.kind.__name__}, got {type(value).__name__} {shown}."
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidRequest(f"'{key}' must be a finite number.")
        if isinstance(value, str):
            problem = text_problem(value, max_bytes=MAX_PATH_BYTES)
            if problem:
                raise InvalidRequest(f"'{key}' {problem}.")
        number = value if isinstance(value, (int, float)) else None
        if self.low is not None and number is not None and number < self.low:
            raise InvalidRequest(f"'{key}' must be at least {self.low}, got {value!r}.")
        if self.high is not None and number is not None and number > self.high:
            raise InvalidRequest(f"'{key}' must be at most {self.high}, got {value!r}.")
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            raise InvalidRequest(f"'{key}' must be one of {allowed}, got {describe(value)}.")
        if self.check is not None:
            problem = self.check(value)
            if problem:
                raise InvalidRequest(f"'{key}': {problem}")
        return value


def _imgsz(value: int) -> str | None:
    return None if value % 32 == 0 else f"must be a multiple of 32 (the model stride), got {value}."


def device_problem(value: str) -> str | None:
    """Why ``value`` is not an ultralytics device, or None when it is one."""
    if DEVICE.match(value):
        return None
    return (
        f"{value!r} is not a device ultralytics knows; use 'cpu', a CUDA index such as '0' "
        f"or '0,1', 'mps', 'xpu' or 'npu:0'."
    )


def _classes(value: list[Any]) -> str | None:
    if not 0 < len(value) <= MAX_CLASSES:
        return f"must list 1 to {MAX_CLASSES} class indices, got {len(value)}."
    if all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 10000 for c in value):
        return None
    return "must be a list of class indices (integers from 0 to 9999)."


def _name(value: str) -> str | None:
    if not 0 < len(value) <= MAX_NAME_CHARS or not value.strip():
        return f"must be 1 to {MAX_NAME_CHARS} characters, not only spaces."
    return None


def _train_batch(value: int) -> str | None:
    if value == 0:
        return "must be a positive batch size, or -1 to let ultralytics choose one; 0 is none."
    return None


COMMON: dict[str, Param] = {
    "name": Param(str, check=_name),
    "model": Param(str),
    "device": Param(str, check=device_problem),
    "imgsz": Param(int, 32, 4096, check=_imgsz),
}
TRAIN: dict[str, Param] = {
    "data": Param(str),
    "epochs": Param(int, 1, 10000),
    "batch": Param(int, -1, 1024, check=_train_batch),
    "nbs": Param(int, 1, 4096),
    "workers": Param(int, 0, 64),
    "seed": Param(int, 0, 2**31 - 1),
    "lr0": Param(float, 1e-8, 1.0),
    "lrf": Param(float, 1e-8, 1.0),
    "momentum": Param(float, 0.0, 1.0),
    "weight_decay": Param(float, 0.0, 1.0),
    "warmup_epochs": Param(float, 0.0, 100.0),
    "patience": Param(int, 0, 10000),
    "amp": Param(bool),
    "optimizer": Param(str, choices=("auto", "SGD", "Adam", "AdamW", "NAdam", "RAdam", "RMSProp")),
    "cos_lr": Param(bool),
    "close_mosaic": Param(int, 0, 10000),
    "mosaic": Param(float, 0.0, 1.0),
    "fliplr": Param(float, 0.0, 1.0),
    "hsv_h": Param(float, 0.0, 1.0),
    "hsv_s": Param(float, 0.0, 1.0),
    "hsv_v": Param(float, 0.0, 1.0),
    # weights to start from (transferred into the architecture's layers that match): a .pt in
    # the weights folder or 'job:<id>[:best|:last]', resolved like 'model'
    "pretrained": Param(str),
    # classification augmentations: random erasing share, and the policy ("" for none)
    "erasing": Param(float, 0.0, 0.9),
    "auto_augment": Param(str, choices=("randaugment", "autoaugment", "augmix", "")),
    "fraction": Param(float, 0.01, 1.0),
    "save_period": Param(int, -1, 10000),
    "val": Param(bool),
    "plots": Param(bool),
    "deterministic": Param(bool),
    "single_cls": Param(bool),
    "rect": Param(bool),
    "cache": Param(bool),
}
# the rest of what a tune job searches (its best parameters make a valid training request)
TRAIN.update({k: Param(float, lo, hi) for k, (lo, hi) in SEARCH_SPACE.items() if k not in TRAIN})
VAL: dict[str, Param] = {
    "data": Param(str),
    "batch": Param(int, 1, 1024),
    "workers": Param(int, 0, 64),
    "conf": Param(float, 0.0, 1.0),
    "iou": Param(float, 0.0, 1.0),
    "split": Param(str, choices=("train", "val", "test")),
    "plots": Param(bool),
    "half": Param(bool),
}
PREDICT: dict[str, Param] = {
    "source": Param(str),
    "conf": Param(float, 0.0, 1.0),
    "iou": Param(float, 0.0, 1.0),
    "max_det": Param(int, 1, 10000),
    "classes": Param(list, check=_classes),
    "half": Param(bool),
    # images or frames per inference call (throughput mode); default: by backend and device
    "batch": Param(int, 1, MAX_PREDICT_BATCH),
    # media sources (videos, streams, devices): tracking, annotated output, frame bounds
    "track": Param(bool),
    "tracker": Param(str, choices=TRACKERS),
    "save": Param(bool),
    "vid_stride": Param(int, 1, 100),
    "max_frames": Param(int, 1, 10**9),
    "reconnects": Param(int, 0, 100),
    # the inference backend: "auto" (the fastest that agrees with PyTorch, measured once per
    # weights and image size) or one by name; "data" is the INT8 calibration dataset
    "backend": Param(str, choices=BACKEND_CHOICES),
    "data": Param(str),
}
EXPORT: dict[str, Param] = {
    "format": Param(str, choices=EXPORT_FORMATS),
    "half": Param(bool),
    "int8": Param(bool),
    "dynamic": Param(bool),
    "simplify": Param(bool),
    "opset": Param(int, 7, 30),
    "batch": Param(int, 1, 1024),
    "data": Param(str),
}
SCHEMAS: dict[str, dict[str, Param]] = {
    "train": {**COMMON, **TRAIN},
    "val": {**COMMON, **VAL},
    "predict": {**COMMON, **PREDICT},
    "export": {**COMMON, **EXPORT},
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "train": ("data",),
    "val": ("model", "data"),
    "predict": ("model", "source"),
    "export": ("model",),
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "train": {"model": "yolov8n.yaml"},
    "val": {},
    "predict": {"backend": AUTO},
    "export": {"format": "onnx"},
}


HardwareView = tuple[dict[str, Any] | None, str | None]
"""The accelerator report (None when it could not be made) and the probe's error, if any."""


@dataclass
class ValidatedJob:
    """A validated job request: runner parameters with absolute paths, and what it came from."""

    kind: str
    name: str | None
    params: dict[str, Any]
    request: dict[str, Any]
    dataset_yaml: dict[str, Any] | None = None
    devices: tuple[str, ...] = field(default_factory=tuple)
    task: str = DEFAULT_TASK


def device_keys(device: str | None, *, cuda: bool | None = None) -> tuple[str, ...]:
    """The queue slots a job occupies: one per physical device it asks for.

    A job that names no device runs where ultralytics puts it: the first GPU when CUDA is
    present, else the CPU, so it shares that device's slot (``cuda`` None: not known).
    """
    if device is None or device == "":
        if cuda is None:
            return ("default",)
        return ("cuda:0",) if cuda else ("cpu",)
    if device in ("cpu", "-1"):
        return ("cpu",)
    if re.fullmatch(r"\d+(,\d+)*", device):
        return tuple(f"cuda:{index}" for index in device.split(","))
    if device == "cuda":
        return ("cuda:0",)
    return (device,)


class JobValidator:
    """Turns a request body into a :class:`ValidatedJob`, or a 400 that says what is wrong."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        cuda_available: Callable[[], bool],
        dataset_check: Callable[[Path], None] | None = None,
        default_device: str | None = None,
        hardware: Callable[[], HardwareView] | None = None,
        allowed_stream_sources: tuple[str, ...] = (),
    ) -> None:
        self.workspace = workspace
        self.allowed_stream_sources = allowed_stream_sources
        self._cuda_available = cuda_available
        self._hardware = hardware
        self._dataset_check = dataset_check
        problem = device_problem(default_device) if default_device else None
        if problem:
            raise ValueError(f"default device: {problem}")
        self.default_device = default_device or None

    def validate(self, body: dict[str, Any]) -> ValidatedJob:
        """Validate a ``POST /yolo/jobs`` body."""
        kind = body.get("kind")
        if kind == TUNE_KIND:  # a training request plus the search: jobs/tune_schema.py
            return validate_tune(self, body)
        if kind not in JOB_KINDS:
            raise InvalidRequest(f"'kind' must be one of {', '.join(JOB_KINDS)}, got {kind!r}.")
        schema = SCHEMAS[kind]
        unknown = sorted(set(body) - set(schema) - {"kind"})
        if unknown:
            raise InvalidRequest(
                f"Unknown key(s) for a {kind} job: {', '.join(unknown)}. "
                f"Accepted: {', '.join(sorted(schema))}."
            )
        values = {**DEFAULTS[kind], **{k: v for k, v in body.items() if k != "kind"}}
        if self.default_device and "device" in schema and "device" not in values:
            values["device"] = self.default_device
        missing = [key for key in REQUIRED[kind] if key not in values]
        if missing:
            raise InvalidRequest(f"A {kind} job needs {', '.join(repr(m) for m in missing)}.")
        params = {key: schema[key].validate(key, value) for key, value in values.items()}
        name = params.pop("name", None)
        if needs_report(params.get("device")) and self._hardware is not None:
            report, probe_error = self._hardware()
            problem = absence(params["device"], report, probe_error)
            if problem:
                raise InvalidRequest(f"'device': {problem}")

        reference = params["model"]
        params["model"] = self.resolve_model(reference, kind)
        if "pretrained" in params:
            params["pretrained"] = self.resolve_pretrained(params["pretrained"])
        task = model_task(reference, params["model"], self.workspace.jobs)
        if kind == "train":
            check_offline(task, reference)
        dataset_yaml = None
        if "data" in params:
            shown = params["data"]
            data_path = self.resolve_data(shown)
            if data_path.is_dir():  # a classify dataset: ultralytics takes its folder
                found = dataset_task({}, data_path)
            else:
                dataset_yaml = self.normalised_dataset(data_path, shown)
                found = dataset_task(dataset_yaml, Path(dataset_yaml["path"]))
                if found.task == "classify":
                    data_path, dataset_yaml = Path(dataset_yaml["path"]), None
            if kind in ("train", "val"):
                check_fit(reference, task, shown, found)
            params["data"] = str(data_path)
        if kind == "predict":
            params["source"] = check_source(
                params["source"], self.workspace, self.allowed_stream_sources
            ).value
            if "tracker" in params and not params.get("track"):
                raise InvalidRequest("'tracker' is used only with 'track': true.")
        if kind == "predict":
            problem = refusal(
                params["backend"], cuda=self._cuda_available(), device=params.get("device")
            )
            if problem:
                raise InvalidRequest(f"'backend': {problem}")
        if kind == "export" and params["format"] == "engine" and not self._cuda_available():
            raise InvalidRequest(
                "TensorRT export ('engine') needs a CUDA device, and this server has none."
            )
        return ValidatedJob(
            kind=kind,
            name=name,
            params=params,
            request=_shown_request(kind, body),
            dataset_yaml=dataset_yaml,
            devices=device_keys(params.get("device"), cuda=self._cuda_available()),
            task=task,
        )

    def backends(self, device: str | None = None) -> list[dict[str, Any]]:
        """Every inference backend with whether it can run here (for listings and panels)."""
        return [a.as_dict() for a in all_availability(cuda=self._cuda_available(), device=device)]

    def resolve_pretrained(self, reference: str) -> str:
        """Map ``pretrained`` (weights to start a training from) to an absolute .pt path."""
        if reference in architectures_by_name() or not (
            reference.endswith(".pt") or JOB_REFERENCE.match(reference)
        ):
            raise InvalidRequest(
                f"'pretrained': {reference!r} is not trained weights; use a .pt file in the "
                f"weights folder or 'job:<id>:best' of a finished training."
            )
        try:
            return self.resolve_model(reference, "train")
        except InvalidRequest as exc:
            raise InvalidRequest(f"'pretrained': {exc}") from exc

    def resolve_model(self, model: str, kind: str) -> str:
        """Map a model reference to an architecture name or an absolute weights path."""
        if model in architectures_by_name():
            if kind != "train":
                raise InvalidRequest(
                    f"'{model}' is an untrained architecture; a {kind} job needs trained weights "
                    f"(a .pt file in the weights folder or 'job:<id>' of a finished training)."
                )
            return model
        reference = JOB_REFERENCE.match(model)
        if reference:
            job_id, which = reference.groups()
            weights = self.workspace.jobs / job_id / "run" / "weights"
            candidates = (
                [weights / f"{which}.pt"] if which else [weights / "best.pt", weights / "last.pt"]
            )
            for candidate in candidates:
                if candidate.is_file():
                    return str(candidate)
            raise InvalidRequest(f"Job {job_id} has no trained weights to use as model {model!r}.")
        if "/" not in model and model.endswith(".pt"):
            relative = self.workspace.relative(self.workspace.weights)
            path = self.workspace.resolve(f"{relative}/{model}", what="model", must_exist=False)
            if not path.is_file():
                raise InvalidRequest(
                    f"Weights {model!r} are not in the workspace weights folder "
                    f"({self.workspace.relative(self.workspace.weights)}/); nothing is downloaded "
                    f"at run time. Use an architecture such as 'yolov8n.yaml' to train from "
                    f"scratch, or put the file there."
                )
            return str(path)
        if not model.endswith(PREDICT_MODEL_SUFFIXES):
            raise InvalidRequest(
                f"Unknown model {model!r}: use an architecture (yolov8n.yaml ... yolov8x.yaml), "
                f"a .pt file in the weights folder, a workspace-relative weights path or "
                f"'job:<id>'."
            )
        if not model.endswith(".pt") and kind not in ("predict", "val"):
            raise InvalidRequest(f"A {kind} job needs PyTorch weights (.pt), got {model!r}.")
        return str(self.workspace.resolve(model, what="model", missing=InvalidRequest))

    def resolve_data(self, data: str) -> Path:
        """Map a dataset name or a workspace-relative data.yaml to its absolute path.

        A registered dataset (by name, or a data.yaml inside ``datasets/<name>/``) whose
        validation report has errors is refused here with a 400 pointing at the report.
        """
        if DATASET_NAME.match(data) and not data.endswith((".yaml", ".yml")):
            path = self.workspace.datasets / data / "data.yaml"
            folder = path.parent
            if not path.is_file() and not folder.is_symlink() and is_classify_root(folder):
                if self._dataset_check is not None:
                    self._dataset_check(path)
                return folder
            if not path.is_file():
                raise InvalidRequest(
                    f"There is no dataset named {data!r}; upload it or give a "
                    f"workspace-relative path to its data.yaml."
                )
        elif not data.endswith((".yaml", ".yml")):
            classify = self._classify_folder(data)
            if classify is not None:
                return classify
            raise InvalidRequest(
                f"'data' must be a registered dataset name, a workspace-relative data.yaml or "
                f"a classify folder (train/<class>/<image>), got {data!r}."
            )
        else:
            path = self.workspace.resolve(data, what="dataset file", missing=InvalidRequest)
        if self._dataset_check is not None:
            self._dataset_check(path)
        return path

    def _classify_folder(self, data: str) -> Path | None:
        """A workspace-relative classify folder (``train/<class>/<image>``), else None."""
        try:
            folder = self.workspace.resolve(data, what="dataset folder", must_exist=False)
        except YoloError:
            return None
        return folder if folder.is_dir() and is_classify_root(folder) else None

    def normalised_dataset(self, yaml_path: Path, shown: str) -> dict[str, Any]:
        """Read a data.yaml and return the keys ultralytics trains with, ``path`` made absolute.

        Keys that make ultralytics fetch or run something (``download``) are refused; any other
        key outside :data:`DATA_YAML_KEYS` is left out of the job's copy. Every split must stay
        inside the workspace and exist.
        """
        try:
            content = load_yaml(yaml_path.read_bytes())
        except (OSError, YamlRefused) as exc:
            line = f" (line {exc.line})" if isinstance(exc, YamlRefused) and exc.line else ""
            raise InvalidRequest(f"The dataset file {shown!r} cannot be read{line}: {exc}") from exc
        if not isinstance(content, dict):
            raise InvalidRequest(f"The dataset file {shown!r} is not a YAML mapping.")
        forbidden = sorted(str(k) for k in content if k in FORBIDDEN_DATA_KEYS)
        if forbidden:
            raise InvalidRequest(
                f"The dataset file {shown!r} has a {forbidden[0]!r} entry, which makes ultralytics "
                f"download files or run code; remove it (datasets are used offline, as they are)."
            )
        for key in ("train", "val", "names"):
            if key not in content:
                raise InvalidRequest(f"The dataset file {shown!r} has no {key!r} entry.")
        if "masks_dir" in content and folder_name_problem(content["masks_dir"]) is not None:
            problem = folder_name_problem(content["masks_dir"])
            raise InvalidRequest(f"'masks_dir' in {shown!r} {problem}.")
        try:
            base = self._dataset_base(yaml_path, content.get("path"), shown)
            for split in ("train", "val", "test"):
                self._check_split(base, split, content.get(split), shown)
        except (OSError, ValueError) as exc:
            raise InvalidRequest(
                f"The dataset file {shown!r} names a path that cannot be used: {exc}"
            ) from None
        kept = {key: value for key, value in content.items() if key in DATA_YAML_KEYS}
        return {**kept, "path": str(base)}

    def _dataset_base(self, yaml_path: Path, value: Any, shown: str) -> Path:
        """The folder a data.yaml's ``path`` names (its own folder when empty), in the workspace."""
        if value in (None, ""):
            base = yaml_path.parent
        elif not isinstance(value, str):
            raise InvalidRequest(
                f"'path' in {shown!r} must be a folder name, got {describe(value)}."
            )
        else:
            _check_path_text(value, f"'path' in {shown!r}")
            candidate = Path(value)
            if candidate.is_absolute():
                base = candidate
            elif (yaml_path.parent / candidate).exists():
                base = yaml_path.parent / candidate
            else:
                base = self.workspace.datasets / candidate
        base = base.resolve()
        if not self.workspace.contains(base):
            raise InvalidRequest(
                f"The dataset file {shown!r} points outside the workspace "
                f"(path: {describe(value)})."
            )
        return base

    def _check_split(self, base: Path, split: str, entries: Any, shown: str) -> None:
        """A split names existing folders or list files inside the workspace."""
        if entries in (None, ""):
            return
        listed = entries if isinstance(entries, list) else [entries]
        if len(listed) > 100 or not all(isinstance(e, str) and e for e in listed):
            raise InvalidRequest(
                f"The {split} split of {shown!r} must be a folder or file name, or a short "
                f"list of them; got {describe(entries)}."
            )
        for entry in listed:
            _check_path_text(entry, f"The {split} split of {shown!r}")
            target = (base / entry).resolve()
            if not self.workspace.contains(target):
                raise InvalidRequest(
                    f"The {split} split {describe(entry)} of {shown!r} points outside the "
                    f"workspace."
                )
            if not target.exists():
                raise InvalidRequest(
                    f"The {split} split {describe(entry)} of {shown!r} does not exist."
                )


def _check_path_text(value: str, what: str) -> None:
    """Refuse a path a file system cannot hold: control characters, overlong names."""
    problem = path_problem(value)
    if problem:
        raise InvalidRequest(f"{what} {problem}.")


def _shown_request(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """The request as job descriptions show it: a stream URL's credentials masked.

    The runner's parameters (``job.json``, private to the user) keep the URL it connects to.
    """
    request = dict(body)
    if kind == "predict" and isinstance(request.get("source"), str):
        request["source"] = mask_url(request["source"])
    return request
