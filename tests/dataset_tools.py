"""Helpers for the dataset tests: zips, expected statistics from label files, conversions to
COCO and Pascal VOC, raw HTTP uploads and workspace snapshots."""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import stat
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import yaml
from PIL import Image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def zip_dir(folder: Path, dest: Path, prefix: str = "", skip: tuple[str, ...] = ()) -> Path:
    """Zip every file under ``folder`` (deflated), names under ``prefix``."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not any(part in skip for part in path.parts):
                archive.write(path, prefix + path.relative_to(folder).as_posix())
    return dest


def names_of(data_yaml: Path) -> dict[int, str]:
    names = yaml.safe_load(data_yaml.read_text())["names"]
    if isinstance(names, list):
        return dict(enumerate(names))
    return {int(k): v for k, v in names.items()}


def expected_stats(folder: Path) -> dict[str, Any]:
    """Image and instance counts per split and the class histogram, read from the label files
    of a YOLO folder with ``images/<split>`` and ``labels/<split>``."""
    splits: dict[str, dict[str, int]] = {}
    histogram: dict[str, Counter[int]] = {}
    for images in sorted((folder / "images").iterdir()):
        split = images.name
        files = [p for p in images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
        counts: Counter[int] = Counter()
        for image in files:
            label = folder / "labels" / split / image.relative_to(images).with_suffix(".txt")
            if label.is_file():
                for line in label.read_text().splitlines():
                    if line.strip():
                        counts[int(float(line.split()[0]))] += 1
        splits[split] = {"images": len(files), "instances": sum(counts.values())}
        histogram[split] = counts
    return {"splits": splits, "histogram": histogram}


def histogram_from_report(report: dict[str, Any], split: str) -> Counter[int]:
    return Counter({row["id"]: row[split] for row in report["class_histogram"] if row[split]})


def yolo_to_coco(folder: Path, dest: Path) -> Path:
    """Turn a YOLO dataset into COCO: images/<split>/*.jpg and annotations/instances_<split>.json
    (category ids start at 1 and have a gap, as in COCO)."""
    names = names_of(folder / "data.yaml")
    category_id = {cls: cls * 2 + 1 for cls in names}
    (dest / "annotations").mkdir(parents=True)
    annotation_id = 1
    for images_dir in sorted((folder / "images").iterdir()):
        split = images_dir.name
        out_dir = dest / "images" / split
        out_dir.mkdir(parents=True)
        images, annotations = [], []
        for index, image in enumerate(sorted(images_dir.glob("*.jpg")), 1):
            (out_dir / image.name).write_bytes(image.read_bytes())
            with Image.open(image) as opened:
                width, height = opened.size
            images.append({"id": index, "file_name": image.name, "width": width, "height": height})
            label = folder / "labels" / split / f"{image.stem}.txt"
            for line in label.read_text().splitlines():
                cls, cx, cy, w, h = (float(v) for v in line.split())
                annotations.append(
                    {
                        "id": annotation_id,
                        "image_id": index,
                        "category_id": category_id[int(cls)],
                        "bbox": [
                            (cx - w / 2) * width,
                            (cy - h / 2) * height,
                            w * width,
                            h * height,
                        ],
                        "area": w * width * h * height,
                        "iscrowd": 0,
                    }
                )
                annotation_id += 1
        document = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": category_id[c], "name": n} for c, n in names.items()],
        }
        (dest / "annotations" / f"instances_{split}.json").write_text(json.dumps(document))
    return dest


def yolo_to_voc(folder: Path, dest: Path) -> Path:
    """Turn a YOLO dataset into Pascal VOC (Annotations/, JPEGImages/, no ImageSets)."""
    names = names_of(folder / "data.yaml")
    (dest / "Annotations").mkdir(parents=True)
    (dest / "JPEGImages").mkdir()
    for image in sorted((folder / "images").rglob("*.jpg")):
        split = image.parent.name
        name = f"{split}_{image.name}"  # VOC has one image folder: keep names unique
        (dest / "JPEGImages" / name).write_bytes(image.read_bytes())
        with Image.open(image) as opened:
            width, height = opened.size
        objects = []
        for line in (folder / "labels" / split / f"{image.stem}.txt").read_text().splitlines():
            cls, cx, cy, w, h = (float(v) for v in line.split())
            x0, y0 = (cx - w / 2) * width + 1, (cy - h / 2) * height + 1
            x1, y1 = (cx + w / 2) * width + 1, (cy + h / 2) * height + 1
            objects.append(
                f"<object><name>{escape(names[int(cls)])}</name><bndbox><xmin>{x0}</xmin>"
                f"<ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
            )
        (dest / "Annotations" / f"{split}_{image.stem}.xml").write_text(
            f"<annotation><filename>{name}</filename><size><width>{width}</width>"
            f"<height>{height}</height><depth>3</depth></size>{''.join(objects)}</annotation>"
        )
    return dest


def snapshot(root: Path, ignore: tuple[str, ...] = ()) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` (links not followed) with its size and type."""
    found: dict[str, tuple[int, int]] = {}
    for current, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(current) / name
            relative = path.relative_to(root).as_posix()
            if any(relative.startswith(prefix) for prefix in ignore):
                continue
            info = path.lstat()
            found[relative] = (stat.S_IFMT(info.st_mode), info.st_size if path.is_file() else 0)
    return found


def raw_request(
    port: int,
    head: str,
    chunks: list[bytes],
    *,
    chunked: bool,
    close_after: bool = False,
    timeout: float = 20.0,
) -> tuple[int | None, dict[str, Any] | None, int]:
    """Send a request over a plain socket, stopping as soon as the server answers.

    Returns (status, JSON body, bytes of body sent). Blocking: call it in a thread.
    """
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1"))
        answered = False
        for chunk in chunks:
            readable, _, _ = select.select([sock], [], [], 0.02)
            if readable:
                answered = True
                break
            data = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                answered = True
                break
            sent += len(chunk)
        if close_after and not answered:
            return None, None, sent
        if chunked and not answered:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(b"0\r\n\r\n")
        response = b""
        while b"\r\n\r\n" not in response or not _complete(response):
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            response += data
    if not response:
        return None, None, sent
    status_line, _, rest = response.partition(b"\r\n")
    status = int(status_line.split()[1])
    head, _, body = rest.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            body = body[: int(line.split(b":")[1])]  # a second answer may follow
    try:
        return status, json.loads(body), sent
    except ValueError:
        return status, None, sent


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


async def upload(jp_fetch: Any, name: str, data: bytes, **kwargs: Any) -> dict[str, Any]:
    """POST a zip as the body and return the created dataset."""
    response = await jp_fetch(
        "yolo",
        "datasets",
        method="POST",
        params={"name": name},
        body=data,
        headers={"Content-Type": "application/zip"},
        request_timeout=120,
        **kwargs,
    )
    assert response.code == 201
    assert response.headers["Location"].endswith(f"/yolo/datasets/{name}")
    result: dict[str, Any] = json.loads(response.body)
    return result


def assert_matches_labels(dataset: dict[str, Any], folder: Path) -> None:
    """Counts and class histograms equal those computed from the label files."""
    expected = expected_stats(folder)
    assert set(dataset["splits"]) == set(expected["splits"])
    for split, counts in expected["splits"].items():
        assert dataset["splits"][split]["images"] == counts["images"], split
        assert dataset["splits"][split]["instances"] == counts["instances"], split
        assert histogram_from_report(dataset["report"], split) == expected["histogram"][split]
    assert dataset["images"] == sum(c["images"] for c in expected["splits"].values())
