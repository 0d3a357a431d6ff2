"""python -m sim {bench,fly}: simulator speed, and trajectory plots."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def _bench(args) -> int:
    from sim import bench

    res = bench.run(args.task, args.seconds)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"task {res['task']} (env-steps/s; one env-step = one control step)")
    print(f"{'N':>6} {'raw dynamics':>15} {'vector env':>15}")
    for n in bench.SIZES:
        print(f"{n:>6} {res['raw_dynamics'][n]:>15,.0f} {res['vector_env'][n]:>15,.0f}")
    print(f"single Gymnasium env: {res['single_env']:,.0f} steps/s")
    return 0


def _fly(args) -> int:
    from sim.fly import plot_rollout
    from sim.rollout import collect
    from sim.tasks import make_task

    if args.policy:  # the simulator knows no checkpoints (they belong to train)
        print(
            f"error: sim fly flies constant actions; fly a trained policy with: python -m "
            f"train evaluate {args.policy} (success rate, plot, --video)",
            file=sys.stderr,
        )
        return 2
    task = make_task(args.task)
    value = task.body().hover_action() if args.action is None else args.action
    if len(value if isinstance(value, list) else [value]) not in (1, 4):
        print("error: --action takes 1 or 4 numbers in [-1, 1]", file=sys.stderr)
        return 2
    const = np.broadcast_to(np.asarray(value, dtype=np.float32), (4,))
    policy = lambda obs: np.tile(const, (obs.shape[0], 1))  # noqa: E731
    title = f"constant action {np.round(const, 3).tolist()} on {task.name}"
    r = collect(policy, task, episodes=args.episodes, seed=args.seed)
    path = plot_rollout(r, args.out, title)
    print(
        f"success {r.success_rate:.1%} over {r.success.size} episodes, mean final error "
        f"{r.final_error.mean():.3f} m, mean length {r.lengths.mean():.1f} steps"
    )
    print(f"plot: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from sim.tasks import PRESETS

    ap = argparse.ArgumentParser(prog="python -m sim", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench", help="env-steps/s for N = 1, 256, 4096")
    b.add_argument("--task", default="hover", choices=list(PRESETS))
    b.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    b.add_argument("--json", action="store_true", help="machine-readable output")
    f = sub.add_parser("fly", help="fly a constant action; save a plot")
    f.add_argument("--task", default="hover", choices=list(PRESETS))
    f.add_argument(
        "--action",
        type=float,
        nargs="+",
        default=None,
        help="1 or 4 actions in [-1, 1] (default: the hover action)",
    )
    f.add_argument("--policy", default=None, help=argparse.SUPPRESS)  # says where it went
    f.add_argument("--episodes", type=int, default=10)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--out", default="reports/fly.png")
    args = ap.parse_args(argv)
    try:
        return _bench(args) if args.cmd == "bench" else _fly(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
