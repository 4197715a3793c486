"""``POST /yolo/predict`` input: query parameters and images, checked before any worker sees them.

Pure checks (no tornado, no torch, nothing decoded): every image's width and height are read from
its header (:mod:`jupyter_yolo.serving.imagesize`), so a decompression bomb (a small file whose
header promises billions of pixels) is refused with 413 before any pixel buffer exists.
Workspace paths are confined to the workspace (symbolic links out are refused) and read in a
thread, bounded by the body limit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from ..inference.backends import AUTO, BACKEND_CHOICES
from ..jobs.schema import device_problem
from ..workspace import Workspace
from .imagesize import image_size

DEFAULT_CONF = 0.25
DEFAULT_IOU = 0.7
MAX_IMGSZ = 4096
MAX_CLASS_INDEX = 9999
MAX_CLASSES = 1000
MAX_NAME_CHARS = 255
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8")
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class PredictParams:
    """The query of one request, checked."""

    model: str
    conf: float
    iou: float
    imgsz: int
    """0: the model's own training size (the worker reports what it used)."""
    classes: list[int] | None
    backend: str
    device: str


@dataclass(frozen=True)
class ImageInput:
    """One image of a request: the name its results carry and its encoded bytes."""

    name: str
    data: bytes


def _fraction(name: str, raw: str | None, default: float) -> float:
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidRequest(f"Query argument {name!r} must be a number, got {raw!r}.") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InvalidRequest(f"Query argument {name!r} must be between 0 and 1, got {raw!r}.")
    return value


def _imgsz(raw: str | None) -> int:
    if raw is None or raw.strip() in ("", "0"):
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"Query argument 'imgsz' must be an integer, got {raw!r}.") from None
    if not 32 <= value <= MAX_IMGSZ or value % 32:
        raise InvalidRequest(
            f"Query argument 'imgsz' must be a multiple of 32 (the model stride) from 32 to "
            f"{MAX_IMGSZ}, got {raw!r}; leave it out to use the model's training size."
        )
    return value


def _classes(raw: str | None) -> list[int] | None:
    if raw is None or not raw.strip():
        return None
    parts = [p.strip() for p in raw.split(",")]
    if len(parts) > MAX_CLASSES or not all(
        p.isdigit() and int(p) <= MAX_CLASS_INDEX for p in parts
    ):
        raise InvalidRequest(
            f"Query argument 'classes' must be comma-separated class indices (0 to "
            f"{MAX_CLASS_INDEX}), such as 'classes=0,2', got {raw!r}."
        )
    return sorted({int(p) for p in parts})


def parse_params(
    get: Callable[[str], str | None],
    *,
    default_device: str | None,
    backend_refusal: Callable[[str, str], str | None],
) -> PredictParams:
    """The request's query as :class:`PredictParams`, or a 400 naming the bad argument.

    ``get`` reads one query argument (None when absent); ``backend_refusal(backend, device)``
    says why a backend cannot run here (:func:`jupyter_yolo.inference.backends.refusal`).
    """
    model = (get("model") or "").strip()
    if not model:
        raise InvalidRequest(
            "Query argument 'model' is required: 'job:<id>' (or 'job:<id>:best'), a .pt file in "
            "the weights folder, or a workspace-relative weights file or export."
        )
    device = (get("device") or default_device or "cpu").strip()
    problem = device_problem(device)
    if problem:
        raise InvalidRequest(f"Query argument 'device': {problem}")
    backend = (get("backend") or AUTO).strip()
    if backend != AUTO and backend not in BACKEND_CHOICES:
        raise InvalidRequest(
            f"Query argument 'backend': unknown backend {backend!r}; use one of "
            f"{', '.join(BACKEND_CHOICES)}."
        )
    refused = backend_refusal(backend, device)
    if refused:
        raise InvalidRequest(f"Query argument 'backend': {refused}")
    return PredictParams(
        model=model,
        conf=_fraction("conf", get("conf"), DEFAULT_CONF),
        iou=_fraction("iou", get("iou"), DEFAULT_IOU),
        imgsz=_imgsz(get("imgsz")),
        classes=_classes(get("classes")),
        backend=backend,
        device=device,
    )


def safe_name(name: str | None, index: int) -> str:
    """A part's file name fit for results and logs (``image<N>`` when it has none)."""
    cleaned = _UNSAFE_NAME.sub("", (name or "").replace("\\", "/").rsplit("/", 1)[-1]).strip()
    return cleaned[:MAX_NAME_CHARS] or f"image{index}"


def check_image(image: ImageInput, max_pixels: int) -> tuple[int, int]:
    """The image's (width, height) from its header; 415, 400 or 413 when it cannot be used."""
    size = image_size(image.data)
    if size is None:
        data = image.data
        known = data.startswith(_IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
        if not known:
            raise UnsupportedMediaType(f"{image.name!r} is not a JPEG, PNG or WebP image.")
        raise InvalidRequest(f"{image.name!r} has a broken or truncated image header.")
    width, height = size
    if width <= 0 or height <= 0:
        raise InvalidRequest(f"{image.name!r} says it is {width}x{height} pixels.")
    if width * height > max_pixels:
        raise PayloadTooLarge(
            f"{image.name!r} is {width}x{height} = {width * height} pixels; at most "
            f"{max_pixels} are allowed (max_image_pixels). Resize it, or raise the limit."
        )
    return size


def check_images(images: list[ImageInput], *, max_images: int, max_pixels: int) -> None:
    """Refuse an empty or oversize list and any image that :func:`check_image` refuses."""
    if not images:
        raise InvalidRequest("The request has no image.")
    if len(images) > max_images:
        raise PayloadTooLarge(
            f"A request may carry {max_images} images at most (max_predict_images); this one "
            f"has {len(images)}."
        )
    for image in images:
        check_image(image, max_pixels)


def read_workspace_images(
    workspace: Workspace, paths: object, *, max_images: int, max_bytes: int
) -> list[ImageInput]:
    """Read the images ``{"paths": [...]}`` names (blocking: call in a thread)."""
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise InvalidRequest(
            "'paths' must be a non-empty list of workspace-relative image paths, such as "
            '["datasets/shapes/images/val/0.jpg"].'
        )
    if len(paths) > max_images:
        raise PayloadTooLarge(
            f"A request may name {max_images} images at most (max_predict_images); this one "
            f"names {len(paths)}."
        )
    images: list[ImageInput] = []
    total = 0
    for relative in paths:
        path: Path = workspace.resolve(relative, what="image path")
        if not path.is_file():
            raise InvalidRequest(f"The image path {relative!r} is not a file.")
        size = path.stat().st_size
        total += size
        if total > max_bytes:
            raise PayloadTooLarge(
                f"The named images hold more than {max_bytes} bytes (max_predict_body_bytes)."
            )
        with path.open("rb") as handle:
            data = handle.read(size + 1)
        images.append(ImageInput(workspace.relative(path), data))
    return images
