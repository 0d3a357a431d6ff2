"""Checkpoint files: written atomically, read with checks that name the file and the fault.

A checkpoint is a ``torch.save`` dict loadable with ``weights_only=True`` (tensors, plain
Python containers and numbers only), so loading a file never runs code from it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from train.policy import Actor

FORMAT = "quadpilot-checkpoint"
VERSION = 1
REQUIRED = ("format", "version", "actor", "obs_norm", "policy_spec", "config", "step")
POLICY_ONLY = "policy"  # "kind" of best.pt: enough to export or evaluate, not to resume


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, corrupt or incompatible."""


def resolve(path: str | os.PathLike) -> Path:
    """A checkpoint file from a file path, a run directory, or ``runs/latest``."""
    p = Path(path)
    if p.is_dir():
        p = p / "checkpoint.pt"
    if not p.exists():
        raise CheckpointError(f"{p}: no such checkpoint (train one with `make train`)")
    return p


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)``, then rename onto ``path``: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(path: Path, payload: dict) -> None:
    payload = {"format": FORMAT, "version": VERSION, **payload}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load(path: str | os.PathLike) -> dict:
    """Read and check a checkpoint; every fault raises CheckpointError naming the file."""
    p = resolve(path)
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise CheckpointError(
            f"{p}: not a readable checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{p}: not a quadpilot checkpoint (format field missing or wrong)")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(
            f"{p}: checkpoint version {ckpt.get('version')!r}; "
            f"this quadpilot reads version {VERSION}"
        )
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{p}: checkpoint lacks {', '.join(missing)}")
    return ckpt


def actor_from(ckpt: dict, source: str | os.PathLike = "<checkpoint>") -> Actor:
    """Rebuild the deployed actor (with frozen normalisation) from a loaded checkpoint."""
    cfg = ckpt["actor"].get("config")
    state = ckpt["actor"].get("state_dict")
    if not isinstance(cfg, dict) or not isinstance(state, dict):
        raise CheckpointError(f"{source}: actor entry lacks config or state_dict")
    try:
        actor = Actor(
            cfg["obs_dim"], cfg["act_dim"], tuple(cfg["hidden"]), cfg["activation"], cfg["obs_clip"]
        )
        actor.load_state_dict(state)
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: actor does not match its config ({exc})") from exc
    spec = ckpt["policy_spec"]
    if spec.get("obs_dim") != actor.obs_dim or spec.get("act_dim") != actor.act_dim:
        raise CheckpointError(
            f"{source}: policy spec dims ({spec.get('obs_dim')}, "
            f"{spec.get('act_dim')}) differ from the actor's "
            f"({actor.obs_dim}, {actor.act_dim})"
        )
    for name, tensor in actor.state_dict().items():
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{source}: actor tensor {name} holds non-finite values")
    return actor


def load_actor(path: str | os.PathLike) -> tuple[Actor, dict, dict]:
    """(actor, policy_spec, checkpoint) for export and the HIL bridge."""
    p = resolve(path)
    ckpt = load(p)
    actor = actor_from(ckpt, p)
    actor.eval()
    return actor, ckpt["policy_spec"], ckpt
