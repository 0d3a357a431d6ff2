"""Training runs: configuration errors, determinism, checkpoints, resume, Ctrl-C."""

import csv
import dataclasses
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from firmware_support import interruptible
from training_support import TINY

from sim import quality
from sim.contract import checkpoint as ckpt_io
from sim.contract.files import atomic_write
from sim.contract.spec import PolicySpec
from sim.rollout import collect
from sim.tasks import make_task
from train import run_files, run_state
from train.__main__ import main as train_cli
from train.config import make_config
from train.loop import EVAL_SEED, Trainer, resume

ROOT = Path(__file__).resolve().parent.parent


def tiny(tmp_path, **overrides):
    return make_config("hover", run_dir=str(tmp_path), **{**TINY, **overrides})


TINY_PRESET = make_config("hover")
OWN_RATE = TINY_PRESET.training_task().reward_action_rate
# Three training worlds inside the first 800 of a tiny run's 1,600 steps, ending in the
# task's own: a resumed run must find its stage again (it starts from the first).
CURRICULUM = (
    (0, {"latency_s": (0.0, 0.005), "reward_action_rate": 0.0}),
    (300, {"latency_s": (0.0, 0.01), "reward_action_rate": 0.5}),
    (600, {"latency_s": (0.0, 0.02), "reward_action_rate": OWN_RATE}),
)


def metrics_without_time(run_dir):
    with open(Path(run_dir) / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k != "wall_seconds"} for row in csv.DictReader(f)]


def test_run_writes_checkpoint_metrics_curve_tensorboard_and_latest(tmp_path):
    run = Trainer(tiny(tmp_path, name="a")).run()
    for name in ("checkpoint.pt", "replay-1600.pt", "metrics.csv", "learning_curve.png"):
        assert (run / name).stat().st_size > 0, name
    assert any((run / "tb").iterdir())
    assert (tmp_path / "latest").resolve() == run.resolve()
    assert (tmp_path / "latest-hover").resolve() == run.resolve()
    actor, spec, ckpt = ckpt_io.load_actor(tmp_path / "latest")
    assert ckpt["step"] == 1600 and spec.obs_dim == actor.obs_dim == make_task("hover").obs_dim
    assert spec.task == "hover" and spec == PolicySpec.of_task(make_task("hover"))
    assert ckpt["versions"]["torch"] == torch.__version__
    # The deployed actor carries the frozen normalisation statistics.
    assert not torch.equal(actor.obs_std, torch.ones_like(actor.obs_std))
    rows = metrics_without_time(run)
    assert [int(r["env_steps"]) for r in rows] == [800, 1600]


def test_each_evaluation_records_the_hover_quality_of_its_episodes(tmp_path):
    # Episodes short enough for an untrained policy to fly to the end: figures, not NaN.
    short = {"episode_seconds": 0.3, "success_window_s": 0.1}
    t = Trainer(tiny(tmp_path, task_overrides=short, eval_episodes=16))
    row = t.evaluate()
    r = collect(t.agent.policy.act_numpy, t.task, episodes=16, seed=EVAL_SEED, parallel=False)
    assert quality.flown(r).size > 0
    assert {k: row[k] for k in quality.METRICS} == quality.hover_quality(r, t.task.window_steps)
    assert math.isfinite(row["command_change_mean"]) and math.isfinite(row["tilt_p99_deg"])
    t.log_eval(0.0, None)  # and they reach metrics.csv
    (saved,) = run_files.read_metrics_csv(t.run_dir / run_files.METRICS)
    assert saved["gyro_rms_rad_s"] == pytest.approx(row["gyro_rms_rad_s"])


def test_a_run_of_another_preset_moves_latest_but_not_the_presets_link(tmp_path):
    hover = Trainer(tiny(tmp_path, name="h", total_env_steps=800)).run()
    cfg = make_config(
        "takeoff", run_dir=str(tmp_path), name="t", **{**TINY, "total_env_steps": 800}
    )
    takeoff = Trainer(cfg).run()
    assert (tmp_path / "latest").resolve() == takeoff.resolve()
    assert (tmp_path / "latest-hover").resolve() == hover.resolve()
    assert (tmp_path / "latest-takeoff").resolve() == takeoff.resolve()
    assert not list(tmp_path.glob(".latest.*"))


def test_same_seed_same_metrics_and_weights(tmp_path):
    a = Trainer(tiny(tmp_path, name="a", algo="td3")).run()
    b = Trainer(tiny(tmp_path, name="b", algo="td3")).run()
    c = Trainer(tiny(tmp_path, name="c", algo="td3", seed=2)).run()
    assert metrics_without_time(a) == metrics_without_time(b)
    wa, wb, wc = (ckpt_io.load(r)["actor"]["state_dict"] for r in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


@pytest.mark.parametrize(
    "extra",
    [
        {"policy_average": 0.0, "critic_privileged": False, "critic_layer_norm": False},
        {"policy_average": 0.01, "critic_layer_norm": True},
        {"policy_average": 0.0, "critic_privileged": True},
        {"curriculum": CURRICULUM},
    ],
    ids=["plain", "averaged", "privileged", "curriculum"],
)
def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path, extra):
    full = Trainer(tiny(tmp_path, name="full", **extra)).run()
    half = Trainer(tiny(tmp_path, name="half", total_env_steps=800, **extra)).run()
    resume(half, total_env_steps=1600).run()
    assert metrics_without_time(full) == metrics_without_time(half)
    f, h = ckpt_io.load(full), ckpt_io.load(half)
    for part in ("critics", "critic_targets", "actor_target", "actor_trained"):
        assert all(torch.equal(f[part][k], h[part][k]) for k in f[part]), part
    assert all(
        torch.equal(f["actor"]["state_dict"][k], h["actor"]["state_dict"][k])
        for k in f["actor"]["state_dict"]
    )
    # With averaging, the exported "actor" is the average, not the trained actor.
    averaged = extra.get("policy_average", TINY_PRESET.policy_average) > 0
    differs = any(
        not torch.equal(f["actor"]["state_dict"][k], f["actor_trained"][k])
        for k in f["actor_trained"]
    )
    assert differs == averaged


def test_atomic_write_gives_an_ordinary_files_mode(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "report.json", lambda tmp: tmp.write_text("{}"))
    finally:
        os.umask(old)
    assert (tmp_path / "report.json").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "checkpoint.pt"
    target.write_text("old")

    def failing(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, failing)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


@pytest.mark.parametrize(
    "args, field",
    [
        (["--preset", "loop"], "preset"),
        (["--actor-lr", "0"], "actor_lr"),
        (["--critic-lr=-1e-3"], "critic_lr"),
        (["--batch-size", "512", "--buffer-size", "100"], "batch_size"),
        (["--gamma", "1.5"], "gamma"),
        (["--policy-average", "1"], "policy_average"),
        (["--algo", "sac"], "algo"),
        (["--num-envs", "0"], "num_envs"),
        (["--actor-hidden", "64,x"], "actor-hidden"),
        (["--task-overrides", "init_position"], "task-overrides"),
        (["--train-task-overrides", "init_position=-1"], "init_position"),
        (["--train-task-overrides", "mass=2"], "mass"),
        # A curriculum: bad syntax, a first stage after 0, stages out of order or past the
        # budget, a field fixed for a run, a bad value, a last stage that is not the task.
        (["--curriculum", "latency_s=(0,0.01)"], "curriculum"),
        (["--curriculum", "5:latency_s=(0,0.01);9:latency_s=(0,0.02)"], "env step 0"),
        (["--curriculum", "0:latency_s=(0,0.01);0:latency_s=(0,0.02)"], "increase"),
        (["--curriculum", "0:latency_s=(0,0.01);9000000:latency_s=(0,0.02)"], "total_env_steps"),
        (["--curriculum", "0:physics_hz=500.0"], "'physics_hz' may not"),
        (["--curriculum", "0:latency_s=(0,0.0105);9:latency_s=(0,0.02)"], "whole milliseconds"),
        (["--curriculum", "0:latency_s=(0,0.1);9:latency_s=(0,0.02)"], "history covers"),
        (["--curriculum", "0:latency_s=(0,0.01);9:latency_s=(0,0.015)"], "task's own latency_s"),
        (["--curriculum", "0:latency_s=(0,0.01);9:reward_rate=0.1"], "leaves latency_s out"),
        (["--curriculum", "0:latency_s=(0,0.01);100%:latency_s=(0,0.02)"], "below 100%"),
        (["--curriculum", "0:latency_s=(0,0.01);half:latency_s=(0,0.02)"], "share of the run"),
        # The preset's stages end in its task's world: another latency range conflicts.
        (["--task-overrides", "latency_s=(0,0.01)"], "--curriculum none"),
    ],
)
def test_bad_configuration_is_refused_before_training(args, field, tmp_path, capsys):
    code = None
    try:
        code = train_cli([*args, "--run-dir", str(tmp_path)])
    except SystemExit as exc:  # argparse type errors exit with 2
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert field in err
    assert not any(tmp_path.iterdir())  # nothing started


def test_unknown_field_names_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown field 'learning_rate'; allowed: .*actor_lr"):
        make_config("hover", learning_rate=1e-3)


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "train",
        "--run-dir",
        str(tmp_path),
        "--name",
        "int",
        "--total-env-steps",
        "100000000",
        "--num-envs",
        "8",
        "--warmup-steps",
        "256",
        "--batch-size",
        "64",
        "--buffer-size",
        "20000",
        "--eval-every",
        "100000000",
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=interruptible,
    )
    deadline = time.time() + 600  # start-up on a busy machine
    bar_seen = False
    while time.time() < deadline and not bar_seen:  # wait until training has started
        time.sleep(1)
        bar_seen = (tmp_path / "int").exists() and (tmp_path / "int" / "tb").exists()
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 130, out
    assert "checkpoint saved" in out
    ckpt = ckpt_io.load(tmp_path / "int")
    assert ckpt["step"] > 0


def test_best_evaluation_is_kept_as_a_policy_checkpoint(tmp_path):
    trainer = Trainer(tiny(tmp_path, name="best", eval_every=400))
    run = trainer.run()
    best_row = max(trainer.metrics, key=lambda m: (m["success_rate"], -m["final_error"]))
    actor, spec, best = ckpt_io.load_actor(run / "best.pt")
    assert best["step"] == best_row["env_steps"]
    assert best["evaluation"] == pytest.approx(best_row, nan_ok=True)  # NaN: none flew to the end
    assert spec.to_dict() == ckpt_io.load(run)["policy_spec"]
    with pytest.raises(ckpt_io.CheckpointError, match="policy only.*--resume"):
        resume(run / "best.pt")
    # An evaluation that is not better leaves best.pt alone.
    before = (run / "best.pt").stat().st_mtime_ns
    worse = {**best_row, "success_rate": -1.0}
    trainer.metrics.append(worse)
    assert not trainer.is_best(worse)
    assert (run / "best.pt").stat().st_mtime_ns == before


def test_best_pt_comes_from_the_latest_curriculum_stage(tmp_path):
    trainer = Trainer(tiny(tmp_path, name="staged", curriculum=CURRICULUM))
    first = {"env_steps": 400, "stage": 1, "success_rate": 0.9, "final_error": 0.05}
    later = {"env_steps": 800, "stage": 3, "success_rate": 0.6, "final_error": 0.09}
    lower = {"env_steps": 1200, "stage": 3, "success_rate": 0.5, "final_error": 0.01}
    trainer.metrics = [first, later]
    assert trainer.is_best(later)  # a later stage beats a better success of an earlier one
    trainer.metrics.append(lower)
    assert not trainer.is_best(lower)  # within a stage, success decides
    trainer.metrics = []
    run = trainer.run()
    best = ckpt_io.load(run / "best.pt")["evaluation"]
    assert best["stage"] == len(CURRICULUM) and best["env_steps"] > CURRICULUM[-1][0]


def test_training_task_overrides_change_training_starts_only(tmp_path):
    from sim.tasks import make_task
    from train.config import _parse_mapping

    spread = _parse_mapping("start_offset=(0,0,-5),init_position=5.0")
    assert spread == {"start_offset": (0, 0, -5), "init_position": 5.0}
    trainer = Trainer(tiny(tmp_path, name="spread", task="takeoff", train_task_overrides=spread))
    heights = trainer.env.batch.state[:, 2]
    assert heights.max() > 1.0  # training envs start mid-air, on or above the ground
    # Evaluation and the exported spec see the takeoff task itself: every start on the ground.
    assert trainer.task == make_task("takeoff")
    assert PolicySpec.of_task(trainer.task).task_overrides == {}
    assert trainer.evaluate()["episode_length"] > 0


def test_stages_given_as_shares_of_the_run_become_env_steps_when_it_starts(tmp_path):
    # The preset's stages (50% and 87.5%) follow --total-env-steps ...
    short = make_config("hover", total_env_steps=1600)
    assert [start for start, _ in short.curriculum] == [0, 800, 1400]
    assert [start for start, _ in make_config("hover").curriculum] == [0, 2_000_000, 3_500_000]
    # ... and a resume with a longer budget keeps them where the run started them.
    saved = run_state.plain(dataclasses.asdict(short))
    longer = run_state.config_from(saved, {"total_env_steps": 3200}, tmp_path)
    assert [start for start, _ in longer.stage_tasks()] == [0, 800, 1400]


def test_a_curriculum_changes_the_training_world_at_its_stages(tmp_path):
    trainer = Trainer(tiny(tmp_path, name="stages", curriculum=CURRICULUM))
    seen = {}
    step = trainer.env.set_task

    def record(task):
        seen[trainer.env_steps] = (task.latency_s, task.reward_action_rate)
        step(task)

    trainer.env.set_task = record
    trainer.run()
    # Each stage from the first env step at or after its start (8 envs a step).
    assert seen == {304: ((0.0, 0.01), 0.5), 600: ((0.0, 0.02), OWN_RATE)}
    assert trainer.env.batch.task == trainer.cfg.training_task()  # the last stage: the task
    with open(tmp_path / "stages" / "metrics.csv") as f:
        assert [int(float(r["stage"])) for r in csv.DictReader(f)] == [3, 3]  # 800, 1,600
    # The stages survive config.json (lists there) and a resume.
    assert resume(tmp_path / "stages").cfg.curriculum == CURRICULUM
