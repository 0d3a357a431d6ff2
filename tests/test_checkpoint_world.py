"""A checkpoint keeps the world it was trained in: editing a preset and its airframe after
training moves neither evaluation, nor export's calibration, nor the HIL's closed loop
(sim/contract/spec.py ``task_fields``, ``airframe_fields``). The same policy saved in the
old format (without them) does move: the check can fail."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sim.airframes
import sim.tasks
from export import rollouts
from export.fixtures import make_checkpoint
from firmware_bridge.hil import closed_loop_task
from sim.contract.checkpoint import load_actor, spec_of
from train.evaluate import fly_checkpoint


def _world(path):
    """What each stage flies the checkpoint in, and what it sees."""
    _, spec, _ = load_actor(path)
    r, task, _ = fly_checkpoint(path, episodes=4, seed=12345, parallel=False)
    hil = closed_loop_task(spec.task_config(), "nominal", 10.0)
    calib = rollouts.policy_states(lambda o: np.zeros((len(o), 4), np.float32), spec, 300, 1000)
    return {
        "evaluation": (task.body().mass, task.integral_limit, r.obs.copy()),
        "calibration": calib,
        "hil": (hil.body().mass, hil.integral_limit, hil.latency_s),
    }


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("world")
    new = make_checkpoint(d / "new.pt")
    ckpt = torch.load(new, weights_only=True)
    del ckpt["policy_spec"]["task_fields"], ckpt["policy_spec"]["airframe_fields"]
    old = d / "old.pt"
    torch.save(ckpt, old)
    return new, old


def _same(a, b) -> bool:
    if isinstance(a, tuple):
        return all(_same(x, y) for x, y in zip(a, b, strict=True))
    return np.array_equal(np.asarray(a), np.asarray(b))


def test_an_edited_preset_does_not_move_an_older_checkpoints_world(checkpoints, monkeypatch):
    new, old = checkpoints
    before = _world(new)
    assert all(_same(before[k], v) for k, v in _world(old).items())  # one world, so far
    heavier = sim.airframes.get_airframe("crazyflie").replace(mass=0.032)
    monkeypatch.setitem(sim.airframes.PRESETS, "crazyflie", lambda: heavier)
    edited = sim.tasks.PRESETS["hover"].replace(integral_limit=0.2, mass_scale=(0.8, 1.2))
    monkeypatch.setitem(sim.tasks.PRESETS, "hover", edited)
    after = _world(new)
    for stage in before:
        assert _same(after[stage], before[stage]), stage
    moved = _world(old)
    assert moved["hil"][:2] == (0.032, 0.2)  # the nominal row flies the nominal vehicle
    assert not _same(moved["evaluation"], before["evaluation"])
    assert not _same(moved["calibration"], before["calibration"])


def test_an_old_format_checkpoint_loads_with_a_note(checkpoints, capsys):
    _, old = checkpoints
    spec = spec_of(torch.load(old, weights_only=True), f"{old} (again)")
    assert spec.task_fields is None
    err = capsys.readouterr().err.strip()
    assert err.startswith("note: ") and str(old) in err and "today's 'hover' preset" in err
    assert "\n" not in err
