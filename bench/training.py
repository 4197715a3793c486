"""Training speed: the same training request as a job and as plain ``yolo train``.

The request is the embedded detection recipe (:data:`EMBEDDED_RECIPES` ``detect``: ``yolov8n.yaml``
from scratch, imgsz 128, batch 16, nbs 16, AdamW at lr0 0.003) with ``seed=0`` and
``device=cpu``, on the generated shapes dataset (96 training, 24 validation images), trained long
enough for mAP50 to reach its plateau. Three sides, in a rotating order (each repeat starts with
the next side), every run in a fresh process:

* ``job``: ``POST /yolo/jobs`` with those user arguments; the job makes its own speed choices
  (threads, workers, cache, memory format: :mod:`jupyter_yolo.contract.training_speed`). Wall
  time until ``GET /yolo/jobs/{id}`` says it ended (its runner has exited and the server has
  noticed, as the CLI's process has exited); ``overhead_ratio_events`` ends it at the arrival of
  its terminal status event over the events long-poll.
* ``cli``: ``yolo train`` with the same user arguments and ultralytics' defaults for everything
  else (no thread variables: ultralytics sets ``OMP_NUM_THREADS=1`` and torch to
  ``min(8, os.cpu_count() - 1)`` threads).
* ``cli_chosen``: ``yolo train`` given exactly the settings the job chose (:mod:`bench.cli_chosen`
  applies those that have no CLI argument).

``speedup_over_cli`` is the median CLI time over the median job time (target >= 1.4 on 2 CPUs),
with the final mAP50 of both (last epoch of ``results.csv``, medians) within 2 points;
``overhead_ratio`` the median job time over the median ``cli_chosen`` time (target <= 1.03), so
the speed-up is shown to come from the choices. Images per second: training images x epochs over
the training phase (from "Starting training" to "N epochs completed" in the logs). All sides share
the ultralytics settings file and fonts (``YOLO_CONFIG_DIR``, prepared as the runner prepares it),
run offline (``YOLO_OFFLINE=1``) and send their output through a pipe to a thread that writes the
log. A warm-up of each side (one epoch, not counted) fills the label caches and the page cache.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_yolo.contract.training_defaults import EMBEDDED_RECIPES

from .common import THREAD_VARS, Log, Rest, make_shapes, median, rounded, start_server, usable_cpus
from .training_runs import (
    _phases,
    cli_environment,
    prepare_config_dir,
    run_cli,
    run_job,
)

__all__ = ["TrainingConfig", "_phases", "cli_environment", "run", "summarise"]

SIDES = ("job", "cli", "cli_chosen")


@dataclass(frozen=True)
class TrainingConfig:
    """What is trained, how often."""

    epochs: int
    repeats: int
    train_images: int = 96
    val_images: int = 24
    warmup: bool = True

    @classmethod
    def for_mode(cls, quick: bool) -> TrainingConfig:
        """Quick: 2 rotations of the three sides; full: 3 (60 epochs: mAP50 on its plateau)."""
        return cls(epochs=60, repeats=2) if quick else cls(epochs=60, repeats=3)

    def params(self, epochs: int | None = None) -> dict[str, Any]:
        """The user's training arguments (besides model, data and output folder)."""
        recipe = {k: v for k, v in EMBEDDED_RECIPES["detect"].items() if k != "model"}
        return {**recipe, "epochs": epochs or self.epochs, "seed": 0, "device": "cpu"}


def chosen_command(speed: dict[str, Any] | None) -> tuple[list[str], dict[str, Any]]:
    """The :mod:`bench.cli_chosen` command and the extra CLI arguments for a job's choices."""
    values = {c["name"]: c["value"] for c in (speed or {}).get("choices", [])}
    command = [
        sys.executable,
        "-m",
        "bench.cli_chosen",
        f"--threads={int(values.get('threads') or usable_cpus())}",
        f"--interop-threads={int(values.get('interop_threads') or 1)}",
    ]
    if values.get("channels_last") is True:
        command.append("--channels-last")
    if values.get("omp_wait_policy"):
        command.append(f"--omp-wait-policy={values['omp_wait_policy']}")
    workers = int(values.get("workers") or 0)
    if workers:
        command.append(f"--cpu-workers={workers}")
    extra: dict[str, Any] = {"workers": workers}
    if values.get("cache"):
        extra["cache"] = values["cache"]
    return [*command, "--"], extra


def run(
    *, quick: bool, workdir: Path, log: Log, config: TrainingConfig | None = None
) -> dict[str, Any]:
    """Measure the training speed-up and overhead; return ``{"training": {...}}``."""
    cfg = config or TrainingConfig.for_mode(quick)
    root = workdir / "training"
    workspace = root / "workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    data_yaml = make_shapes(workspace, train=cfg.train_images, val=cfg.val_images, seed=0)
    prepare_config_dir(workspace)
    env = cli_environment(workspace, {})
    log(f"training: {cfg.repeats} rotations of job / cli / cli_chosen, {cfg.epochs} epochs")
    # the server and its runners get no thread variables: the job chooses its own
    # no background preparation of the trained models: it would run beside the next timed side
    server = start_server(
        root,
        workspace,
        dict.fromkeys(THREAD_VARS),
        extra_args=("--YoloApp.prepare_after_training=False",),
    )
    rest = Rest(server.url, server.token)
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    try:
        speed: dict[str, Any] | None = None
        if cfg.warmup:
            warm = cfg.params(epochs=1)
            log("training: warm-up (1 epoch each, not counted)")
            run_cli(data_yaml, root / "cli" / "warmup", warm, env)
            speed = run_job(rest, workspace, warm)["speed"]
        for i in range(cfg.repeats):
            order = SIDES[i % 3 :] + SIDES[: i % 3]
            for side in order:
                if side == "job":
                    result = run_job(rest, workspace, cfg.params())
                    speed = result["speed"] or speed
                elif side == "cli":
                    result = run_cli(data_yaml, root / side / f"run{i}", cfg.params(), env)
                else:
                    command, extra = chosen_command(speed)
                    params = {**cfg.params(), **extra}
                    result = run_cli(data_yaml, root / side / f"run{i}", params, env, command)
                runs[side].append(result)
                log(
                    f"training: {i + 1}/{cfg.repeats} {side} {result['wall_s']:.1f} s, "
                    f"mAP50 {result['mAP50']}"
                )
    finally:
        rest.close()
        server.stop()
    return {"training": summarise(cfg, runs, speed)}


def _images_per_s(cfg: TrainingConfig, run: dict[str, Any]) -> float | None:
    seconds = run["phases"].get("training_s")
    return cfg.train_images * cfg.epochs / seconds if seconds else None


def summarise(
    cfg: TrainingConfig,
    runs: dict[str, list[dict[str, Any]]],
    speed: dict[str, Any] | None,
) -> dict[str, Any]:
    """The section's figures from the individual runs (see the module docstring)."""
    jobs, chosen = runs["job"], runs["cli_chosen"]
    walls = {side: [r["wall_s"] for r in runs[side]] for side in SIDES}
    job_med, cli_med = median(walls["job"]), median(walls["cli"])
    chosen_med = median(walls["cli_chosen"])
    event_med = median(j["event_wall_s"] for j in jobs)
    chosen_work = median(c["wall_s"] - c["phases"]["exit_s"] for c in chosen)
    maps = {side: [r["mAP50"] for r in runs[side] if r.get("mAP50") is not None] for side in SIDES}
    rates = {
        side: [x for r in runs[side] if (x := _images_per_s(cfg, r)) is not None] for side in SIDES
    }
    map_job, map_cli = median(maps["job"]), median(maps["cli"])
    runner = [j["runner_s"] for j in jobs if j.get("runner_s") is not None]
    return {
        "speedup_over_cli": rounded(cli_med / job_med, 4),
        "map50_job": rounded(map_job, 4),
        "map50_cli": rounded(map_cli, 4),
        "map50_diff_points": rounded(abs(map_job - map_cli) * 100, 2),
        "images_per_s_job": rounded(median(rates["job"]), 1),
        "images_per_s_cli": rounded(median(rates["cli"]), 1),
        "images_per_s_cli_chosen": rounded(median(rates["cli_chosen"]), 1),
        "overhead_ratio": rounded(job_med / chosen_med, 4),
        "overhead_ratio_events": rounded(event_med / chosen_med, 4),
        "overhead_ratio_work": rounded(event_med / chosen_work, 4),
        "overhead_s": rounded(job_med - chosen_med, 3),
        "job_median_s": rounded(job_med, 3),
        "job_event_median_s": rounded(event_med, 3),
        "cli_median_s": rounded(cli_med, 3),
        "cli_chosen_median_s": rounded(chosen_med, 3),
        "walls_s": {side: [rounded(w, 3) for w in walls[side]] for side in SIDES},
        "map50_all": {side: [rounded(m, 4) for m in maps[side]] for side in SIDES},
        "runner_median_s": rounded(median(runner), 3) if runner else None,
        "phases_median_s": {side: _median_phases(runs[side]) for side in SIDES},
        "choices": speed,
        "settings": {
            **cfg.params(),
            "model": "yolov8n.yaml",
            "dataset": f"shapes {cfg.train_images}+{cfg.val_images} images",
            "rotations": cfg.repeats,
        },
    }


def _median_phases(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name in runs[0]["phases"] if runs else ():
        values = [r["phases"][name] for r in runs if r["phases"].get(name) is not None]
        out[name] = rounded(median(values), 3) if values else None
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.training [--quick]``: this section alone, JSON on stdout."""
    import argparse
    import tempfile

    from .common import stderr_log

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--repeats", type=int)
    args = parser.parse_args(argv)
    cfg = TrainingConfig.for_mode(args.quick)
    if args.epochs or args.repeats:
        cfg = TrainingConfig(epochs=args.epochs or cfg.epochs, repeats=args.repeats or cfg.repeats)
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        result = run(quick=args.quick, workdir=Path(tmp), log=stderr_log, config=cfg)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
