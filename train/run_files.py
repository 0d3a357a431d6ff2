"""The files of a run directory, saved so that a kill at any moment leaves a set that resumes.

``config.json`` is written before anything else, so a run stopped before its first
checkpoint starts over from it (the same seed: the same run).
``checkpoint.pt`` is the commit point. A save writes the replay buffer to a new
``replay-<step>.pt`` first, then ``checkpoint.pt`` naming that file, and only then deletes
the older replay file; every file is written to a temporary name and renamed. So whatever
instant a run dies at, ``checkpoint.pt`` names a complete replay file of its own step.
``metrics.csv``, ``learning_curve.png`` and TensorBoard events may run ahead of the
checkpoint after a kill; a resumed run rewrites them from the checkpoint.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import torch

from sim import quality
from sim.contract import checkpoint as ckpt_io
from sim.contract.files import atomic_write

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"  # written first: a run stopped before its first checkpoint restarts
BEST = "best.pt"
METRICS = "metrics.csv"
CURVE = "learning_curve.png"
REPLAY_FORMAT = "quadpilot-replay"
LEGACY_REPLAY = "replay.pt"  # runs saved before replay files carried their step
METRIC_FIELDS = (
    "env_steps",
    "updates",
    "wall_seconds",
    "success_rate",
    "final_error",
    "episode_length",
    "eval_return",
    "train_return",
    "critic_loss",
    "actor_loss",
    *quality.METRICS,  # hover quality of the evaluation's episodes flown to the end
)


def write_config(run_dir: Path, config: dict) -> None:
    text = json.dumps(config, indent=1, sort_keys=True)
    atomic_write(run_dir / CONFIG, lambda tmp: tmp.write_text(text + "\n"))


def read_config(run_dir: Path) -> dict:
    path = Path(run_dir) / CONFIG
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ckpt_io.CheckpointError(f"{path}: unreadable run configuration ({exc})") from None
    if not isinstance(config, dict):
        raise ckpt_io.CheckpointError(f"{path}: not a run configuration")
    return config


def replay_name(step: int) -> str:
    return f"replay-{step}.pt"


def save(run_dir: Path, payload: dict, replay: dict) -> None:
    """Replay first, then the checkpoint that names it, then drop the replay it replaced."""
    step = int(payload["step"])
    name = replay_name(step)
    tagged = {"format": REPLAY_FORMAT, "step": step, **replay}
    atomic_write(run_dir / name, lambda tmp: torch.save(tagged, tmp))
    ckpt_io.save(run_dir / CHECKPOINT, {**payload, "replay": name})
    for old in _replay_files(run_dir):
        if old.name != name:
            old.unlink(missing_ok=True)


def load(path: str | os.PathLike) -> tuple[Path, dict, dict]:
    """(checkpoint file, checkpoint, replay) of a run, checked to belong to the same step."""
    ckpt_file = ckpt_io.resolve(path)
    ckpt = ckpt_io.load(ckpt_file)
    if ckpt.get("kind") == ckpt_io.POLICY_ONLY:
        raise ckpt_io.CheckpointError(
            f"{ckpt_file}: holds a policy only (the best evaluation); resume from the run's "
            f"{CHECKPOINT}: python -m train --resume {ckpt_file.parent}"
        )
    step = int(ckpt["step"])
    replay_file = ckpt_file.parent / ckpt.get("replay", LEGACY_REPLAY)
    if not replay_file.exists():
        raise ckpt_io.CheckpointError(
            f"{ckpt_file} (step {step:,}) names the replay buffer {replay_file.name}, which "
            f"is missing: this run cannot continue exactly"
        )
    replay = ckpt_io.read(replay_file, "replay buffer")
    try:
        size, pos, capacity = (int(replay[k]) for k in ("size", "pos", "capacity"))
        saved = int(replay.get("step", size))  # a legacy file: its fill stands in for its step
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ckpt_io.CheckpointError(f"{replay_file}: not a quadpilot replay buffer") from None
    # One transition per env step: a buffer of the checkpoint's step has exactly this fill.
    if saved != step or size != min(step, capacity) or pos != step % capacity:
        raise ckpt_io.CheckpointError(
            f"{replay_file.name} holds the transitions of step {saved:,} but "
            f"{ckpt_file.name} is at step {step:,}: the two files are from different saves"
        )
    return ckpt_file, ckpt, replay


def clean_stale(run_dir: Path) -> list[Path]:
    """Delete what a killed process left: temporary files and replay files that the
    checkpoint does not name. Returns what was deleted."""
    run_dir = Path(run_dir)
    keep = None
    try:
        keep = ckpt_io.load(run_dir / CHECKPOINT).get("replay", LEGACY_REPLAY)
    except ckpt_io.CheckpointError:
        pass  # no checkpoint yet: every replay file is an orphan of an unfinished save
    stale = [p for p in run_dir.glob(".*.tmp") if p.is_file()]
    stale += [p for p in _replay_files(run_dir) if p.name != keep]
    for p in stale:
        p.unlink(missing_ok=True)
    for link in run_dir.parent.glob(".latest.*"):  # point_latest's own temporary links
        if link.is_symlink() and not _alive(link.suffix[1:]):
            link.unlink(missing_ok=True)
    return stale


def point_latest(run_dir: Path, preset: str, links_dir: Path | None = None) -> None:
    """``runs/latest`` and ``runs/latest-<preset>`` -> this run, each replaced atomically.
    The Makefile's chain uses the preset's link, which no run of another preset moves.
    ``links_dir``: where the links go (default: the run's parent; a sweep's trials are
    one level further down)."""
    links_dir = Path(links_dir) if links_dir is not None else run_dir.parent
    target = os.path.relpath(run_dir, links_dir)
    for name in ("latest", f"latest-{preset}"):
        tmp = links_dir / f".latest.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        os.replace(tmp, links_dir / name)


def tensorboard(run_dir: Path, purge_step: int | None = None):
    """A TensorBoard writer; ``purge_step`` hides events a killed session logged past the
    checkpoint it resumes from."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency; degrade rather than fail a run
        return None
    return SummaryWriter(log_dir=str(run_dir / "tb"), purge_step=purge_step)


def write_metrics_csv(path: Path, metrics: list[dict]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            extra = [k for k in metrics[0] if k not in METRIC_FIELDS] if metrics else []
            w = csv.DictWriter(f, fieldnames=[*METRIC_FIELDS, *extra])  # extra: "stage"
            w.writeheader()
            w.writerows(metrics)

    atomic_write(path, write)


def read_metrics_csv(path: Path) -> list[dict]:
    """metrics.csv back as rows of numbers ([] if the run has not evaluated yet)."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        # An empty cell: a figure the run's evaluations did not record when it was written.
        return [
            {k: float(v) if v != "" else float("nan") for k, v in row.items()}
            for row in csv.DictReader(f)
        ]


def first_reaching(metrics: list[dict], threshold: float) -> dict | None:
    """The first evaluation row at or above ``threshold`` success, or None."""
    return next((m for m in metrics if m["success_rate"] >= threshold), None)


def plot_learning_curve(path: Path, metrics: list[dict], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([m["env_steps"] for m in metrics]) / 1e6
    wall = np.array([m["wall_seconds"] for m in metrics])
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 4))
    ax1.plot(steps, [100 * m["success_rate"] for m in metrics], "o-", color="tab:green")
    ax1.set_xlabel("environment steps (millions)")
    ax1.set_ylabel("evaluation success (%)", color="tab:green")
    ax1.set_ylim(-2, 102)
    ax1.grid(alpha=0.3)
    ax1b = ax1.twiny()
    ax1b.set_xlim(*(np.interp(ax1.get_xlim(), steps, wall) if len(steps) > 1 else (0, 1)))
    ax1b.set_xlabel("wall-clock seconds")
    ax2.plot(steps, [m["eval_return"] for m in metrics], "o-", label="evaluation return")
    ax2.plot(steps, [m["train_return"] for m in metrics], ".-", label="training return (last 100)")
    ax2.set_xlabel("environment steps (millions)")
    ax2.legend()
    ax2.grid(alpha=0.3)
    # How calmly the evaluated episodes that flew to the end hover (sim/quality.py);
    # evaluations with none flown, or from before these figures were kept, leave gaps.
    change = [m.get("command_change_mean", np.nan) for m in metrics]
    gyro = [m.get("gyro_rms_rad_s", np.nan) for m in metrics]
    ax3.plot(steps, change, "o-", color="tab:purple")
    ax3.set_xlabel("environment steps (millions)")
    ax3.set_ylabel("command change per control step", color="tab:purple")
    ax3.set_ylim(bottom=0)
    ax3.grid(alpha=0.3)
    ax3b = ax3.twinx()
    ax3b.plot(steps, gyro, "s--", color="tab:orange", markersize=4)
    ax3b.set_ylabel("gyro RMS (rad/s)", color="tab:orange")
    ax3b.set_ylim(bottom=0)
    ax3.set_title("hover quality, last second of episodes flown to the end", fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    finally:
        plt.close(fig)


def differences(a: str | os.PathLike, b: str | os.PathLike) -> list[str]:
    """The entries on which two checkpoints disagree, apart from those that say when and
    where a run happened (wall clock, versions, run name and directory, replay file name):
    empty for a resumed run that ended exactly as the uninterrupted one."""
    fa, fb = _leaves(ckpt_io.load(a)), _leaves(ckpt_io.load(b))
    diff = sorted(set(fa) ^ set(fb))
    for k in sorted(set(fa) & set(fb)):
        if not _bit_equal(fa[k], fb[k]):
            diff.append(k)
    return diff


def _bit_equal(x, y) -> bool:
    """Equal to the bit (a NaN equals the same NaN)."""
    if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
        return (
            x.dtype == y.dtype and x.shape == y.shape and x.numpy().tobytes() == y.numpy().tobytes()
        )
    if isinstance(x, float) and isinstance(y, float):
        return np.float64(x).tobytes() == np.float64(y).tobytes()
    return type(x) is type(y) and x == y


_CIRCUMSTANCES = {"wall_seconds", "versions", "run_dir", "name", "replay"}


def _leaves(x, path: str = "") -> dict:
    if isinstance(x, dict):
        items = ((k, v) for k, v in x.items() if k not in _CIRCUMSTANCES)
    elif isinstance(x, (list, tuple)):
        items = enumerate(x)
    else:
        return {path: x}
    out = {}
    for k, v in items:
        out.update(_leaves(v, f"{path}/{k}"))
    return out


def _replay_files(run_dir: Path) -> list[Path]:
    return [*run_dir.glob("replay-*.pt"), *run_dir.glob(LEGACY_REPLAY)]


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
