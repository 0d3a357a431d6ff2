"""Evaluate a checkpoint: success rate, final position error, episode length, hover
quality (sim/quality.py), a plot and a JSON record of those figures, and on request a
video of the first few of the evaluated episodes."""

from __future__ import annotations

from pathlib import Path

from sim import quality, report_json, robustness
from sim.contract.checkpoint import load_actor
from sim.contract.files import atomic_write
from sim.fly import plot_rollout
from sim.rollout import Rollout, collect
from sim.tasks import TaskConfig
from sim.video import Shot, write_rollout_video
from sim.video import choose as choose_video


def fly_checkpoint(
    path, episodes: int, seed: int, parallel: bool = True
) -> tuple[Rollout, TaskConfig, dict]:
    """``episodes`` deterministic episodes of the checkpoint's policy on its own task."""
    if episodes < 1:
        raise ValueError(f"episodes={episodes}; allowed: an integer >= 1")
    actor, spec, ckpt = load_actor(path)
    task = spec.task_config()
    r = collect(actor.act_numpy, task, episodes=episodes, seed=seed, parallel=parallel)
    return r, task, ckpt


VIDEO_EPISODES = 3


def evaluate_checkpoint(
    path: str,
    episodes: int = 100,
    seed: int = 12345,
    plot: str | None = None,
    video: str | None = None,
) -> Rollout:
    """Prints the figures and writes the plot, and the figures as JSON beside it (the
    plot's name with .json); ``video``: also a video of the first VIDEO_EPISODES
    episodes at that path ("" for evaluation.mp4 beside the plot's default). A missing
    video encoder is said in one line; the evaluation stands."""
    if video:
        choose_video(video, log=lambda _: None)  # a bad name is refused before flying
    r, task, ckpt = fly_checkpoint(path, episodes, seed)
    print(f"checkpoint      {path} (step {ckpt['step']:,})")
    print(f"task            {task.name} ({task.airframe}), {episodes} episodes, seed {seed}")
    print(f"success rate    {r.success_rate:.1%}")
    median = float(sorted(r.final_error)[len(r.final_error) // 2])
    print(f"final error     {r.final_error.mean():.4f} m (mean), {median:.4f} m (median)")
    print(f"episode length  {r.lengths.mean():.1f} of {task.max_steps} steps")
    hover = quality.hover_quality(r, task.window_steps)
    flown = int(quality.flown(r).size)
    print(
        f"hover quality   last {task.success_window_s:g} s of the {flown} episodes flown to "
        f"the end: {quality.describe(hover)}"
        if flown
        else "hover quality   none: no episode flew to the end"
    )
    beside = Path(path if Path(path).is_dir() else Path(path).parent)
    out = Path(plot) if plot else beside / "evaluation.png"
    plot_rollout(r, out, f"{path}: {task.name}")
    print(f"plot            {out}")
    record = {
        "checkpoint": str(path),
        "step": ckpt["step"],
        "task": task.name,
        "episodes": episodes,
        "seed": seed,
        "success_rate": r.success_rate,
        "final_error_mean_m": float(r.final_error.mean()),
        "final_error_median_m": median,
        "episode_length_mean": float(r.lengths.mean()),
        "episodes_flown_to_the_end": flown,
        **hover,
    }
    text = report_json.dumps(record, indent=2) + "\n"
    atomic_write(out.with_suffix(".json"), lambda tmp: tmp.write_text(text))
    print(f"json            {out.with_suffix('.json')}")
    if video is not None:
        shown = range(min(VIDEO_EPISODES, episodes))
        clips = [
            [
                Shot(
                    r,
                    e,
                    task,
                    f"{task.name}, step {ckpt['step']:,}: episode {e + 1} "
                    f"({'success' if r.success[e] else 'failure'})",
                )
            ]
            for e in shown
        ]
        written = write_rollout_video(video or beside / "evaluation.mp4", clips)
        if written:
            print(f"video           {written} (episodes 1-{len(shown)})")
    return r


def robustness_of_checkpoints(paths: list[str], episodes: int, seed: int, out: str) -> dict:
    """The robustness suite for each checkpoint (on its own task and layout); prints the
    table and writes OUT.json and OUT.png. Returns {checkpoint: rows}."""
    if episodes < 1:
        raise ValueError(f"episodes={episodes}; allowed: an integer >= 1")
    named = {}
    for path in paths:
        actor, spec, ckpt = load_actor(path)
        task = spec.task_config()
        print(f"{path}: task {task.name}, step {ckpt['step']:,}, {episodes} episodes per row")
        named[str(path)] = robustness.run(actor.act_numpy, task, episodes, seed)
    print(robustness.table(named))
    for name, res in named.items():
        s = robustness.score(res)
        print(
            f"{name}: nominal {s['nominal_success']:.0%} (median error "
            f"{100 * s['nominal_median_error_m']:.1f} cm), worst row inside the training "
            f"ranges {s['worst_inside_success']:.0%}, combined {s['combined_success']:.0%}; "
            f"nominal {quality.describe(s, brief=True, prefix='nominal_')}"
        )
    base = Path(out)
    print(f"json            {robustness.write_json(named, base.with_suffix('.json'))}")
    print(f"plot            {robustness.plot(named, base.with_suffix('.png'))}")
    return named
