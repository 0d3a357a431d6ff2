"""A preallocated ring buffer of transitions, sampled uniformly, with n-step returns.

The vector env adds one row per environment per step, always in the same order, so the
next transition of the environment in row i is row i + stride (stride = the number of
environments), modulo the capacity. An n-step sample follows that chain from a uniformly
drawn row for up to n transitions, stopping at the end of an episode and at the newest
row written.
"""

from __future__ import annotations

import numpy as np
import torch


class ReplayBuffer:
    FIELDS = ("obs", "act", "rew", "next_obs", "terminal", "ended", "priv", "next_priv")

    def __init__(
        self, capacity: int, obs_dim: int, act_dim: int, priv_dim: int = 0, stride: int = 1
    ):
        """``priv_dim``: width of the privileged state stored for an asymmetric critic
        (0: none; the fields are then empty columns). ``stride``: rows per ``add``."""
        self.capacity = capacity
        self.stride = stride
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.act = np.zeros((capacity, act_dim), dtype=np.float32)
        self.rew = np.zeros((capacity, 1), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.terminal = np.zeros((capacity, 1), dtype=np.float32)  # a crash: no bootstrap
        self.ended = np.zeros((capacity, 1), dtype=bool)  # a crash or the time limit
        self.priv = np.zeros((capacity, priv_dim), dtype=np.float32)
        self.next_priv = np.zeros((capacity, priv_dim), dtype=np.float32)
        self.pos = 0
        self.size = 0

    def add(self, obs, act, rew, next_obs, terminal, priv=None, next_priv=None, ended=None):
        """Append a batch of transitions (one row per environment); ``ended``: the episode
        ended there (terminal or truncated; default: terminal)."""
        n = len(obs)
        idx = (self.pos + np.arange(n)) % self.capacity
        self.obs[idx] = obs
        self.act[idx] = act
        self.rew[idx, 0] = rew
        self.next_obs[idx] = next_obs
        self.terminal[idx, 0] = terminal
        self.ended[idx, 0] = terminal if ended is None else ended
        if self.priv.shape[1]:
            self.priv[idx] = priv
            self.next_priv[idx] = next_priv
        self.pos = int((self.pos + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def sample(
        self, rng: np.random.Generator, batch: int, gamma: float, n_step: int = 1
    ) -> tuple[torch.Tensor, ...]:
        """(obs, act, return, next_obs, discount, priv, next_priv): the discounted sum of
        up to ``n_step`` rewards, the observation to bootstrap from, and the factor of its
        value (gamma^k for k rewards summed; 0 after a crash)."""
        idx = rng.integers(0, self.size, size=batch)
        ret = self.rew[idx].copy()
        last = idx
        k = np.ones((batch, 1), dtype=np.float32)  # rewards summed so far
        if n_step > 1:
            newer = (self.pos - 1 - idx) % self.capacity  # rows written after idx
            going = ~self.ended[idx, 0]
            for step in range(1, n_step):
                nxt = (idx + step * self.stride) % self.capacity
                going = going & (step * self.stride <= newer)
                ret[going] += np.float32(gamma**step) * self.rew[nxt[going]]
                last = np.where(going, nxt, last)
                k[going] += 1
                going = going & ~self.ended[nxt, 0]
        discount = (np.float32(gamma) ** k) * (1.0 - self.terminal[last])
        fields = (
            self.obs[idx],
            self.act[idx],
            ret,
            self.next_obs[last],
            discount.astype(np.float32),
            self.priv[idx],
            self.next_priv[last],
        )
        return tuple(torch.from_numpy(f) for f in fields)

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
            if f == "ended" and f not in state:  # saved before n-step returns existed
                self.ended[: self.size] = state["terminal"].numpy() > 0
                continue
            getattr(self, f)[: self.size] = state[f].numpy()
