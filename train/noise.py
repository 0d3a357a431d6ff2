"""Exploration noise in action units (actions live in [-1, 1])."""

from __future__ import annotations

import numpy as np


class GaussianNoise:
    def __init__(self, shape: tuple[int, ...], sigma: float):
        self.shape, self.sigma = shape, sigma

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.sigma * rng.standard_normal(self.shape)

    def reset(self, mask: np.ndarray) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class OUNoise:
    """Ornstein-Uhlenbeck: x += theta (0 - x) + sigma N(0, 1), one process per env.

    The Udacity project added OU noise (theta 0.15, sigma 0.2) to rotor speeds in rev/s
    (0..900), where it was negligible; here sigma is in action units, where it matters.
    """

    def __init__(self, shape: tuple[int, ...], sigma: float, theta: float):
        self.sigma, self.theta = sigma, theta
        self.x = np.zeros(shape)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        self.x += -self.theta * self.x + self.sigma * rng.standard_normal(self.x.shape)
        return self.x.copy()

    def reset(self, mask: np.ndarray) -> None:
        self.x[mask] = 0.0

    def state_dict(self) -> dict:
        return {"x": self.x.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.x = np.asarray(state["x"], dtype=np.float64).reshape(self.x.shape)
