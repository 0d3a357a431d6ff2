"""sim/contract/spec.py: the policy spec every stage after training reads."""

from __future__ import annotations

import json

import pytest

from sim.contract.spec import PolicySpec, SpecError
from sim.tasks import PRESETS, make_task


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_a_spec_survives_its_dict_and_json(name):
    spec = PolicySpec.of_task(make_task(name))
    assert PolicySpec.from_dict(spec.to_dict()) == spec
    assert PolicySpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert spec.task_config() == make_task(name)
    assert spec.obs_dim == sum(size for _, size, _ in spec.obs_layout) == make_task(name).obs_dim


def test_overrides_are_kept_and_rebuild_the_same_task():
    task = make_task("hover", control_hz=50.0)
    spec = PolicySpec.of_task(task)
    assert spec.task_overrides == {"control_hz": 50.0} and spec.control_hz == 50.0
    assert PolicySpec.from_dict(spec.to_dict()).task_config() == task


def test_the_spec_is_frozen():
    spec = PolicySpec.of_task(make_task("hover"))
    with pytest.raises(AttributeError):
        spec.task = "takeoff"


def _spec(**changes) -> dict:
    d = PolicySpec.of_task(make_task("hover-nominal")).to_dict()
    d.update(changes)
    return d


@pytest.mark.parametrize(
    "bad, words",
    [
        ("not a mapping", "is a str, not a mapping"),
        ({k: v for k, v in _spec().items() if k != "control_hz"}, "lacks control_hz"),
        (_spec(colour="red"), "unknown fields colour"),
        (_spec(obs_dim="22"), "obs_dim is '22', not an integer"),
        (_spec(obs_dim=True), "obs_dim is True, not an integer"),
        (_spec(control_hz=None), "control_hz is None, not a number"),
        (_spec(control_hz=-1.0), "control_hz -1.0 is not positive"),
        (_spec(obs_dim=21), "obs_dim 21 is not the size of its layout"),
        (_spec(act_dim=3, obs_dim=22), "act_dim 3; quadpilot policies command 4 rotors"),
        (_spec(obs_layout=[["position_error", 0, "m"]]), "is not [name, positive size, meaning]"),
        (_spec(obs_layout="position_error:3"), "obs_layout is 'position_error:3', not a list"),
    ],
)
def test_a_malformed_spec_is_refused_naming_the_source_and_field(bad, words):
    with pytest.raises(SpecError) as err:
        PolicySpec.from_dict(bad, "runs/x/best.pt")
    msg = str(err.value)
    assert msg.startswith("runs/x/best.pt: ") and words in msg and "\n" not in msg


def _old(**changes) -> dict:
    """A spec dict as quadpilot saved it before specs kept their world."""
    d = _spec(**changes)
    del d["task_fields"], d["airframe_fields"]
    return d


def test_a_task_this_version_cannot_build_is_refused():
    spec = PolicySpec.from_dict(_old(task="loop-the-loop"))
    with pytest.raises(SpecError, match="'loop-the-loop'.*cannot be simulated"):
        spec.task_config()
    spec = PolicySpec.from_dict(_old(task_overrides={"wingspan": 2.0}))
    with pytest.raises(SpecError, match="wingspan"):
        spec.task_config()
    d = _spec()
    d["task_fields"] = {**d["task_fields"], "wingspan": 2.0}
    with pytest.raises(SpecError, match="task fields wingspan"):
        PolicySpec.from_dict(d).task_config()
    with pytest.raises(SpecError, match="task_fields name is 'hover-nominal', not 'takeoff'"):
        PolicySpec.from_dict(_spec(task="takeoff"), "x.pt")


def test_a_checkpoint_keeps_its_world_when_a_preset_and_its_airframe_change(monkeypatch):
    """A spec saved before hover and the crazyflie were edited: its task_config is the
    world it was trained in; an old-format spec of the same policy moves with the edit
    (so this test can fail), and says so on stderr."""
    import sim.airframes
    import sim.tasks

    task = make_task("hover")
    body, packed = task.body(), task.packed().tolist()
    new = PolicySpec.from_dict(json.loads(json.dumps(PolicySpec.of_task(task).to_dict())))
    old = PolicySpec.from_dict(_old_of(task), "runs/old/best.pt")
    heavier = sim.airframes.get_airframe("crazyflie").replace(mass=0.030)
    monkeypatch.setitem(sim.airframes.PRESETS, "crazyflie", lambda: heavier)
    edited = sim.tasks.PRESETS["hover"].replace(integral_limit=0.25, mass_scale=(0.8, 1.25))
    monkeypatch.setitem(sim.tasks.PRESETS, "hover", edited)
    kept = new.task_config()
    assert kept.replace(airframe_overrides={}) == task and kept.body() == body
    assert kept.airframe_overrides == {"mass": 0.027} and kept.packed().tolist() == packed
    moved = old.task_config()
    assert moved.integral_limit == 0.25 and moved.body().mass == 0.030


def _old_of(task) -> dict:
    d = PolicySpec.of_task(task).to_dict()
    del d["task_fields"], d["airframe_fields"]
    return d


def test_an_old_format_spec_loads_with_a_one_line_note(capsys):
    spec = PolicySpec.from_dict(_old(), "runs/before/best.pt")
    assert spec.task_fields is None and spec.task_config() == make_task("hover-nominal")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "runs/before/best.pt" in err
    assert "today's 'hover-nominal' preset" in err
