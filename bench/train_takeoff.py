"""Takeoff: wall-clock time to 90% and how the kept policies fly from unseen starts.

Each seed trains the takeoff preset for ``--minutes`` of wall clock, evaluating every
``--eval-every`` env steps on the 100 fixed starts every run uses. Then two policies are
flown from ``--fresh-episodes`` starts drawn with another seed: ``best.pt`` (the best
of those evaluations, which export uses) and the policy at the end of the budget. The
fresh figures are the honest ones: ``best.pt`` was picked on the fixed starts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.common import machine, write_section
from bench.train_speed import fmt, ours

COMMAND = "python -m bench train_takeoff"


def fly_fresh(path: Path, episodes: int, seed: int) -> dict:
    from train.evaluate import fly_checkpoint

    r, _, _ = fly_checkpoint(path, episodes, seed, parallel=False)
    return {"success": r.success_rate, "final_error": float(r.final_error.mean())}


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--minutes", type=float, default=10.0, help="budget per run")
    ap.add_argument("--eval-every", type=int, default=50_000)
    ap.add_argument("--fresh-episodes", type=int, default=500)
    ap.add_argument("--fresh-seed", type=int, default=777)
    ap.add_argument("--run-dir", default="runs/bench")
    args = ap.parse_args(argv)
    run_dir = Path(args.run_dir)
    results = []
    for seed in args.seeds:
        r = ours("takeoff", "ddpg", seed, args.minutes, args.eval_every, run_dir)
        run = run_dir / f"takeoff-ddpg-s{seed}"
        r["fresh_best"] = fly_fresh(run / "best.pt", args.fresh_episodes, args.fresh_seed)
        r["fresh_final"] = fly_fresh(run / "checkpoint.pt", args.fresh_episodes, args.fresh_seed)
        results.append(r)
        print(json.dumps(r), flush=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "train_takeoff.json").write_text(json.dumps(results, indent=2))

    rows = "\n".join(
        f"| {r['seed']} | {fmt(r['t90'])} | {fmt(r['t95'])} | {r['best']:.0%} | "
        f"{r['final']:.0%} | {r['fresh_best']['success']:.1%} "
        f"({r['fresh_best']['final_error']:.3f} m) | {r['fresh_final']['success']:.1%} "
        f"({r['fresh_final']['final_error']:.3f} m) | {r['env_steps']:,} | {r['wall']:.0f} s |"
        for r in results
    )
    reached = sum(r["fresh_best"]["success"] >= 0.9 for r in results)
    md = f"""## Training: takeoff

`{COMMAND}` on {machine()}. Takeoff preset (DDPG, udacity airframe, LayerNorm critic,
averaged policy), {args.minutes:g} min of wall clock per seed, evaluation every
{args.eval_every:,} env steps on the 100 fixed ground starts (time includes evaluation).
"Fresh" flies the kept policy from {args.fresh_episodes} other ground starts (seed
{args.fresh_seed}); in brackets the mean final position error. Success: within 0.3 m of
the target throughout the last second of the 5 s episode.

{reached} of {len(results)} seeds keep a policy that reaches 90% on the fresh starts.

| seed | to 90% | to 95% | best | final | fresh: best.pt | fresh: final | env steps | wall |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|
{rows}
"""
    write_section("train_takeoff", md)
    print(md)
    return md


if __name__ == "__main__":
    main()
