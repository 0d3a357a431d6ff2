"""Evaluate a checkpoint: success rate, final position error, episode length, a plot."""

from __future__ import annotations

from pathlib import Path

from sim.fly import plot_rollout
from sim.rollout import Rollout, collect
from sim.tasks import make_task
from train.checkpoint import load_actor


def evaluate_checkpoint(
    path: str, episodes: int = 100, seed: int = 12345, plot: str | None = None
) -> Rollout:
    if episodes < 1:
        raise ValueError(f"episodes={episodes}; allowed: an integer >= 1")
    actor, spec, ckpt = load_actor(path)
    task = make_task(spec["task"], **spec.get("task_overrides", {}))
    r = collect(actor.act_numpy, task, episodes=episodes, seed=seed)
    print(f"checkpoint      {path} (step {ckpt['step']:,})")
    print(f"task            {task.name} ({task.airframe}), {episodes} episodes, seed {seed}")
    print(f"success rate    {r.success_rate:.1%}")
    print(
        f"final error     {r.final_error.mean():.4f} m (mean), "
        f"{float(sorted(r.final_error)[len(r.final_error) // 2]):.4f} m (median)"
    )
    print(f"episode length  {r.lengths.mean():.1f} of {task.max_steps} steps")
    out = (
        Path(plot)
        if plot
        else Path(path if Path(path).is_dir() else Path(path).parent) / "evaluation.png"
    )
    plot_rollout(r, out, f"{path}: {task.name}")
    print(f"plot            {out}")
    return r
