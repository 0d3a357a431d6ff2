"""Each preset's defaults reach the preset's documented result by themselves.

    .venv/bin/python -m bench presets [--presets hover takeoff] [--seeds 1 2 3] [--no-write]

Runs exactly the command a user types, ``python -m train --preset P --seed S`` (budget,
stop rule and all from the preset), one run at a time, then flies its ``best.pt`` from
``--fresh-episodes`` starts drawn with a seed no run trains or evaluates on. The target
is >= 90% evaluation success at the end (best.pt) for every seed. Writes the "presets"
section of docs/benchmarks.md; exits 1 if a seed misses it.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import machine, write_section

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.90


def train(preset: str, seed: int, run_dir: Path) -> dict:
    name = f"{preset}-s{seed}"
    cmd = [sys.executable, "-m", "train", "--preset", preset, "--seed", str(seed)]
    start = time.perf_counter()
    proc = subprocess.run(
        [*cmd, "--run-dir", str(run_dir), "--name", name],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    with open(run_dir / name / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    best = max(rows, key=lambda r: (float(r["success_rate"]), -float(r["final_error"])))
    done = next(line for line in proc.stdout.splitlines() if line.startswith("done ("))
    return {
        "preset": preset,
        "seed": seed,
        "run": run_dir / name,
        "stopped": done[len("done (") : done.index(")")],
        "env_steps": int(rows[-1]["env_steps"]),
        "wall": wall,
        "best": float(best["success_rate"]),
        "best_step": int(best["env_steps"]),
    }


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench presets")
    ap.add_argument("--presets", nargs="+", default=["hover", "takeoff"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--fresh-episodes", type=int, default=500)
    ap.add_argument("--fresh-seed", type=int, default=777)
    ap.add_argument("--run-dir", default="runs/bench-presets")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    from train.evaluate import fly_checkpoint

    run_dir = Path(args.run_dir)
    results = []
    for preset in args.presets:
        for seed in args.seeds:
            r = train(preset, seed, run_dir)
            fresh, _, _ = fly_checkpoint(
                r["run"] / "best.pt", args.fresh_episodes, args.fresh_seed, parallel=False
            )
            r["fresh"] = fresh.success_rate
            r["fresh_error"] = float(fresh.final_error.mean())
            results.append(r)
            print(
                f"{preset} s{seed}: {r['stopped']}, {r['env_steps']:,} env steps, "
                f"{r['wall']:.0f} s; best evaluation {r['best']:.0%} at {r['best_step']:,}; "
                f"fresh starts {r['fresh']:.1%}",
                flush=True,
            )
    missed = [r for r in results if r["best"] < TARGET]
    rows = "\n".join(
        f"| `python -m train --preset {r['preset']} --seed {r['seed']}` | {r['stopped']} | "
        f"{r['env_steps']:,} | {r['wall']:.0f} s | {r['best']:.0%} at {r['best_step']:,} | "
        f"{r['fresh']:.1%} ({r['fresh_error']:.3f} m) |"
        for r in results
    )
    md = f"""## Presets on their own defaults

`python -m bench presets` on {machine()}, {time.strftime("%Y-%m-%d")}, one run at a time
(load average {os.getloadavg()[0]:.1f} at the end). Each row is the user's command with
nothing added: the preset's budget, evaluation schedule and stop rule. "Best evaluation"
is best.pt's (the policy export uses) on the run's fixed evaluation starts; "fresh" flies
best.pt from {args.fresh_episodes} other starts (seed {args.fresh_seed}), mean final
error in brackets. Target: best evaluation >= {TARGET:.0%} on every seed.

{len(results) - len(missed)} of {len(results)} runs reach it.

| command | stopped by | env steps | wall clock | best evaluation | fresh starts |
|---|---|---:|---:|---:|---:|
{rows}
"""
    print(md)
    if not args.no_write:
        write_section("presets", md)
    if missed:
        sys.exit(1)
