"""Observations and closed-loop results from flying policies in the simulator.

Calibration and test states are what a policy actually sees in flight (``sim.rollout``),
never random noise: the quantiser's ranges and the accuracy figures depend on it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from export.model import ExportError

Policy = Callable[[np.ndarray], np.ndarray]


def _collect(policy: Policy, spec: dict, episodes: int, seed: int):
    from sim.rollout import collect

    overrides = dict(spec.get("task_overrides") or {})
    try:
        return collect(policy, spec["task"], episodes=episodes, seed=seed, **overrides)
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(
            f"policy spec task {spec.get('task')!r} with overrides "
            f"{overrides} cannot be simulated: {exc}"
        ) from exc


def policy_states(
    policy: Policy, spec: dict, min_states: int, seed: int, episodes: int = 100
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


def closed_loop(policies: dict[str, Policy], spec: dict, episodes: int, seed: int) -> dict:
    """Success rate and mean final error of each policy on the same initial states."""
    out = {}
    for name, policy in policies.items():
        r = _collect(policy, spec, episodes, seed)
        out[name] = {
            "success_rate": r.success_rate,
            "mean_final_error_m": float(np.mean(r.final_error)),
            "mean_length": float(np.mean(r.lengths)),
            "states": int(len(r.obs)),
        }
    return out
