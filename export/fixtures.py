"""Models made on the spot, for the tests and the bench when no trained run exists.

``make_checkpoint``: a freshly initialised actor whose normalisation statistics come from
sim rollouts of a small random policy, so the observations it sees are those of real
flights. ``firmware_fixture``: the small model the firmware's unit tests build with
(firmware/test/policy_fixture.h) and its bundle (policy_fixture.json, which the tests
read its numbers from); ``python -m export.fixtures`` rewrites both, and a test checks
they are current.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sim.contract.actor import Actor
from sim.contract.checkpoint import save
from sim.contract.spec import PolicySpec


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
    from sim.tasks import make_task

    task = make_task("hover")
    spec = PolicySpec.of_task(task)
    torch.manual_seed(seed)
    actor = Actor(spec.obs_dim, spec.act_dim, tuple(hidden), activation)
    rng = np.random.default_rng(seed)

    def wobble(obs):
        return rng.uniform(-0.2, 0.2, (len(obs), spec.act_dim)).astype(np.float32)

    obs = collect(wobble, task, episodes=100, seed=seed).obs.astype(np.float64)
    mean, var = obs.mean(axis=0), obs.var(axis=0)
    with torch.no_grad():  # the statistics training would freeze (std floored at 1e-3)
        actor.obs_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        actor.obs_std.copy_(torch.as_tensor(np.maximum(np.sqrt(var), 1e-3), dtype=torch.float32))
    with torch.no_grad():
        for layer in actor.linear_layers():
            layer.weight.mul_(gain)
            layer.bias.mul_(gain)
    path = Path(path)
    save(
        path,
        {
            "actor": {"config": actor.config(), "state_dict": actor.state_dict()},
            "obs_norm": {
                "mean": torch.from_numpy(mean),
                "var": torch.from_numpy(var),
                "count": float(len(obs)),
            },
            "policy_spec": spec.to_dict(),
            "config": {"made_by": "export.fixtures.make_checkpoint", "gain": gain},
            "step": step,
        },
    )
    return path


def small_app(d: str | Path) -> Path:
    """A small untrained actor (16-16) exported quickly into ``d/artifacts`` with its
    Crazyflie app: what the flight build's tests need, in seconds. Returns the export
    directory."""
    from export import crazyflie
    from export.__main__ import main as export_main

    d = Path(d)
    ckpt = make_checkpoint(d / "run" / "checkpoint.pt", hidden=(16, 16), step=7)
    out = d / "artifacts"
    argv = [str(ckpt), "--out", str(out), "--test-states", "1000", "--episodes", "4"]
    argv += ["--no-finetune", "--robustness-episodes", "0", "--no-c-check"]
    if export_main(argv) != 0:
        raise RuntimeError(f"the small actor's export into {out} failed")
    crazyflie.write_app(out)
    return out


FIXTURE_HEADER = Path(__file__).resolve().parent.parent / "firmware" / "test" / "policy_fixture.h"
FIXTURE_BUNDLE = FIXTURE_HEADER.with_suffix(".json")
# The deployable layout with one step of history: 18 numbers on the wire (estimates and
# gyro), 7 kept by the board (integral, last command), so the firmware's tests run the
# board-state module too.
FIXTURE_TASK = {"action_history": 1}


def fixture_spec() -> PolicySpec:
    from sim.tasks import make_task

    return PolicySpec.of_task(make_task("hover", **FIXTURE_TASK))


def firmware_fixture_header() -> str:
    """policy.h of the firmware's test model (``firmware_fixture``)."""
    return firmware_fixture()[0]


def firmware_fixture() -> tuple[str, str]:
    """policy.h and its policy bundle (JSON text) of a deterministic tanh actor with one
    hidden layer of 8, calibrated on normal states (scale 2): an integer data header small
    enough for the firmware's unit tests, whose every answer the tests recompute with
    export/int_reference.py on the bundle's integer model."""
    from export import bundle, header
    from export.model import from_actor
    from export.quantize import quantize

    spec = fixture_spec()
    torch.manual_seed(0)
    actor = Actor(spec.obs_dim, 4, hidden=(8,))
    policy = from_actor(actor, spec, 0, "export/fixtures.py firmware_fixture_header")
    obs = np.random.default_rng(0).normal(0.0, 2.0, (2000, spec.obs_dim)).astype(np.float32)
    params = quantize(policy, obs)
    selftest = header.selftest_states(obs)
    text = header.int_header(policy, params, selftest).text
    b = bundle.build(policy, params, selftest, header.SELFTEST_TOLERANCE)
    return text, bundle.to_json(b)


if __name__ == "__main__":
    from export.header import write_file

    for path, text in zip((FIXTURE_HEADER, FIXTURE_BUNDLE), firmware_fixture(), strict=True):
        if not path.exists() or path.read_text() != text:
            write_file(path, text.encode())
            print(f"rewrote {path}")
