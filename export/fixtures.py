"""Checkpoints made on the spot, for the tests and the bench when no trained run exists.

A freshly initialised actor whose normalisation statistics come from sim rollouts of a
small random policy, so the observations it sees are those of real flights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from train.checkpoint import save
from train.policy import Actor, RunningNorm


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
    from sim.tasks import make_task, policy_spec

    task = make_task("hover")
    spec = policy_spec(task)
    torch.manual_seed(seed)
    actor = Actor(spec["obs_dim"], spec["act_dim"], tuple(hidden), activation)
    rng = np.random.default_rng(seed)

    def wobble(obs):
        return rng.uniform(-0.2, 0.2, (len(obs), 4)).astype(np.float32)

    norm = RunningNorm(spec["obs_dim"])
    norm.update(collect(wobble, task, episodes=100, seed=seed).obs)
    norm.freeze_into(actor)
    with torch.no_grad():
        for layer in actor.linear_layers():
            layer.weight.mul_(gain)
            layer.bias.mul_(gain)
    path = Path(path)
    save(
        path,
        {
            "actor": {"config": actor.config(), "state_dict": actor.state_dict()},
            "obs_norm": {k: torch.as_tensor(v) for k, v in norm.state_dict().items()},
            "policy_spec": spec,
            "config": {"made_by": "export.fixtures.make_checkpoint", "gain": gain},
            "step": step,
        },
    )
    return path
