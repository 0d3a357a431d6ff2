"""The board-state module (export/kernel/qp_state.h) against the sim's own step: the
observation the C module builds from the estimates and sensors of recorded episodes
equals the sim's, element for element (float32 bit patterns), for every hover task with
random starts, noise, latency, clipping and resets mid-run."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from toolchain import require_tool

from export import header
from export.model import from_actor
from sim import observation
from sim.batch import QuadBatch
from sim.contract.actor import Actor
from sim.contract.spec import PolicySpec
from sim.tasks import make_task

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "tests" / "c" / "state_twin.c"

# Each hover task, and the deployable one pushed to its corners: latency up to 20 ms,
# noise x3, an integral limit small enough to clip, a longer history.
TASKS = {
    "hover": {},
    "hover 0-20 ms, noise x3, clipping integral": {
        "latency_s": (0.0, 0.02),
        "noise_scale": 3.0,
        "integral_limit": 0.004,
    },
    "hover, history 8": {"action_history": 8},
    "hover-nominal": None,
}


def task_of(name, overrides):
    if overrides is None:
        return make_task(name)
    return make_task("hover", **overrides)


def build(tmp_path, spec: PolicySpec, flags=()) -> str:
    """The twin driver compiled against a float32 data header of ``spec``'s layout."""
    cc = require_tool("gcc")
    torch.manual_seed(0)
    policy = from_actor(Actor(spec.obs_dim, spec.act_dim, (8,)), spec, 0, "twin")
    obs = np.zeros((8, spec.obs_dim), dtype=np.float32)
    header.write_header(tmp_path / "policy_f32.h", header.f32_header(policy, obs).text)
    exe = tmp_path / ("twin" + "".join(flags).replace("-", "_").replace("=", "_"))
    subprocess.run(
        [
            cc,
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-O2",
            *flags,
            "-DQP_HEADER=<policy_f32.h>",
            f"-I{tmp_path}",
            str(DRIVER),
            "-o",
            str(exe),
            "-lm",
        ],
        check=True,
    )
    return str(exe)


def record(task, envs=24, steps=260, seed=7):
    """Per environment: reset flags, the sim's observations and the actions taken.
    Actions go past [-1, 1] (clipping) and a third of the environments reset mid-run."""
    b = QuadBatch(task, envs, seed=seed)
    b.reset()
    rng = np.random.default_rng(seed)
    resets, obs, acts = [], [], []
    fresh = np.ones(envs, dtype=bool)
    for t in range(steps):
        a = rng.uniform(-1.3, 1.3, (envs, 4)).astype(np.float32)
        resets.append(fresh.copy())
        obs.append(b.obs.copy())
        acts.append(a)
        b.step(a.astype(np.float64))
        fresh[:] = False
        again = np.flatnonzero(b.terminated | ((t % 50 == 49) & (np.arange(envs) % 3 == 0)))
        if again.size:
            b.reset(again)
            fresh[again] = True
    return np.array(resets), np.array(obs), np.array(acts)


def run_twin(exe, spec, resets, obs, acts, extra=()):
    """The C module's observations for one environment's records."""
    wire = np.concatenate(
        [
            np.arange(d["offset"], d["offset"] + d["size"])
            for d in observation.describe(spec.obs_layout)
            if d["source"] != observation.BOARD
        ]
    )
    rec = np.dtype([("reset", "<i4"), ("in", "<f4", (len(wire),)), ("act", "<f4", (4,))])
    data = np.zeros(len(obs), dtype=rec)
    data["reset"], data["in"], data["act"] = resets, obs[:, wire], acts
    out = subprocess.run([exe, *extra], input=data.tobytes(), capture_output=True, check=True)
    res = np.frombuffer(out.stdout, dtype=[("rc", "<i4"), ("obs", "<f4", (spec.obs_dim,))])
    return res["rc"], res["obs"]


@pytest.mark.parametrize("name", list(TASKS))
def test_the_c_module_builds_the_sims_observation_bit_for_bit(tmp_path, name):
    task = task_of(name, TASKS[name])
    spec = PolicySpec.of_task(task)
    exe = build(tmp_path, spec)
    resets, obs, acts = record(task)
    steps = 0
    for e in range(obs.shape[1]):
        rc, c_obs = run_twin(exe, spec, resets[:, e], obs[:, e], acts[:, e])
        assert (rc == 0).all()
        differ = np.flatnonzero((c_obs.view(np.uint32) != obs[:, e].view(np.uint32)).any(axis=1))
        assert differ.size == 0, (
            f"env {e} step {differ[0]}: C {c_obs[differ[0]]} sim {obs[differ[0], e]}"
        )
        steps += len(rc)
    assert steps == obs.shape[0] * obs.shape[1]
    if task.observe_integral and task.integral_limit < 0.01:  # the clip was exercised
        o = observation.describe(spec.obs_layout)[4]["offset"]
        assert (np.abs(obs[:, :, o : o + 3]) == np.float32(task.integral_limit)).any()


def test_fused_multiply_add_cannot_change_the_integral(tmp_path):
    """Built with FMA allowed everywhere (on a CPU that has it), the integral still
    rounds as the sim's: the module keeps the product apart from the sum."""
    if " fma " not in open("/proc/cpuinfo").read().replace("\n", " "):
        pytest.skip("this CPU has no FMA instructions")  # a hardware feature, not a tool
    task = task_of(
        "hover 0-20 ms, noise x3, clipping integral",
        TASKS["hover 0-20 ms, noise x3, clipping integral"],
    )
    spec = PolicySpec.of_task(task)
    exe = build(tmp_path, spec, ("-mfma", "-ffp-contract=fast"))
    resets, obs, acts = record(task, envs=6)
    for e in range(obs.shape[1]):
        _, c_obs = run_twin(exe, spec, resets[:, e], obs[:, e], acts[:, e])
        assert (c_obs.view(np.uint32) == obs[:, e].view(np.uint32)).all()


def test_a_step_before_reset_or_with_a_nonfinite_input_keeps_the_state(tmp_path):
    task = make_task("hover")
    spec = PolicySpec.of_task(task)
    exe = build(tmp_path, spec)
    resets, obs, acts = record(task, envs=1, steps=6)
    rc, _ = run_twin(exe, spec, resets[:, 0], obs[:, 0], acts[:, 0], extra=("--fresh",))
    assert (rc == 3).all()  # QP_ERR_NOT_RESET, every time
    bad = obs[:, 0].copy()
    bad[2, 1] = np.nan  # step 2's position error
    rc, c_obs = run_twin(exe, spec, resets[:, 0], bad, acts[:, 0])
    assert rc.tolist() == [0, 0, 1, 0, 0, 0]  # QP_ERR_NONFINITE, then on as before
    # Step 2 was refused and nothing kept: step 3 sees step 1's integral plus its own
    # error (one update short of the sim's) and the history without a step 2 action.
    o_int = observation.describe(spec.obs_layout)[4]["offset"]
    o_past = o_int + 3
    np.testing.assert_array_equal(c_obs[3, o_past : o_past + 4], np.clip(acts[1, 0], -1, 1))
    assert not np.array_equal(c_obs[3, o_int : o_int + 3], obs[3, 0, o_int : o_int + 3])
