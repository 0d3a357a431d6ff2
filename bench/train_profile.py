"""Where a training run's seconds go: a sampling profile (py-spy) of one nominal hover
run, and the operators of one update (torch.profiler).

The run is the speed benchmark's: ``python -m train --preset hover-nominal --seed 1``
until an evaluation reaches 95%. py-spy samples the process 200 times a second without
changing it; each sample of the main thread is put in the first category whose function
is on its stack (the order of CATEGORIES), so the shares add up to the run's wall time.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.common import machine, write_section

COMMAND = "python -m bench train_profile"
RATE_HZ = 100

# (category, functions that put a sample in it), checked in this order.
CATEGORIES = [
    ("update: backward passes", ["Tensor.backward"]),
    ("update: optimiser steps", ["Optimizer.", "Adam.step", "zero_grad"]),
    ("update: target networks (soft update)", ["soft_update"]),
    ("update: forward passes and losses", ["update (train/ddpg.py"]),
    ("replay sampling", ["ReplayBuffer.sample"]),
    ("evaluation", ["Trainer.evaluate"]),
    ("acting (actor on the envs' observations)", ["Trainer.act "]),
    ("simulator step", ["QuadVectorEnv.step", "QuadBatch."]),
    ("replay insert, normalisation, bookkeeping", ["Trainer.collect_step"]),
    ("saving, metrics, plots", ["Trainer.save", "Trainer.log_eval", "save_best"]),
    ("start-up (imports, JIT, set-up)", ["<module>", "Trainer.__init__", "_find_and_load"]),
]

# Measured with this script's method (then blocking py-spy at 200 Hz, one torch thread)
# at commit b4ea098 (2026-11-30, quiet machine): the preset before this round of changes,
# its run to 98% (1.5 M env steps, 46,251 updates, 134 s of training).
BEFORE = {
    "label": "b4ea098: 32 envs, lr 1e-3, batch 256, 1-step, 1 thread; run to 98%",
    "updates": 46_251,
    "env_steps": 1_500_000,
    "seconds": {
        "update: forward passes and losses": 59.9,
        "update: backward passes": 41.2,
        "update: optimiser steps": 10.9,
        "update: target networks (soft update)": 3.5,
        "replay sampling": 5.0,
        "evaluation": 1.3,
        "acting (actor on the envs' observations)": 5.0,
        "simulator step": 4.2,
        "replay insert, normalisation, bookkeeping": 2.0,
        "saving, metrics, plots": 2.2,
        "start-up (imports, JIT, set-up)": 2.0,
    },
}


def categorise(raw: Path) -> tuple[Counter, int]:
    """py-spy's collapsed stacks -> samples per category (main thread only)."""
    counts: Counter = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if "train_main" not in stack and "Trainer.run" not in stack:
            continue  # tqdm's monitor, TensorBoard's writer: waiting threads
        total += int(n)
        for name, keys in CATEGORIES:
            if any(k in stack for k in keys):
                counts[name] += int(n)
                break
        else:
            counts["other Python (the loop itself, progress bar)"] += int(n)
    return counts, total


def profile_run(seed: int, out: Path) -> tuple[Counter, int, dict]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("error: the profile needs py-spy: pip install py-spy")
    raw = out / "profile.txt"
    run_dir = out / "runs"
    cmd = [
        spy, "record", "--nonblocking", "-r", str(RATE_HZ), "-f", "raw", "-o", str(raw), "--",
        sys.executable, "-m", "train", "--preset", "hover-nominal", "--seed", str(seed),
        "--stop-success", "0.95", "--run-dir", str(run_dir), "--name", "profiled",
    ]  # fmt: skip
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    from train import run_files

    last = run_files.read_metrics_csv(run_dir / "profiled" / run_files.METRICS)[-1]
    counts, total = categorise(raw)
    return counts, total, last


def update_ops(n: int = 300) -> list[tuple[str, float, int]]:
    """Self CPU time per operator over ``n`` updates of the preset (us per update)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from train.config import make_config
    from train.ddpg import Agent, update

    cfg = make_config("hover-nominal")
    torch.set_num_threads(cfg.threads)
    torch.set_flush_denormal(True)
    from sim.tasks import ACT_DIM, make_task

    obs_dim = make_task(cfg.task).obs_dim
    agent = Agent(cfg, obs_dim, ACT_DIM)
    b = cfg.batch_size
    g = torch.Generator().manual_seed(0)
    batch = (
        torch.randn(b, obs_dim, generator=g),
        torch.rand(b, ACT_DIM, generator=g) * 2 - 1,
        torch.randn(b, 1, generator=g),
        torch.randn(b, obs_dim, generator=g),
        torch.zeros(b, 1),
    )
    for _ in range(50):
        update(agent, batch, cfg)
    with profile(activities=[ProfilerActivity.CPU]) as p:
        for _ in range(n):
            update(agent, batch, cfg)
    rows = [
        (e.key, e.self_cpu_time_total / n, e.count // n)
        for e in p.key_averages()
        if e.self_cpu_time_total > 0
    ]
    rows.sort(key=lambda r: -r[1])
    return rows


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        counts, total, last = profile_run(args.seed, Path(tmp))
    ops = update_ops()
    wall = total / RATE_HZ
    before = BEFORE["seconds"]
    b_total = sum(before.values())
    lines = [
        "| where | before: s | share | now: s | share |",
        "|---|---:|---:|---:|---:|",
    ]
    names = [n for n, _ in CATEGORIES] + ["other Python (the loop itself, progress bar)"]
    for name in names:
        b, n = before.get(name, 0.0), counts.get(name, 0) / RATE_HZ
        if b or n:
            lines.append(f"| {name} | {b:.1f} | {b / b_total:.0%} | {n:.1f} | {n / wall:.0%} |")
    lines.append(f"| all | {b_total:.1f} | | {wall:.1f} | |")
    op_lines = ["| operator | us per update | calls per update |", "|---|---:|---:|"]
    per_update = sum(us for _, us, _ in ops)
    for key, us, calls in ops[:10]:
        op_lines.append(f"| `{key}` | {us:.0f} | {calls} |")
    syncs = [r for r in ops if r[0] in ("aten::item", "aten::_local_scalar_dense")]
    sync_us = sum(us for _, us, _ in syncs)
    from train.config import make_config

    cfg = make_config("hover-nominal")
    md = f"""## Training: where the seconds go (profile)

`{COMMAND}` on {machine()}, nothing else running: py-spy (non-blocking, {RATE_HZ} Hz) on
`python -m train --preset hover-nominal --seed {args.seed} --stop-success 0.95`; each sample
of the main thread goes to the first category on its stack, in the table's order. Now:
{int(last["env_steps"]):,} env steps, {int(last["updates"]):,} updates,
{last["wall_seconds"]:.1f} s of training to {last["success_rate"]:.0%} ({wall:.1f} s sampled,
start-up included; the sampler shares the two cores with the run's two torch threads).
Before ({BEFORE["label"]}): {BEFORE["env_steps"]:,} env steps, {BEFORE["updates"]:,} updates.

{chr(10).join(lines)}

One update of the preset's networks (batch {cfg.batch_size}, {cfg.threads} torch threads),
torch.profiler over 300 updates, operators by self time: {per_update:.0f} us per update in
all; host syncs (`.item()`): {sync_us:.1f} us per update (the losses stay tensors until
an evaluation logs them).

{chr(10).join(op_lines)}
"""
    write_section("train_profile", md)
    print(md)
    return md


if __name__ == "__main__":
    main()
