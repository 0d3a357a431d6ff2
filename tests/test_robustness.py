"""The robustness suite: rows derived from the training ranges, one change per row, the
same starts for every policy, the CLI's table, JSON and plot, and layout refusals."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from export.fixtures import make_checkpoint
from sim import quality
from sim import robustness as R
from sim.batch import PRIVILEGED_DIM, QuadBatch
from sim.contract.spec import PolicySpec, SpecError
from sim.tasks import HOVER, make_task

ROOT = Path(__file__).resolve().parent.parent


def test_rows_follow_the_training_ranges_and_say_which_are_inside():
    by = {r.name: r for r in R.rows()}
    lo, hi = HOVER.mass_scale
    assert by[f"mass x{lo:g}"].inside and by[f"mass x{hi:g}"].inside
    beyond = round(1 + R.BEYOND * (hi - 1), 4)
    assert not by[f"mass x{beyond:g}"].inside
    assert by[f"mass x{beyond:g}"].world == {"mass_scale": (beyond, beyond)}
    assert [by[f"latency {ms:g} ms"].inside for ms in R.LATENCIES_MS] == [
        HOVER.latency_s[0] * 1000 <= ms <= HOVER.latency_s[1] * 1000 for ms in R.LATENCIES_MS
    ]
    assert by["nominal"].world == {} and len(by) == len(R.rows())  # names are unique
    # The all-ends row pins every range at its hard end.
    hard = by["combined worst case"].world
    assert hard["mass_scale"] == (hi, hi) and hard["thrust_scale"][0] == HOVER.thrust_scale[0]


def test_a_row_changes_only_its_own_parameter():
    task = make_task("hover")
    weak = HOVER.thrust_scale[0]
    row = next(r for r in R.rows() if r.name == f"thrust coefficient x{weak:g}")
    t = R.row_task(task, row)
    b = QuadBatch(t, 200, seed=0)
    b.reset()
    p, base = b.params, b.body.params_row()
    np.testing.assert_allclose(p[:, 4], weak * base[4])  # k_f pinned
    others = np.delete(np.arange(len(base)), 4)
    np.testing.assert_array_equal(p[:, others], np.broadcast_to(base[others], (200, len(others))))
    assert t.obs_layout == task.obs_layout and t.packed()[20:24].tolist() == [0, 0, 0, 0]


def test_thrust_to_weight_row_has_the_ratio_it_names():
    row = next(r for r in R.rows() if r.name.startswith("thrust-to-weight"))
    t = R.row_task(make_task("hover"), row)
    b = QuadBatch(t, 4, seed=0)
    b.reset()
    p = b.params[0]
    full = 4 * p[4] * b.body.rotor_speed_max**2
    assert full / (p[0] * b.body.gravity) == pytest.approx(R.THRUST_TO_WEIGHT, abs=1e-3)
    assert row.inside  # within the training ranges: the task must cover it


def test_suite_flies_every_row_from_the_same_starts_and_scores_it():
    task = make_task("hover")
    hover = task.body().hover_action()
    results = R.run(lambda o: np.full((len(o), 4), hover, np.float32), task, episodes=4)
    assert [r["row"] for r in results] == [r.name for r in R.rows()]
    for r in results:
        assert r["episodes"] == 4 and 0 <= r["success_rate"] <= 1
        assert r["final_error_median_m"] <= r["final_error_p95_m"]
        assert set(quality.METRICS) <= set(r)  # hover quality, NaN where all crashed
    # A constant command cannot hold a vehicle that starts tilted and moving.
    assert max(r["success_rate"] for r in results) <= 0.25
    s = R.score(results)
    assert s["nominal_success"] == results[0]["success_rate"]
    assert s["worst_inside_success"] == min(
        r["success_rate"] for r in results if r["inside_training_range"]
    )


def test_cli_writes_a_table_json_and_plot_for_several_checkpoints(tmp_path):
    a = make_checkpoint(tmp_path / "a.pt", seed=0)
    b = make_checkpoint(tmp_path / "b.pt", seed=1)
    out = tmp_path / "rep" / "rob"
    proc = subprocess.run(
        [sys.executable, "-m", "train", "robustness", str(a), str(b), "--episodes", "3"]
        + ["--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "combined worst case" in proc.stdout and "latency 10 ms" in proc.stdout
    data = json.loads(out.with_suffix(".json").read_text())
    assert set(data) == {str(a), str(b)}
    assert len(data[str(a)]["rows"]) == len(R.rows()) and "score" in data[str(b)]
    assert "change limit" in proc.stdout and set(quality.METRICS) <= set(data[str(a)]["rows"][0])
    assert "nominal_command_change_mean" in data[str(b)]["score"]
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["rob.json", "rob.png"]
    bad = subprocess.run(
        [sys.executable, "-m", "train", "robustness", str(a), "--episodes", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "episodes=0" in bad.stderr and "Traceback" not in bad.stderr


def test_a_policy_trained_on_another_layout_is_refused_naming_both():
    nominal = PolicySpec.of_task(make_task("hover-nominal")).to_dict()
    spec = PolicySpec.of_task(make_task("hover")).to_dict()
    # a nominal-layout policy that claims the deployable task's world
    spec["obs_layout"], spec["obs_dim"] = nominal["obs_layout"], nominal["obs_dim"]
    with pytest.raises(SpecError) as err:
        PolicySpec.from_dict(spec).task_config()
    msg = str(err.value)
    past = 4 * make_task("hover").action_history
    assert "rotor_speeds:4" in msg and f"past_actions:{past}" in msg


def test_privileged_state_is_the_truth_and_the_draws():
    b = QuadBatch(make_task("hover", randomise=False), 5, seed=0)
    b.reset()
    p = b.privileged()
    assert p.shape == (5, PRIVILEGED_DIM) and p.dtype == np.float32
    np.testing.assert_allclose(p[:, :3], b.state[:, :3] - b.target, atol=1e-6)
    np.testing.assert_allclose(p[:, 22:], 0.0, atol=1e-6)  # nominal draws: all zero
