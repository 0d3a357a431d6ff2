"""A training run's state to and from checkpoint.pt and best.pt: what the loop saves,
and how a resumed run is put back bit for bit (train/run_files.py writes the files)."""

from __future__ import annotations

import dataclasses
import platform
from pathlib import Path

import numpy as np
import torch

from sim.contract import checkpoint as ckpt_io
from sim.contract.spec import PolicySpec
from train.config import TrainConfig

# Functions of a train.loop.Trainer ``t`` (not imported: the loop imports this module).


def policy_payload(t) -> dict:
    """What export and evaluation read: the deployed policy (the actor, or its average),
    its statistics, spec and config."""
    p = t.agent.policy
    return {
        "actor": {"config": p.config(), "state_dict": p.state_dict()},
        "obs_norm": t.norm.state_dict(),
        "policy_spec": PolicySpec.of_task(t.task).to_dict(),
        "config": plain(dataclasses.asdict(t.cfg)),
        "step": t.env_steps,
    }


def payload(t, wall: float) -> dict:
    a = t.agent
    return {
        **policy_payload(t),
        "actor_trained": a.actor.state_dict(),  # differs from "actor" if averaged
        "actor_target": a.actor_target.state_dict(),
        "critics": a.critics.state_dict(),
        "critic_targets": a.critic_targets.state_dict(),
        "actor_opt": a.actor_opt.state_dict(),
        "critic_opt": a.critic_opt.state_dict(),
        "updates": a.updates,
        "update_credit": t.update_credit,
        "wall_seconds": wall,
        "metrics": t.metrics,
        "recent_returns": t.recent_returns,
        "episode_return": torch.from_numpy(t.episode_return.copy()),
        "noise": t.noise.state_dict(),
        "env": env_state(t.env),
        "obs": torch.from_numpy(t.obs.copy()),
        "rng": {"numpy": t.rng.bit_generator.state, "torch": torch.get_rng_state()},
        "versions": {
            "python": platform.python_version(),
            "torch": str(torch.__version__),
            "numpy": np.__version__,
        },
    }


def restore(t, ckpt: dict, replay: dict, source: Path) -> None:
    """Puts a Trainer (built from the checkpoint's config) back where ``ckpt`` and its
    replay file left it."""
    a = t.agent
    policy = ckpt["actor"]["state_dict"]  # older runs saved no separate trained actor
    states = {"actor": policy, "actor_trained": ckpt.get("actor_trained", policy)}
    for module, key in (
        (a.actor, "actor_trained"),
        (a.policy, "actor"),
        (a.actor_target, "actor_target"),
        (a.critics, "critics"),
        (a.critic_targets, "critic_targets"),
    ):
        ckpt_io.load_state(module, states.get(key, ckpt.get(key)), source, key)
    a.actor_opt.load_state_dict(ckpt["actor_opt"])
    a.critic_opt.load_state_dict(ckpt["critic_opt"])
    a.updates = int(ckpt["updates"])
    t.norm.load_state_dict(ckpt["obs_norm"])
    t.env_steps = int(ckpt["step"])
    t.update_credit = float(ckpt["update_credit"])
    t.wall_before = float(ckpt["wall_seconds"])
    t.metrics = list(ckpt["metrics"])
    t.recent_returns = list(ckpt["recent_returns"])
    t.episode_return = ckpt["episode_return"].numpy().copy()
    t.noise.load_state_dict(ckpt["noise"])
    load_env_state(t.env, ckpt["env"])
    t.obs = ckpt["obs"].numpy().copy()
    t.priv = t.env.privileged() if t.cfg.critic_privileged else None
    t.rng.bit_generator.state = ckpt["rng"]["numpy"]
    torch.set_rng_state(ckpt["rng"]["torch"])
    t.buffer.load_state_dict(replay)


def config_from(saved: dict, overrides: dict, source: Path) -> TrainConfig:
    try:
        return TrainConfig(
            **{
                **saved,
                "actor_hidden": tuple(saved["actor_hidden"]),
                "critic_hidden": tuple(saved["critic_hidden"]),
                **overrides,
            }
        )
    except (TypeError, KeyError) as exc:
        raise ckpt_io.CheckpointError(
            f"{source}: config incompatible with this version ({exc})"
        ) from None


def plain(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def env_state(env) -> dict:
    """The vector env's sim arrays as tensors (uint64 noise streams as int64 bits)."""
    saved = env.batch.state_dict()
    return {
        k: torch.from_numpy(v.view(np.int64) if v.dtype == np.uint64 else v)
        if isinstance(v, np.ndarray)
        else v
        for k, v in saved.items()
    }


def load_env_state(env, s: dict) -> None:
    arrays = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in s.items()}
    arrays["rng"] = arrays["rng"].view(np.uint64)
    env.batch.load_state_dict(arrays)
