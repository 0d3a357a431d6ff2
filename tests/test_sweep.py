"""python -m train sweep: the search space checked before Ray starts, and tiny sweeps on a
real local Ray (a failed trial reported while the others finish; Ctrl-C leaves every
trial resumable)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from toolchain import require_module
from training_support import TINY

from train import run_files
from train.sweep import main as sweep_main

ROOT = Path(__file__).resolve().parents[1]


def tiny_args(**changes) -> list[str]:
    cfg = {**TINY, **changes}
    out = []
    for k, v in cfg.items():
        if k == "curriculum":  # START:KEY=VALUE,...;... or the command line's "none"
            stages = (f"{at}:" + ",".join(f"{f}={x!r}" for f, x in c.items()) for at, c in v)
            out += ["--curriculum", ";".join(stages) or "none"]
            continue
        out += [
            f"--{k.replace('_', '-')}",
            ",".join(map(str, v)) if isinstance(v, tuple) else str(v),
        ]
    return out


@pytest.fixture
def no_ray(monkeypatch):
    """Ray made unimportable: anything that reaches Ray fails with the install hint."""
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "ray.tune", None)


@pytest.mark.parametrize(
    "args, says",
    [
        (["--grid", "lr=0.1,0.2"], "--grid lr: unknown field; allowed: activation, actor_hidden"),
        (["--grid", "seed=1,2"], "--grid seed: not sweepable (use --seeds)"),
        (["--grid", "actor_lr="], "--grid actor_lr=: no values"),
        (["--grid", "actor_lr=fast"], "--grid actor_lr='fast': not a valid value; allowed: float"),
        (["--grid", "batch_size=64,0"], "batch_size=0; allowed: an integer >= 1"),
        (["--grid", "algo=ddpg,ppo"], "algo='ppo'; allowed: ddpg, td3"),
        (
            ["--uniform", "actor_lr=0.01:0.001"],
            "--uniform actor_lr=0.01:0.001: need finite LOW < HIGH",
        ),
        (["--loguniform", "actor_lr=0:0.01"], "a log range needs LOW > 0"),
        (["--uniform", "gamma=0.9:1.5"], "gamma=1.5; allowed: a number in (0, 1)"),
        (["--uniform", "activation=0:1"], "a range needs a numeric field"),
        (["--uniform", "actor_lr=0.001"], "expected LOW:HIGH"),
        (["--seeds"], "--seeds: the search space is empty"),
        (["--samples", "0"], "--samples 0: allowed: an integer >= 1"),
        (["--grid", "num_envs=8", "--num-envs", "16"], "num_envs: both fixed and swept"),
    ],
)
def test_bad_search_space_is_refused_before_ray(no_ray, capsys, args, says):
    assert sweep_main(["--preset", "hover-nominal", *args]) == 2
    err = capsys.readouterr().err
    assert says in err, err
    assert "Ray Tune" not in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_missing_ray_is_one_line(no_ray, capsys, tmp_path):
    assert sweep_main(["--preset", "hover-nominal", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: train sweep needs Ray Tune: pip install -e '.[sweep]' (or run make sweep)"
    )
    assert not (tmp_path / "s").exists()


def _sweep(tmp_path: Path, *args: str, **popen) -> subprocess.Popen:
    require_module("ray", "pip install -e '.[sweep]'")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "train",
            "sweep",
            "--preset",
            "hover-nominal",
            "--run-dir",
            str(tmp_path / "runs"),
            "--out",
            str(tmp_path / "runs" / "sw"),
            *args,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def test_tiny_sweep_on_local_ray_reports_a_failed_trial_and_picks_the_best(tmp_path):
    sweep_dir = tmp_path / "runs" / "sw"
    sweep_dir.mkdir(parents=True)
    (sweep_dir / "s3").write_text("a file where trial s3 wants its run directory")
    p = _sweep(
        tmp_path,
        "--seeds",
        "1",
        "2",
        "3",
        "--pick",
        "best",
        "--robustness-episodes",
        "2",
        "--trials-at-once",
        "2",
        *tiny_args(),
    )
    out, _ = p.communicate(timeout=900)
    assert p.returncode == 1, out  # one trial failed
    assert "2 of 3 trials finished" in out, out
    md = (sweep_dir / "sweep.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in md.splitlines()[2:]}
    assert set(rows) == {"s1", "s2", "s3"}, md
    assert "failed" in rows["s3"], md
    for name in ("s1", "s2"):
        assert "| done |" in rows[name] and "1,600" in rows[name], md
        assert (sweep_dir / name / run_files.CHECKPOINT).is_file()
        assert len(run_files.read_metrics_csv(sweep_dir / name / run_files.METRICS)) == 2
    assert (sweep_dir / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    latest = (tmp_path / "runs" / "latest").resolve()
    assert latest in {(sweep_dir / "s1").resolve(), (sweep_dir / "s2").resolve()}
    assert (tmp_path / "runs" / "latest-hover-nominal").resolve() == latest
    assert f"picked {latest.name}" in out


def test_ctrl_c_stops_every_trial_and_leaves_each_resumable(tmp_path):
    sweep_dir = tmp_path / "runs" / "sw"
    # Long enough that both trials are still running when the signal comes.
    p = _sweep(tmp_path, "--seeds", "1", "2", *tiny_args(total_env_steps=400_000))
    seen = []
    deadline = time.monotonic() + 600
    for line in p.stdout:  # wait until both trials have evaluated once
        seen.append(line)
        if {"s1", "s2"} <= {ln.split(":")[0] for ln in seen if "env steps" in ln}:
            break
        assert time.monotonic() < deadline, "".join(seen)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=300)
    out = "".join(seen) + out
    assert p.returncode == 130, out
    assert "can be resumed with" in out
    md = (sweep_dir / "sweep.md").read_text()
    assert md.count("stopped (python -m train --resume") == 2, md
    for name in ("s1", "s2"):
        run = sweep_dir / name
        saved = run_files.load(run)[1]["step"] if (run / run_files.CHECKPOINT).exists() else 0
        until = saved + 1600
        r = subprocess.run(
            [sys.executable, "-m", "train", "--resume", str(run), "--total-env-steps", str(until)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert run_files.read_metrics_csv(run / run_files.METRICS)[-1]["env_steps"] == until
