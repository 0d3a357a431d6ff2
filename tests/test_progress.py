"""The progress bar ends where the run will stop: at its step budget or at its time limit."""

from __future__ import annotations

import io

from train.config import make_config
from train.progress import Progress, projected_end


def test_step_budget_binds_without_a_time_limit():
    cfg = make_config("hover", total_env_steps=2_000_000, max_minutes=0)
    assert projected_end(cfg, 500_000, 60.0, 8_000.0) == (2_000_000, "2,000,000 steps")


def test_time_limit_binds_when_it_comes_first():
    cfg = make_config("hover-nominal", total_env_steps=100_000_000, max_minutes=10.0)
    # 8k steps/s with 540 s left: 4.32 M more steps, far below the 100 M budget.
    assert projected_end(cfg, 600_000, 60.0, 8_000.0) == (4_920_000, "10 min")
    # Fast enough to spend the step budget first: the budget binds.
    assert projected_end(cfg, 600_000, 60.0, 1e6)[0] == 100_000_000


def test_bar_of_a_time_limited_run_shows_the_time_limit_and_its_end():
    cfg = make_config(
        "hover-nominal", total_env_steps=100_000_000, max_minutes=10.0, stop_success=0.98
    )
    p = Progress(cfg, 0, 0.0, "run")
    p.bar.fp = io.StringIO()
    assert p.bar.total == 100_000_000  # no speed measured yet
    p.update(40_000, 5.0)  # 8k steps/s over 5 s
    assert p.bar.total == 40_000 + 8_000 * 595 and "(to 10 min)" in p.bar.desc
    p.evaluated({"success_rate": 0.5, "train_return": -12.0})
    assert "stops at=98%" in p.bar.postfix
    p.close()
