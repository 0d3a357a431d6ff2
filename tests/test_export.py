"""python -m export end to end: the artifacts, actor.onnx, the report, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export import model as model_mod
from export import rollouts
from export.__main__ import ARTIFACTS, main
from export.fixtures import make_checkpoint
from export.onnx_export import ALLOWED_OPS
from sim import quality, robustness
from sim.tasks import make_task

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "export", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    ckpt = make_checkpoint(d / "run" / "checkpoint.pt", step=42)
    out = d / "artifacts"
    proc = run_cli(
        str(d / "run"), "--out", str(out), "--episodes", "100", "--robustness-episodes", "10"
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "export_report.json").read_text())
    return {"dir": d, "ckpt": ckpt, "out": out, "stdout": proc.stdout, "report": report}


def test_help():
    proc = run_cli("--help")
    assert proc.returncode == 0
    assert "--out" in proc.stdout and "runs/latest" in proc.stdout


def test_all_artifacts_written_and_nothing_else(exported):
    names = sorted(p.name for p in exported["out"].iterdir())
    assert names == sorted(ARTIFACTS)
    for name in ARTIFACTS:
        assert (exported["out"] / name).stat().st_size > 0


def test_printed_table(exported):
    out = exported["stdout"]
    for text in (
        "weight bytes",
        "scratch RAM bytes",
        "calibration set",
        "int12w-int16a (policy.h)",
        "policy.h vs float",
        "closed-loop success",
        "int_max_abs_error",
        "hover quality     float ",
        "nominal row int   ",
    ):
        assert text in out
    # each long phase is announced as it starts, in order, before the table
    phases = ["... rollout states", "... fine-tuning", "... closed loop", "... robustness suite"]
    at = [out.find(p) for p in phases]
    assert -1 not in at and at == sorted(at) and at[-1] < out.find("weight bytes"), at


def test_report_figures(exported):
    rep = exported["report"]
    assert rep["run"] == f"{exported['dir'] / 'run'} (preset unknown, step 42)"
    assert rep["step"] == 42 and len(rep["model_hash"]) == 64
    assert "int8" not in rep  # the integer header's section is "int"
    i8 = rep["int"]
    assert i8["scheme"] == "int12w-int16a"
    assert i8["calibration_states"] >= 10000 and i8["test_states"] >= 10000
    assert 0 < i8["weight_bytes"] < rep["float32"]["weight_bytes"]
    assert i8["scratch_bytes"] > 0
    err = i8["error_vs_float"]
    assert err["max"] <= 0.03 and err["mean"] <= 0.005
    ft = i8["finetune"]  # on by default; never worse than the trained weights on calibration
    assert ft["steps"] > 0 and ft["loss_after"] <= ft["loss_before"]
    for layer in i8["layers"]:
        assert layer["acc_max_seen"] <= layer["acc_bound_proved"] < 2**31
    cl = rep["closed_loop"]
    assert cl["episodes"] == 100
    for name in ("float", "int"):
        assert 0.0 <= cl[name]["success_rate"] <= 1.0
        assert set(quality.METRICS) <= set(cl[name])  # NaN where no episode flew to the end
    assert cl["gap_pp"] <= 2.0
    rob = rep["robustness"]  # the suite, flown by the float policy and the integer model
    assert rob["episodes_per_row"] == 10 and set(rob["rows"]) == {"float", "int"}
    assert [r["row"] for r in rob["rows"]["int"]] == [r.name for r in robustness.rows()]
    assert all(set(quality.METRICS) <= set(r) for r in rob["rows"]["float"] + rob["rows"]["int"])
    assert {f"nominal_{k}" for k in quality.METRICS} <= set(rob["score"]["int"])
    gaps = [
        round(abs(f["success_rate"] - i["success_rate"]) * 100, 9)
        for f, i in zip(rob["rows"]["float"], rob["rows"]["int"], strict=True)
    ]
    assert rob["max_row_gap_pp"] == max(gaps) <= 2.0
    assert rep["c_check"]["int_code_mismatches"] == 0
    assert rep["c_check"]["f32_max_abs_diff_vs_torch"] <= 1e-5
    assert set(rep["checks"]) >= {"int_max_abs_error", "int_mean_abs_error"}
    assert all(ok for _, _, ok in rep["checks"].values())


def test_no_finetune_quantises_the_trained_weights(tmp_path, exported):
    out = tmp_path / "out"
    proc = run_cli(
        str(exported["ckpt"]),
        *("--out", str(out), "--no-finetune", "--no-c-check", "--episodes", "1"),
        *("--calibration-states", "1", "--test-states", "1"),
    )
    assert proc.returncode == 0, proc.stderr
    assert "no fine-tuning" in proc.stdout
    report = json.loads((out / "export_report.json").read_text())
    assert report["int"]["finetune"] is None
    assert report["model_hash"] == exported["report"]["model_hash"]
    # Another quantisation of the same checkpoint: the same model, other data.
    first = json.loads((exported["out"] / "policy_bundle.json").read_text())
    again = json.loads((out / "policy_bundle.json").read_text())
    assert again["model_hash"] == first["model_hash"]
    assert again["schemes"]["int"]["data_hash"] != first["schemes"]["int"]["data_hash"]
    assert again["schemes"]["float32"]["data_hash"] == first["schemes"]["float32"]["data_hash"]
    assert report["data_hash"]["int"] == again["schemes"]["int"]["data_hash"]
    hashes = {
        line.split('"')[1]
        for line in (out / "policy.h").read_text().splitlines()
        if line.startswith("#define QP_DATA_HASH ")
    }
    assert hashes == {again["schemes"]["int"]["data_hash"]}


@pytest.mark.parametrize(
    "args,why",
    [
        (("--activations", "int8"), "int8 activations were retired: against int16"),
        (("--activations=int8",), "3x the max and 17x the mean error"),
        (("--ranges", "mse"), "--ranges chose the range calibration of the retired int8"),
    ],
)
def test_retired_int8_activations_are_refused_saying_why(tmp_path, args, why):
    proc = run_cli("runs/none", "--out", str(tmp_path / "out"), *args)
    assert proc.returncode == 2 and proc.stdout == ""
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("python -m export: error: ") and why in line
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_default_header_is_the_int16_activation_scheme(exported):
    text = (exported["out"] / "policy.h").read_text()
    assert '#define QP_SCHEME "int12w-int16a"\n' in text and "QP_ACT_BITS" not in text
    assert "#define QP_OUT_ONE 32768\n" in text and "uint32_t qp_lut2[512]" in text


def test_onnx_structure_and_metadata(exported):
    m = onnx.load(str(exported["out"] / "actor.onnx"))
    onnx.checker.check_model(m, full_check=True)
    assert not m.functions
    assert {n.op_type for n in m.graph.node} <= ALLOWED_OPS
    assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,), (out,) = m.graph.input, m.graph.output
    assert inp.name == "obs" and out.name == "action"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and dims[1] == make_task("hover").obs_dim
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim][1] == 4
    meta = {p.key: p.value for p in m.metadata_props}
    ckpt = torch.load(exported["ckpt"], weights_only=True)
    assert json.loads(meta["policy_spec"]) == json.loads(json.dumps(ckpt["policy_spec"]))
    assert meta["step"] == "42"
    assert meta["model_hash"] == exported["report"]["model_hash"]
    assert (
        f'#define QP_MODEL_HASH "{meta["model_hash"]}"'
        in (exported["out"] / "policy.h").read_text()
    )


def test_onnx_matches_torch_on_rollout_states(exported):
    policy = model_mod.load(exported["ckpt"])
    states = rollouts.policy_states(policy.act, policy.spec, 10000, seed=77)
    assert len(states) >= 10000
    sess = ort.InferenceSession(
        str(exported["out"] / "actor.onnx"), providers=["CPUExecutionProvider"]
    )
    got = sess.run(None, {"obs": states})[0]
    assert got.shape == (len(states), 4)
    assert np.abs(got - policy.act(states)).max() <= 1e-5
    one = sess.run(None, {"obs": states[:1]})[0]  # dynamic batch: 1 works too
    np.testing.assert_allclose(one, got[:1], atol=1e-6)


# Bad input: one line naming the file and the problem, exit 2, nothing in the out dir ---
def _fails(capsys, out: Path, *args: str) -> str:
    code = main([*args, "--out", str(out), "--episodes", "5"])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("export: error: "), err
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    return lines[0]


@pytest.fixture
def payload(exported):
    return torch.load(exported["ckpt"], weights_only=True)


def test_missing_checkpoint_cli(tmp_path):
    proc = run_cli(str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "nope" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_checkpoint_of_another_preset_is_refused_naming_the_run(capsys, tmp_path, exported):
    line = _fails(
        capsys, tmp_path / "out", str(exported["dir"] / "run"), "--expect-preset", "takeoff"
    )
    assert f"{exported['dir'] / 'run'}" in line and "(preset unknown, step 42)" in line
    assert "is not a takeoff run" in line


def test_truncated_checkpoint(capsys, tmp_path, exported):
    bad = tmp_path / "checkpoint.pt"
    data = exported["ckpt"].read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    line = _fails(capsys, tmp_path / "out", str(bad))
    assert str(bad) in line and "truncated or damaged checkpoint" in line


def test_foreign_file(capsys, tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"definitely not a checkpoint\n" * 10)
    assert str(bad) in _fails(capsys, tmp_path / "out", str(bad))


def test_incompatible_version(capsys, tmp_path, payload):
    payload["version"] = 99
    bad = tmp_path / "checkpoint.pt"
    torch.save(payload, bad)
    line = _fails(capsys, tmp_path / "out", str(bad))
    assert str(bad) in line and "version 99" in line


def test_incompatible_shapes(capsys, tmp_path, payload):
    payload["actor"]["config"]["hidden"] = [32, 64]
    bad = tmp_path / "checkpoint.pt"
    torch.save(payload, bad)
    line = _fails(capsys, tmp_path / "out", str(bad))
    assert str(bad) in line and "actor tensor net.0.weight has shape" in line


def test_nonfinite_weights(capsys, tmp_path, payload):
    payload["actor"]["state_dict"]["net.2.weight"][3, 5] = float("nan")
    bad = tmp_path / "checkpoint.pt"
    torch.save(payload, bad)
    line = _fails(capsys, tmp_path / "out", str(bad))
    assert str(bad) in line and "non-finite" in line and "net.2.weight" in line


def test_accumulator_overflow_is_refused_with_the_reason(capsys, tmp_path):
    ckpt = make_checkpoint(tmp_path / "wide" / "checkpoint.pt", hidden=(70000,))
    line = _fails(capsys, tmp_path / "out", str(ckpt))
    assert "layer 1 (70000 -> 4)" in line and "overflow" in line and "2^31" in line


def test_int16_activations_refuse_a_fan_in_of_600(capsys, tmp_path):
    """With int16 activations a hidden code can be 32767: fan-in 600 could overflow."""
    ckpt = make_checkpoint(tmp_path / "wide" / "checkpoint.pt", hidden=(600,))
    line = _fails(capsys, tmp_path / "out", str(ckpt))
    assert "layer 1 (600 -> 4)" in line and "127*32767*600" in line
    assert "int16 activations; fan-in must be <= 512" in line


def test_late_failure_leaves_out_dir_as_it_was(capsys, tmp_path, exported):
    """A failure after all the work (here: the C check's compiler is missing) writes nothing;
    files already in the out dir are left alone, and no temporary file remains."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    line = _fails(capsys, out, str(exported["ckpt"]), "--cc", "no-such-cc-quadpilot")
    assert "no-such-cc-quadpilot" in line
    assert (out / "keep.txt").read_text() == "old"


def test_observation_layout_other_than_the_tasks_is_refused_naming_both(capsys, tmp_path, payload):
    # an older layout of the same size: the actor still fits, the task no longer does
    past = payload["policy_spec"]["obs_layout"][-1][1]
    payload["policy_spec"]["obs_layout"][-1:] = [
        ["rotor_speeds", 4, "old"],
        ["past", past - 4, "old"],
    ]
    bad = tmp_path / "checkpoint.pt"
    torch.save(payload, bad)
    line = _fails(capsys, tmp_path / "out", str(bad))
    assert "rotor_speeds:4" in line and f"past_actions:{past}" in line
