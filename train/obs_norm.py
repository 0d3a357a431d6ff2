"""Observation statistics gathered while training (frozen into the actor for export)."""

from __future__ import annotations

import numpy as np
import torch

from sim.contract.actor import Actor


class RunningNorm:
    """Running mean and variance of observations (parallel Welford/Chan update, float64)."""

    def __init__(self, dim: int, eps: float = 1e-4, min_std: float = 1e-3):
        self.mean = np.zeros(dim)
        self.var = np.ones(dim)
        self.count = eps
        self.min_std = min_std

    def update(self, batch: np.ndarray) -> None:
        batch = np.asarray(batch, dtype=np.float64).reshape(-1, self.mean.size)
        n = batch.shape[0]
        if n == 0:
            return
        b_mean, b_var = batch.mean(axis=0), batch.var(axis=0)
        delta = b_mean - self.mean
        total = self.count + n
        self.mean = self.mean + delta * n / total
        m2 = self.var * self.count + b_var * n + delta**2 * self.count * n / total
        self.var = m2 / total
        self.count = total

    @property
    def std(self) -> np.ndarray:
        return np.maximum(np.sqrt(self.var), self.min_std)

    def state_dict(self) -> dict:
        """float64 tensors and a float: exact, and loadable with weights_only=True."""
        return {
            "mean": torch.from_numpy(self.mean.copy()),
            "var": torch.from_numpy(self.var.copy()),
            "count": float(self.count),
        }

    def load_state_dict(self, state: dict) -> None:
        self.mean = torch.as_tensor(state["mean"]).double().numpy().copy()
        self.var = torch.as_tensor(state["var"]).double().numpy().copy()
        self.count = float(state["count"])

    def freeze_into(self, actor: Actor) -> None:
        """Copy the current statistics into the actor's buffers (what export deploys)."""
        with torch.no_grad():
            actor.obs_mean.copy_(torch.as_tensor(self.mean, dtype=torch.float32))
            actor.obs_std.copy_(torch.as_tensor(self.std, dtype=torch.float32))
