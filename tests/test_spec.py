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


def test_a_task_this_version_cannot_build_is_refused():
    spec = PolicySpec.from_dict(_spec(task="loop-the-loop"))
    with pytest.raises(SpecError, match="'loop-the-loop'.*cannot be simulated"):
        spec.task_config()
    spec = PolicySpec.from_dict(_spec(task_overrides={"wingspan": 2.0}))
    with pytest.raises(SpecError, match="wingspan"):
        spec.task_config()
