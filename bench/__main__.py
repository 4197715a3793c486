"""``python -m bench [--quick] [--out FILE.json] [--only A,B | --skip A,B]``: every figure, one run.

Sections, run in this order, each measuring its two sides side by side with medians over repeats:

* ``training``: the same training request as a job through the server, as plain ``yolo train``
  and as ``yolo train`` given the job's speed choices (``training.speedup_over_cli``,
  ``training.map50_diff_points``, ``training.overhead_ratio``, images per second);
* ``inference``: images/s per inference backend and for ``auto`` (``bench/inference.py``);
* ``live``: trainer callback to the event served over REST, and REST latency with and without
  a training job running (``live.*``, ``rest.*``);
* ``footprint``: JupyterLab start time and resident memory with and without the extension
  (``server.*``);
* ``eventloop``: REST latency while ``GET /yolo/models`` hashes 20 large weights files, and the
  cold, warm and after-restart durations of that call (``eventloop.*``);
* ``serving``: ``POST /yolo/predict`` on a warm worker against its own inference time and a
  predict job, folder jobs against plain ``yolo predict``, video frames/s, 20 concurrent
  clients, the backend's raw limit (``serving.*``, ``bench/serving.py``);
* ``ray``: the same short training as a local job and as a job on a Ray cluster the section
  starts: POST to first batch event and total wall time, side by side (``ray.*``,
  ``bench/ray_overhead.py``);
* ``first_predict``: from a training job's terminal event to the prediction panel's first
  answer, with ``prepare_after_training`` on and off, side by side (``predict.*``,
  ``bench/first_predict.py``);
* ``scaling``: training throughput with 1 and 2 usable CPUs, per-image cost and runner/server
  memory as the dataset grows (100 to 2,000 images), and ``GET /yolo/jobs``, event reads and
  server start with 10, 100 and 1,000 finished jobs (``scaling.*``, ``bench/scaling.py``).

A table goes to stdout, progress to stderr, and the JSON report (figures as flat dotted keys,
then ``targets``, ``sections``, ``machine`` and ``run``) to ``--out``. The targets (training
overhead at most 3 %, ``auto`` at least 0.95x the best backend and 2.5x plain PyTorch, REST p99
under 20 ms while ``/yolo/models`` runs; the REST predict round trip at most 25 % over the
worker's inference, folder jobs at least 2x plain ``yolo predict``, no error with 20 concurrent
clients) are shown as pass/fail; they do not change the exit status. Exit status: 0 when every
section that ran finished (a section whose module does not exist is reported as ``missing``),
1 when one crashed (what was measured is still written), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import Log, loadavg, machine_facts, stderr_log
from .report import build_document, flatten, format_table, write_json


@dataclass(frozen=True)
class Section:
    """A part of the benchmark: the module whose ``run(*, quick, workdir, log)`` measures it.

    ``group`` names the key prefix for a module that returns a flat dict of its own figures
    (the inference section); without it the module returns ``{group: {...}, ...}`` itself.
    """

    name: str
    module: str
    group: str | None = None
    quick_budget_s: float = 0.0


SECTIONS = (
    Section("training", "bench.training", quick_budget_s=900),
    Section("inference", "bench.inference", group="inference", quick_budget_s=360),
    Section("live", "bench.live", quick_budget_s=70),
    Section("footprint", "bench.startup", quick_budget_s=40),
    Section("eventloop", "bench.eventloop", quick_budget_s=60),
    Section("serving", "bench.serving", group="serving", quick_budget_s=150),
    Section("ray", "bench.ray_overhead", quick_budget_s=300),
    Section("first_predict", "bench.first_predict", quick_budget_s=300),
    Section("scaling", "bench.scaling", quick_budget_s=240),
)
SECTION_NAMES = tuple(s.name for s in SECTIONS)

Runner = Callable[..., Mapping[str, Any]]


class SectionMissing(Exception):
    """The section's module is not there (yet)."""


def load_runner(section: Section) -> Runner:
    """Import the section's module lazily and return its ``run`` function."""
    try:
        module = importlib.import_module(section.module)
    except ModuleNotFoundError as exc:
        if exc.name == section.module:
            path = section.module.replace(".", "/") + ".py"
            raise SectionMissing(f"{path} does not exist") from None
        raise
    runner = getattr(module, "run", None)
    if not callable(runner):
        raise SectionMissing(f"{section.module} has no run(*, quick, workdir, log) function")
    return runner  # type: ignore[no-any-return]


def run_section(
    section: Section, *, quick: bool, workdir: Path, log: Log
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run one section; return (its figures as flat dotted keys, its status record)."""
    record: dict[str, Any] = {"status": "ok", "loadavg_before": loadavg()}
    if quick:
        record["quick_budget_s"] = section.quick_budget_s
    started = time.perf_counter()
    figures: dict[str, Any] = {}
    try:
        runner = load_runner(section)
        folder = workdir / section.name
        folder.mkdir(parents=True, exist_ok=True)
        log(f"section {section.name}: start")
        result = dict(runner(quick=quick, workdir=folder, log=log))
        figures = flatten({section.group: result} if section.group else result)
    except SectionMissing as exc:
        record.update(status="missing", reason=str(exc))
        log(f"section {section.name}: missing ({exc})")
    except Exception as exc:
        record.update(
            status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()
        )
        log(f"section {section.name}: FAILED\n{traceback.format_exc()}")
    record["duration_s"] = round(time.perf_counter() - started, 1)
    record["loadavg_after"] = loadavg()
    if record["status"] == "ok":
        log(f"section {section.name}: done in {record['duration_s']:.0f} s")
    return figures, record


def parse_sections(text: str | None) -> list[str]:
    """``"a,b"`` as a list of known section names (argparse error for an unknown one)."""
    if not text:
        return []
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in SECTION_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTION_NAMES)}"
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="jupyter-yolo benchmarks: training overhead, inference backends, live "
        "metrics and REST latency, server footprint, REST latency while /yolo/models hashes, "
        "inference as a service (warm workers, folders, video, concurrent clients). "
        "Table on stdout, JSON to --out.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer repeats and shorter runs (about 15 minutes on 2 CPU cores)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results.json"),
        help="where to write the JSON report (default: bench-results.json)",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--only",
        type=parse_sections,
        metavar="A,B",
        help=f"run only these sections ({', '.join(SECTION_NAMES)})",
    )
    group.add_argument(
        "--skip", type=parse_sections, metavar="A,B", help="run every section but these"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep working files (workspaces, runs, logs) here instead of a "
        "temporary folder that is deleted at the end",
    )
    parser.add_argument("--list", action="store_true", help="list the sections and exit")
    return parser


def selected(only: Sequence[str] | None, skip: Sequence[str] | None) -> list[Section]:
    """The sections to run, in their fixed order."""
    if only:
        return [s for s in SECTIONS if s.name in only]
    return [s for s in SECTIONS if s.name not in (skip or ())]


def run_all(
    sections: Sequence[Section],
    *,
    quick: bool,
    workdir: Path,
    out: Path,
    log: Log,
    argv: Sequence[str] = (),
) -> tuple[dict[str, Any], int]:
    """Run the sections, write the report after each one; return (document, exit status)."""
    started = time.time()
    machine = machine_facts()
    figures: dict[str, Any] = {}
    records: dict[str, Any] = {}
    document: dict[str, Any] = {}

    def save(finished: bool) -> None:
        nonlocal document
        run = {
            "argv": list(argv),
            "quick": quick,
            "started": round(started, 3),
            "duration_s": round(time.time() - started, 1),
            "finished": finished,
            "sections": [s.name for s in sections],
        }
        machine["loadavg_at_end"] = loadavg()
        document = build_document(figures, sections=records, machine=machine, run=run)
        write_json(out, document)

    for section in sections:
        records[section.name] = {"status": "running"}
        save(False)
        section_figures, records[section.name] = run_section(
            section, quick=quick, workdir=workdir, log=log
        )
        figures.update(section_figures)
    save(True)
    crashed = [name for name, r in records.items() if r["status"] == "failed"]
    return document, 1 if crashed else 0


def main(argv: Sequence[str] | None = None, log: Log = stderr_log) -> int:
    """Parse the command line, run, print the table, write the JSON; return the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(args_list)
    if args.list:
        for section in SECTIONS:
            print(f"{section.name:10} {section.module}")
        return 0
    sections = selected(args.only, args.skip)
    if not sections:
        print("no section selected", file=sys.stderr)
        return 2
    temporary = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="jupyter-yolo-bench-")) if temporary else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        document, status = run_all(
            sections,
            quick=args.quick,
            workdir=workdir.absolute(),
            out=args.out,
            log=log,
            argv=args_list,
        )
    finally:
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)
    print(format_table(document))
    print(f"\nJSON report: {args.out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
