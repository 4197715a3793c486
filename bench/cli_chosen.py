"""``yolo`` with a training job's speed choices: ``python -m bench.cli_chosen --threads N ...
-- train ARGS``.

The training section's ``overhead_ratio`` compares a job with plain ultralytics given exactly the
settings the job chose, so a speed-up is shown to come from the choices. ``cache`` and
``workers`` are CLI arguments; the rest has no CLI argument and is applied here the way the
runner applies it (:mod:`jupyter_yolo.runner.speed`), before ``ultralytics.cfg.entrypoint`` runs
the command: ``OMP_WAIT_POLICY``, torch's intra- and inter-op threads and ultralytics'
``NUM_THREADS`` (which ``select_device`` gives torch), dataloader workers kept for CPU
training, and channels-last weights through ultralytics' default callbacks.
"""

from __future__ import annotations

import argparse
import os
import sys


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """This shim's options (before ``--``) and the ``yolo`` arguments (after it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--interop-threads", type=int, default=1)
    parser.add_argument("--cpu-workers", type=int, default=0)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--omp-wait-policy", default="")
    split = argv.index("--") if "--" in argv else len(argv)
    return parser.parse_args(argv[:split]), argv[split + 1 :]


def main(argv: list[str] | None = None) -> None:
    """Apply the choices, then run ``yolo`` with the arguments after ``--``."""
    args, rest = parse(sys.argv[1:] if argv is None else argv)
    sys.argv = ["yolo", *rest]  # before ultralytics is imported: it keeps its own copy (ARGV)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    if args.omp_wait_policy:  # before torch starts its OpenMP threads
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy
    import torch

    torch.set_num_interop_threads(args.interop_threads)
    torch.set_num_threads(args.threads)
    from ultralytics.cfg import entrypoint
    from ultralytics.utils.callbacks.base import default_callbacks

    from jupyter_yolo.runner.offline import set_ultralytics_thread_count
    from jupyter_yolo.runner.speed import keep_workers, to_channels_last

    set_ultralytics_thread_count(args.threads)
    if args.cpu_workers > 0:
        default_callbacks["on_pretrain_routine_start"].append(keep_workers(args.cpu_workers))
    if args.channels_last:
        default_callbacks["on_pretrain_routine_end"].append(to_channels_last)
    entrypoint()


if __name__ == "__main__":
    main()
