"""Checkpoints made on the spot, for the tests and the bench when no trained run exists.

A freshly initialised actor whose normalisation statistics come from sim rollouts of a
small random policy, so the observations it sees are those of real flights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sim.contract.actor import Actor
from sim.contract.checkpoint import save
from sim.contract.spec import PolicySpec


def make_checkpoint(
    path: str | Path,
    hidden=(64, 64),
    activation: str = "tanh",
    gain: float = 1.0,
    seed: int = 0,
    step: int = 0,
) -> Path:
    """Write a valid checkpoint for task hover; ``gain`` scales every weight and bias."""
    from sim.rollout import collect
    from sim.tasks import make_task

    task = make_task("hover")
    spec = PolicySpec.of_task(task)
    torch.manual_seed(seed)
    actor = Actor(spec.obs_dim, spec.act_dim, tuple(hidden), activation)
    rng = np.random.default_rng(seed)

    def wobble(obs):
        return rng.uniform(-0.2, 0.2, (len(obs), spec.act_dim)).astype(np.float32)

    obs = collect(wobble, task, episodes=100, seed=seed).obs.astype(np.float64)
    mean, var = obs.mean(axis=0), obs.var(axis=0)
    with torch.no_grad():  # the statistics training would freeze (std floored at 1e-3)
        actor.obs_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        actor.obs_std.copy_(torch.as_tensor(np.maximum(np.sqrt(var), 1e-3), dtype=torch.float32))
    with torch.no_grad():
        for layer in actor.linear_layers():
            layer.weight.mul_(gain)
            layer.bias.mul_(gain)
    path = Path(path)
    save(
        path,
        {
            "actor": {"config": actor.config(), "state_dict": actor.state_dict()},
            "obs_norm": {
                "mean": torch.from_numpy(mean),
                "var": torch.from_numpy(var),
                "count": float(len(obs)),
            },
            "policy_spec": spec.to_dict(),
            "config": {"made_by": "export.fixtures.make_checkpoint", "gain": gain},
            "step": step,
        },
    )
    return path
