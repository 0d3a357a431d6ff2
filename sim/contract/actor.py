"""The deployed policy: observation normalisation, an MLP, and a tanh squashing output.

``Actor`` holds everything between a raw observation and an action in [-1, 1], with the
normalisation statistics as buffers so that they are frozen into ONNX and the C headers.
Training builds it, export converts it, evaluation and the HIL fly it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


class Actor(nn.Module):
    """obs -> clip((obs - mean) / std, -clip, clip) -> MLP -> tanh -> action in [-1, 1]."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: tuple[int, ...] = (64, 64),
        activation: str = "tanh",
        obs_clip: float = 5.0,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r}; allowed: {', '.join(ACTIVATIONS)}")
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.hidden, self.activation, self.obs_clip = tuple(hidden), activation, float(obs_clip)
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        layers: list[nn.Module] = []
        width = obs_dim
        for h in hidden:
            layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
            width = h
        layers += [nn.Linear(width, act_dim), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def normalise(self, obs: torch.Tensor) -> torch.Tensor:
        z = (obs - self.obs_mean) / self.obs_std
        return torch.clamp(z, -self.obs_clip, self.obs_clip)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalise(obs))

    def linear_layers(self) -> list[nn.Linear]:
        """The affine layers in order; each but the last is followed by ``activation``."""
        return [m for m in self.net if isinstance(m, nn.Linear)]

    def config(self) -> dict:
        return {
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "hidden": list(self.hidden),
            "activation": self.activation,
            "obs_clip": self.obs_clip,
        }

    @torch.no_grad()
    def act_numpy(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic actions for a (batch, obs_dim) or (obs_dim,) float array."""
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        return self(x).numpy()
