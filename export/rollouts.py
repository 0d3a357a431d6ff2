"""Observations and closed-loop results from flying policies in the simulator.

Calibration and test states are what a policy actually sees in flight (``sim.rollout``),
never random noise: the quantiser's ranges and the accuracy figures depend on it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from export.model import ExportError
from sim import quality, robustness
from sim.contract.spec import PolicySpec, SpecError
from sim.rollout import collect
from sim.tasks import TaskConfig

Policy = Callable[[np.ndarray], np.ndarray]


def spec_task(spec: PolicySpec) -> TaskConfig:
    """The policy's own task; an ExportError if this sim cannot fly it (an unknown task,
    or an observation layout other than the one the policy was trained on)."""
    try:
        return spec.task_config()
    except SpecError as exc:
        raise ExportError(str(exc)) from None


def _collect(policy: Policy, spec: PolicySpec, episodes: int, seed: int):
    return collect(policy, spec_task(spec), episodes=episodes, seed=seed)


def policy_states(
    policy: Policy, spec: PolicySpec, min_states: int, seed: int, episodes: int = 100
) -> np.ndarray:
    """Every observation ``policy`` saw, over batches of ``episodes`` episodes with seeds
    seed, seed + 1, ... until at least ``min_states`` were collected."""
    chunks, total, k = [], 0, 0
    while total < min_states:
        obs = _collect(policy, spec, episodes, seed + k).obs
        chunks.append(obs)
        total += len(obs)
        k += 1
    return np.concatenate(chunks).astype(np.float32)


def closed_loop(policies: dict[str, Policy], spec: PolicySpec, episodes: int, seed: int) -> dict:
    """Success rate, mean final error and hover quality (sim/quality.py) of each policy
    on the same initial states."""
    task = spec_task(spec)
    out = {}
    for name, policy in policies.items():
        r = collect(policy, task, episodes=episodes, seed=seed)
        out[name] = {
            "success_rate": r.success_rate,
            "mean_final_error_m": float(np.mean(r.final_error)),
            "mean_length": float(np.mean(r.lengths)),
            "states": int(len(r.obs)),
            **quality.hover_quality(r, task.window_steps),
        }
    return out


def robustness_of(policies: dict[str, Policy], spec: PolicySpec, episodes: int) -> dict:
    """The robustness suite (sim.robustness) flown by each policy on the same episodes,
    with each row's success gap between the first two policies in percentage points."""
    task = spec_task(spec)
    rows = {name: robustness.run(policy, task, episodes) for name, policy in policies.items()}
    a, b = list(rows)[:2]
    gaps = [
        round(abs(x["success_rate"] - y["success_rate"]) * 100, 9)
        for x, y in zip(rows[a], rows[b], strict=True)
    ]
    return {
        "episodes_per_row": episodes,
        "seed": robustness.SEED,
        "rows": rows,
        "score": {name: robustness.score(r) for name, r in rows.items()},
        "max_row_gap_pp": max(gaps),
    }
