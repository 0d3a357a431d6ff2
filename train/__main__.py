"""python -m train: train DDPG/TD3 on a sim task, or evaluate a checkpoint.

python -m train --preset hover --seed 3 --algo td3     train into runs/<name>/
python -m train --resume runs/latest                   continue an interrupted run
python -m train evaluate [CHECKPOINT] [--video [PATH]] success, error, hover quality, plot, video
python -m train robustness [CHECKPOINT ...]            the held-out robustness suite
python -m train sweep --seeds 1 2 3 --grid num_envs=32,128   many runs at once on Ray Tune
"""

from __future__ import annotations

import argparse
import sys

from train import sigint

if __name__ == "__main__":
    sigint.install("train")  # before the heavy imports below

from sim.contract.checkpoint import CheckpointError
from train.config import PRESETS, add_arguments, from_args

NOT_STARTED = " before training started; nothing was written"


def train_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--preset", default="hover", help=f"one of: {', '.join(PRESETS)}")
    ap.add_argument(
        "--resume",
        default=None,
        metavar="RUN",
        help="run directory or checkpoint to continue (its config is reused; "
        "--total-env-steps and --max-minutes may be raised)",
    )
    add_arguments(ap)
    args = ap.parse_args(argv)
    try:
        from train.loop import Trainer, resume

        if args.resume:
            extra = {
                k: getattr(args, k)
                for k in ("total_env_steps", "max_minutes")
                if getattr(args, k) is not None
            }
            trainer = resume(args.resume, **extra)
        else:
            trainer = Trainer(from_args(args))
    except (ValueError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        sigint.interrupted("train", NOT_STARTED)
    sigint.check("train", NOT_STARTED)  # a Ctrl-C that set-up's libraries dropped
    try:
        trainer.run()
    except KeyboardInterrupt:
        return 130
    return 0


def evaluate_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m train evaluate",
        description="Evaluate a checkpoint on the task it was "
        "trained for, from the task's random initial states.",
    )
    ap.add_argument("checkpoint", nargs="?", default="runs/latest")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument(
        "--plot",
        default=None,
        help="trajectory plot (default: next to the checkpoint, evaluation.png); the "
        "figures, hover quality included, go to the same name with .json",
    )
    ap.add_argument(
        "--video",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="also a video of the first 3 episodes, .mp4 (imageio-ffmpeg) or .gif "
        "(default: next to the checkpoint, evaluation.mp4)",
    )
    args = ap.parse_args(argv)
    from train.evaluate import evaluate_checkpoint

    try:
        evaluate_checkpoint(args.checkpoint, args.episodes, args.seed, args.plot, args.video)
    except (ValueError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def robustness_main(argv: list[str]) -> int:
    from sim import robustness

    ap = argparse.ArgumentParser(
        prog="python -m train robustness",
        description="Fly each checkpoint's policy through the fixed robustness suite (the "
        "nominal world, each parameter alone at both ends of the deployable task's "
        "training range and beyond, latency, sensor noise, disturbances, all at once) on "
        "held-out initial states; a table, reports/robustness.json and a PNG.",
    )
    ap.add_argument("checkpoints", nargs="*", default=["runs/latest/best.pt"])
    ap.add_argument("--episodes", type=int, default=robustness.EPISODES, help="per row")
    ap.add_argument("--seed", type=int, default=robustness.SEED)
    ap.add_argument("--out", default="reports/robustness", help="writes OUT.json and OUT.png")
    args = ap.parse_args(argv)
    from train.evaluate import robustness_of_checkpoints

    try:
        robustness_of_checkpoints(args.checkpoints, args.episodes, args.seed, args.out)
    except (ValueError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "evaluate":
        return evaluate_main(argv[1:])
    if argv and argv[0] == "robustness":
        return robustness_main(argv[1:])
    if argv and argv[0] == "sweep":
        from train.sweep import main as sweep_main

        return sweep_main(argv[1:])
    return train_main(argv)


if __name__ == "__main__":
    sigint.run(main, "train")
