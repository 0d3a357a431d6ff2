"""Robustness: the `make train` policy and the nominal-world policy in held-out worlds.

Trains the deployable hover preset (what `make train` runs, its own budget) for each seed
and the nominal-world preset once, flies every kept policy (``best.pt``) through the
robustness suite (``sim.robustness``: its own seed, apart from training and evaluation),
and exports the first deployable policy the way `make export` does, which flies the
suite again with the float policy and with the numpy integer model of policy.h.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.common import machine, write_section

COMMAND = "python -m bench robustness"


def train(preset: str, seed: int, run_dir: Path) -> dict:
    from train.config import make_config
    from train.loop import Trainer

    cfg = make_config(preset, seed=seed, run_dir=str(run_dir), name=f"{preset}-s{seed}")
    start = time.perf_counter()
    trainer = Trainer(cfg)
    trainer.run()
    m = trainer.metrics
    return {
        "preset": preset,
        "seed": seed,
        "path": str(trainer.run_dir / "best.pt"),
        "wall": time.perf_counter() - start,
        "env_steps": m[-1]["env_steps"],
        "updates": m[-1]["updates"],
        "best_eval": max(x["success_rate"] for x in m),
    }


def suite(path: str) -> list[dict]:
    from sim import robustness
    from sim.contract.checkpoint import load_actor

    actor, spec, _ = load_actor(path)
    return robustness.run(actor.act_numpy, spec.task_config())


def export(path: str, out: Path) -> dict:
    from export.__main__ import parse_args, run

    rep = run(parse_args([path, "--out", str(out)]))
    return {"robustness": rep["robustness"], "checks": rep["checks"]}


def _cell(row: dict) -> str:
    return f"{row['success_rate']:.0%} ({100 * row['final_error_median_m']:.1f})"


def main(argv: list[str] | None = None) -> str:
    from sim import robustness

    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--run-dir", default="runs/bench")
    ap.add_argument(
        "--render",
        action="store_true",
        help="only rewrite the section from RUN_DIR/robustness.json (no training)",
    )
    args = ap.parse_args(argv)
    run_dir = Path(args.run_dir)
    saved = run_dir / "robustness.json"
    if args.render:
        data = json.loads(saved.read_text())
        runs, exported = data["runs"], {k: v for k, v in data.items() if k != "runs"}
    else:
        runs = [train("hover-nominal", 1, run_dir)]
        runs += [train("hover", s, run_dir) for s in args.seeds]
        for r in runs:
            r["suite"] = suite(r["path"])
        exported = export(runs[1]["path"], run_dir / "robustness-export")
        run_dir.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps({"runs": runs, **exported}, indent=2))
    for r in runs:
        r["score"] = robustness.score(r["suite"])
        print(json.dumps({k: v for k, v in r.items() if k != "suite"}), flush=True)
    deploy = runs[1]

    names = [f"{r['preset']} s{r['seed']}" for r in runs]
    head = (
        "| row | in range | "
        + " | ".join(names)
        + " | integer model (s"
        + str(deploy["seed"])
        + ") |"
    )
    rule = "|---|:-:|" + "---:|" * (len(names) + 1)
    int_rows = exported["robustness"]["rows"]["int"]
    lines = []
    for i, row in enumerate(runs[0]["suite"]):
        cells = [_cell(r["suite"][i]) for r in runs]
        cells.append(_cell(int_rows[i]))
        inside = "yes" if row["inside_training_range"] else "no"
        lines.append(f"| {row['row']} | {inside} | " + " | ".join(cells) + " |")
    train_lines = "\n".join(
        f"| {n} | {r['env_steps']:,} | {r['updates']:,} | {r['wall']:.0f} s | "
        f"{r['best_eval']:.0%} | {r['score']['nominal_success']:.0%} | "
        f"{100 * r['score']['nominal_median_error_m']:.1f} cm | "
        f"{r['score']['worst_inside_success']:.0%} | {r['score']['combined_success']:.0%} |"
        for n, r in zip(names, runs, strict=True)
    )
    rob = exported["robustness"]
    md = f"""## Robustness: the `make train` policy in held-out worlds

`{COMMAND}` on {machine()}, one run at a time on a quiet machine. Each policy is the
`best.pt` of `python -m train --preset PRESET --seed S` with the preset's own budget and
stop rule; `hover` is what `make train` runs (the randomised, noisy, delayed world),
`hover-nominal` the nominal-world policy the project shipped before. Every row flies
{robustness.EPISODES} episodes from the task's random starts with seed {robustness.SEED}
(training and evaluation use others); a row changes one thing from the nominal world
(docs/sim.md; "in range": inside the deployable task's training range). Cells: success
(median final position error, cm). Success: survive 5 s and stay within 0.1 m of the
target for the whole last second. "worst in range": the worst single-parameter row inside
the training ranges; "all ends": the last row, every parameter at its hard end at once.
Wall time includes the evaluations (every 100,000 env steps).

| policy | env steps | updates | wall | best eval | nominal | median | worst in range | all ends |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
{train_lines}

{head}
{rule}
{chr(10).join(lines)}

The last column is the numpy integer model of the exported `policy.h` (12-bit weight
codes, int16 activations), flown by `python -m export` on the same rows: largest success gap to
the float policy on any row {rob["max_row_gap_pp"]:.1f} pp (target 2 pp).
"""
    write_section("robustness", md)
    print(md)
    return md


if __name__ == "__main__":
    main()
