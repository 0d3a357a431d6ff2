"""The progress bar of a run: it counts toward whichever limit will stop the run first.

A run stops at its step budget, at its wall-clock limit (``max_minutes``) or when an
evaluation reaches ``stop_success``. A bar drawn to the step budget of a time-limited run
shows a far end it never reaches (100 M steps, hours of ETA); so the bar's end is the step
count the run will reach when its first limit binds, re-estimated from this session's
speed, and its label says which limit that is. The success rule cannot be foreseen: the
postfix shows the last evaluation against it.
"""

from __future__ import annotations

from tqdm import tqdm

from sim import quality
from train.config import TrainConfig

ESTIMATE_AFTER_S = 3.0  # seconds of this session before its speed is trusted


def projected_end(
    cfg: TrainConfig, env_steps: int, wall: float, steps_per_s: float | None
) -> tuple[int, str]:
    """(the step count at which the run will stop, which limit stops it)."""
    budget = (cfg.total_env_steps, f"{cfg.total_env_steps:,} steps")
    if not cfg.max_minutes or not steps_per_s:
        return budget
    left_s = max(0.0, 60.0 * cfg.max_minutes - wall)
    by_time = env_steps + int(steps_per_s * left_s)
    if by_time >= cfg.total_env_steps:
        return budget
    return by_time, f"{cfg.max_minutes:g} min"


class Progress:
    def __init__(self, cfg: TrainConfig, env_steps: int, wall: float, name: str, show: bool = True):
        self.cfg = cfg
        self.start_steps, self.start_wall = env_steps, wall
        total, limit = projected_end(cfg, env_steps, wall, None)
        self.bar = tqdm(
            total=total,
            initial=env_steps,
            unit="step",
            unit_scale=True,
            dynamic_ncols=True,
            desc=f"{name} (to {limit})",
            disable=not show,
        )
        self.name = name

    def update(self, env_steps: int, wall: float) -> None:
        self.bar.update(env_steps - self.bar.n)
        elapsed = wall - self.start_wall
        if self.cfg.max_minutes and elapsed >= ESTIMATE_AFTER_S:
            rate = (env_steps - self.start_steps) / elapsed
            total, limit = projected_end(self.cfg, env_steps, wall, rate)
            if total != self.bar.total:
                self.bar.total = max(total, env_steps)
                self.bar.set_description(f"{self.name} (to {limit})", refresh=False)

    def evaluated(self, row: dict) -> None:
        shown = {
            "success": f"{row['success_rate']:.0%}",
            "change": quality.shown(row.get("command_change_mean"), ".3f"),
            "ret": f"{row['train_return']:.0f}",
        }
        if "stage" in row:
            shown["stage"] = f"{row['stage']}/{len(self.cfg.curriculum)}"
        if self.cfg.stop_success:
            shown["stops at"] = f"{self.cfg.stop_success:.0%}"
        self.bar.set_postfix(shown)

    def close(self) -> None:
        self.bar.close()
