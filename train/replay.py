"""A preallocated ring buffer of transitions, sampled uniformly."""

from __future__ import annotations

import numpy as np
import torch


class ReplayBuffer:
    FIELDS = ("obs", "act", "rew", "next_obs", "terminal", "priv", "next_priv")

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, priv_dim: int = 0):
        """``priv_dim``: width of the privileged state stored for an asymmetric critic
        (0: none; the fields are then empty columns)."""
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.act = np.zeros((capacity, act_dim), dtype=np.float32)
        self.rew = np.zeros((capacity, 1), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.terminal = np.zeros((capacity, 1), dtype=np.float32)
        self.priv = np.zeros((capacity, priv_dim), dtype=np.float32)
        self.next_priv = np.zeros((capacity, priv_dim), dtype=np.float32)
        self.pos = 0
        self.size = 0

    def add(self, obs, act, rew, next_obs, terminal, priv=None, next_priv=None) -> None:
        """Append a batch of transitions (one row per environment)."""
        n = len(obs)
        idx = (self.pos + np.arange(n)) % self.capacity
        self.obs[idx] = obs
        self.act[idx] = act
        self.rew[idx, 0] = rew
        self.next_obs[idx] = next_obs
        self.terminal[idx, 0] = terminal
        if self.priv.shape[1]:
            self.priv[idx] = priv
            self.next_priv[idx] = next_priv
        self.pos = int((self.pos + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def sample(self, rng: np.random.Generator, batch: int) -> tuple[torch.Tensor, ...]:
        idx = rng.integers(0, self.size, size=batch)
        return tuple(torch.from_numpy(getattr(self, f)[idx]) for f in self.FIELDS)

    def state_dict(self) -> dict:
        """The filled part only, as tensors (a checkpoint-friendly form)."""
        return {
            "pos": self.pos,
            "size": self.size,
            "capacity": self.capacity,
            **{f: torch.from_numpy(getattr(self, f)[: self.size].copy()) for f in self.FIELDS},
        }

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(
                f"replay capacity {state['capacity']} differs from the "
                f"configured buffer_size={self.capacity}"
            )
        self.pos, self.size = int(state["pos"]), int(state["size"])
        for f in self.FIELDS:
            if f not in state and getattr(self, f).shape[1] == 0:
                continue  # saved before privileged fields existed, and none are used
            getattr(self, f)[: self.size] = state[f].numpy()
