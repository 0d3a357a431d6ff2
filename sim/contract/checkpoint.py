"""Checkpoint files: written atomically, read with checks that name the file and the fault.

A checkpoint is a ``torch.save`` dict loadable with ``weights_only=True`` (tensors, plain
Python containers and numbers only), so loading a file never runs code from it.
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path

import torch

from sim.contract.actor import Actor
from sim.contract.files import atomic_write
from sim.contract.spec import PolicySpec, SpecError

FORMAT = "quadpilot-checkpoint"
VERSION = 1
REQUIRED = ("format", "version", "actor", "obs_norm", "policy_spec", "config", "step")
POLICY_ONLY = "policy"  # "kind" of best.pt: enough to export or evaluate, not to resume
ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive


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


def save(path: Path, payload: dict) -> None:
    payload = {"format": FORMAT, "version": VERSION, **payload}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def read(path: Path, what: str = "checkpoint") -> object:
    """``torch.load`` of a file this project wrote, every failure told in its own words
    (torch's messages advise unsafe loading, which is wrong for a damaged file)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    if not head:
        raise CheckpointError(f"{path}: empty file, not a {what}")
    if head != ZIP_MAGIC:
        raise CheckpointError(f"{path}: not a {what} (not the zip archive torch.save writes)")
    try:
        with zipfile.ZipFile(path) as z:
            damaged = z.testzip()  # checks every member's CRC
    except (zipfile.BadZipFile, EOFError, OSError):
        raise CheckpointError(f"{path}: truncated or damaged {what} (incomplete archive)") from None
    if damaged is not None:
        raise CheckpointError(f"{path}: damaged {what} ({damaged} fails its checksum)")
    try:
        with warnings.catch_warnings():  # torch's remarks on a foreign file's pickle
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path}: refused: this {what} holds objects other than tensors and plain data, "
            f"and loading those could run code"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any other failure is a file torch cannot parse
        raise CheckpointError(f"{path}: damaged {what} ({type(exc).__name__})") from None


def load(path: str | os.PathLike) -> dict:
    """Read and check a checkpoint; every fault raises CheckpointError naming the file."""
    p = resolve(path)
    ckpt = read(p)
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


def load_state(module: torch.nn.Module, state: object, source, what: str) -> None:
    """``module.load_state_dict(state)``, refusing in one line a state of other names or
    shapes, or with non-finite values."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{source}: {what} is not a state dict")
    own = module.state_dict()
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or extra:
        raise CheckpointError(
            f"{source}: {what} does not fit this network (missing {missing or 'none'}, "
            f"unexpected {extra or 'none'})"
        )
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor) or tensor.shape != own[name].shape:
            shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor)
            raise CheckpointError(
                f"{source}: {what} tensor {name} has shape {shape}; this network's is "
                f"{tuple(own[name].shape)}"
            )
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{source}: {what} tensor {name} holds non-finite values")
    module.load_state_dict(state)


def actor_from(ckpt: dict, source: str | os.PathLike = "<checkpoint>") -> Actor:
    """Rebuild the deployed actor (with frozen normalisation) from a loaded checkpoint."""
    cfg = ckpt["actor"].get("config") if isinstance(ckpt["actor"], dict) else None
    state = ckpt["actor"].get("state_dict") if isinstance(ckpt["actor"], dict) else None
    if not isinstance(cfg, dict) or not isinstance(state, dict):
        raise CheckpointError(f"{source}: actor entry lacks config or state_dict")
    try:
        actor = Actor(
            cfg["obs_dim"], cfg["act_dim"], tuple(cfg["hidden"]), cfg["activation"], cfg["obs_clip"]
        )
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: actor config unusable ({exc!r})") from None
    load_state(actor, state, source, "actor")
    spec = spec_of(ckpt, source)
    if spec.obs_dim != actor.obs_dim or spec.act_dim != actor.act_dim:
        raise CheckpointError(
            f"{source}: policy spec dims ({spec.obs_dim}, {spec.act_dim}) differ from the "
            f"actor's ({actor.obs_dim}, {actor.act_dim})"
        )
    return actor


def spec_of(ckpt: dict, source: str | os.PathLike = "<checkpoint>") -> PolicySpec:
    """The checkpoint's policy spec, refused in one line if malformed."""
    try:
        return PolicySpec.from_dict(ckpt["policy_spec"], source)
    except SpecError as exc:
        raise CheckpointError(str(exc)) from None


def load_actor(path: str | os.PathLike) -> tuple[Actor, PolicySpec, dict]:
    """(actor, policy spec, checkpoint) for evaluation, export and the HIL bridge."""
    p = resolve(path)
    ckpt = load(p)
    actor = actor_from(ckpt, p)
    actor.eval()
    return actor, spec_of(ckpt, p), ckpt
