"""Fly a constant action or a trained policy and plot the trajectories."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sim.rollout import Rollout  # noqa: E402


def plot_rollout(r: Rollout, path: Path, title: str, max_lines: int = 20) -> Path:
    """Position error per axis over time for up to ``max_lines`` episodes, saved as PNG."""
    t = np.arange(r.positions.shape[0]) / r.control_hz
    err = r.positions - r.target
    fig, axes = plt.subplots(4, 1, figsize=(8, 9), sharex=True)
    for k, name in enumerate("xyz"):
        ax = axes[k]
        for e in range(min(max_lines, err.shape[1])):
            color = "tab:green" if r.success[e] else "tab:red"
            ax.plot(t, err[:, e, k], color=color, lw=0.8, alpha=0.7)
        ax.set_ylabel(f"{name} - target (m)")
        ax.grid(alpha=0.3)
    dist = np.linalg.norm(err, axis=2)
    for e in range(min(max_lines, dist.shape[1])):
        axes[3].plot(
            t, dist[:, e], color="tab:green" if r.success[e] else "tab:red", lw=0.8, alpha=0.7
        )
    axes[3].set_ylabel("|error| (m)")
    axes[3].set_xlabel("time (s)")
    axes[3].set_yscale("log")
    axes[3].grid(alpha=0.3)
    fig.suptitle(
        f"{title}\nsuccess {r.success_rate:.0%} of {r.success.size} (green: success, red: failure)"
    )
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def save_figure(fig, path: Path, dpi: int = 100) -> Path:
    """Write ``fig`` as a PNG to a temporary name, rename it onto ``path``, close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        fig.savefig(tmp, dpi=dpi)
        tmp.replace(path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path
