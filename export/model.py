"""The float policy as export sees it: loaded, checked, hashed, and as plain numpy arrays.

Everything downstream (ONNX, the integer parameters, both C headers, the report) starts from
one ``FloatPolicy``, so they all describe the same weights and carry the same hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.contract.actor import Actor
from sim.contract.checkpoint import CheckpointError, load_actor
from sim.contract.spec import PolicySpec, SpecError

SUPPORTED_ACTIVATIONS = ("tanh", "relu")


class ExportError(ValueError):
    """Export cannot go on; the message names the file or the reason in one line."""


@dataclass(frozen=True)
class FloatPolicy:
    """The deployed policy: clip((obs - mean) / std) -> [W x + b, act] ... -> tanh."""

    actor: Actor
    spec: PolicySpec
    step: int
    source: Path
    mean: np.ndarray  # (obs_dim,) float32
    std: np.ndarray  # (obs_dim,) float32
    obs_clip: float
    weights: tuple[np.ndarray, ...]  # float32 (out, in) per layer
    biases: tuple[np.ndarray, ...]  # float32 (out,) per layer
    activation: str  # hidden layers; the last layer is always tanh
    model_hash: str
    preset: str | None = None  # the training preset of the run it came from, if known

    @property
    def origin(self) -> str:
        """Which run, preset and step: ``runs/latest`` resolved to the run it points at."""
        real = self.source.resolve() if self.source.exists() else self.source
        shown = str(self.source) if real == self.source.absolute() else f"{self.source} = {real}"
        return f"{shown} (preset {self.preset or 'unknown'}, step {self.step:,})"

    @property
    def obs_dim(self) -> int:
        return int(self.mean.size)

    @property
    def act_dim(self) -> int:
        return int(self.biases[-1].size)

    @property
    def widths(self) -> list[int]:
        return [self.obs_dim] + [int(b.size) for b in self.biases]

    @property
    def macs(self) -> int:
        return int(sum(w.size for w in self.weights))

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Float actions from torch itself (the reference every other form is checked with)."""
        return self.actor.act_numpy(obs)


def weights_hash(actor: Actor) -> str:
    """sha256 over every deployed tensor: for each state_dict entry in sorted-name order,
    the name (UTF-8), a NUL, the shape as little-endian int64s, and the float32
    little-endian values. The same digest goes into actor.onnx, policy.h and policy_f32.h."""
    h = hashlib.sha256()
    for name, tensor in sorted(actor.state_dict().items()):
        arr = tensor.detach().cpu().numpy().astype("<f4")
        h.update(name.encode() + b"\0")
        h.update(np.asarray(arr.shape, dtype="<i8").tobytes())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def from_actor(
    actor: Actor, spec: PolicySpec | dict, step: int = 0, source: Path | str = "<actor>"
):
    """Wrap an in-memory actor (checks that export can deploy it)."""
    source = Path(source)
    try:
        spec = PolicySpec.from_dict(spec, source)
    except SpecError as exc:
        raise ExportError(str(exc)) from None
    cfg = actor.config()
    if cfg["activation"] not in SUPPORTED_ACTIVATIONS:
        raise ExportError(f"{source}: activation {cfg['activation']!r} is not supported")
    if (cfg["obs_dim"], cfg["act_dim"]) != (spec.obs_dim, spec.act_dim):
        raise ExportError(
            f"{source}: the actor maps {cfg['obs_dim']} -> {cfg['act_dim']} but its policy "
            f"spec says {spec.obs_dim} -> {spec.act_dim}"
        )
    layers = actor.linear_layers()
    weights = tuple(m.weight.detach().numpy().astype(np.float32).copy() for m in layers)
    biases = tuple(m.bias.detach().numpy().astype(np.float32).copy() for m in layers)
    mean = actor.obs_mean.detach().numpy().astype(np.float32).copy()
    std = actor.obs_std.detach().numpy().astype(np.float32).copy()
    for name, arr in (
        [("obs_mean", mean), ("obs_std", std)]
        + [(f"layer {i} weight", w) for i, w in enumerate(weights)]
        + [(f"layer {i} bias", b) for i, b in enumerate(biases)]
    ):
        if not np.isfinite(arr).all():
            raise ExportError(f"{source}: {name} holds non-finite values")
    if not (std > 0).all():
        raise ExportError(
            f"{source}: obs_std has entries <= 0 (index "
            f"{int(np.flatnonzero(std <= 0)[0])}); cannot normalise"
        )
    if not cfg["obs_clip"] > 0:
        raise ExportError(f"{source}: obs_clip is {cfg['obs_clip']}; expected > 0")
    return FloatPolicy(
        actor=actor.eval(),
        spec=spec,
        step=int(step),
        source=source,
        mean=mean,
        std=std,
        obs_clip=float(cfg["obs_clip"]),
        weights=weights,
        biases=biases,
        activation=cfg["activation"],
        model_hash=weights_hash(actor),
    )


def load(path: str | Path) -> FloatPolicy:
    """Load a checkpoint (file, run dir or runs/latest); every fault is an ExportError."""
    try:
        actor, spec, ckpt = load_actor(path)
    except CheckpointError as exc:
        raise ExportError(str(exc)) from exc
    source = Path(path)
    step = ckpt.get("step", 0)
    if not isinstance(step, int):
        raise ExportError(f"{source}: step is {step!r}; expected an integer")
    config = ckpt.get("config")
    preset = config.get("preset") if isinstance(config, dict) else None
    return dataclasses.replace(from_actor(actor, spec, step, source), preset=preset)
