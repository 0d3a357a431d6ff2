"""A run's files as one consistent unit: exact resume after a kill -9 inside any write or a
Ctrl-C inside an update or a sim step, no temporary files left, and damaged or mismatched
files refused in one line."""

from __future__ import annotations

import json
import math
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from training_support import TINY as SMALL

from sim.contract import checkpoint as ckpt_io
from train import run_files
from train.__main__ import main as train_cli
from train.config import make_config
from train.loop import Trainer, resume

ROOT = Path(__file__).resolve().parent.parent
# Evaluations and checkpoints every 400 steps: more writes to be killed in.
TINY = {**SMALL, "eval_every": 400, "checkpoint_every": 400}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run."""
    d = tmp_path_factory.mktemp("reference")
    return Trainer(make_config("hover", run_dir=str(d), name="ref", **TINY)).run()


def interrupted(tmp_path, mode, what, nth):
    cfg = json.dumps({"preset": "hover", **TINY})
    run = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "interrupted_run.py"),
            str(run),
            cfg,
            mode,
            what,
            str(nth),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return run, proc


@pytest.mark.parametrize(
    "prefix, nth",
    [
        ("replay-", 1),  # before the first checkpoint: started over from config.json
        ("replay-", 2),  # inside the replay write: checkpoint.pt still names the previous one
        ("checkpoint.pt", 2),  # between the new replay file and the checkpoint naming it
        ("best.pt", 2),
    ],
)
def test_kill_during_a_write_resumes_bit_identical(tmp_path, reference, prefix, nth):
    run, proc = interrupted(tmp_path, "kill-during", prefix, nth)
    assert proc.returncode == -9, proc.stderr
    assert list(run.glob(".*.tmp")), "the kill should have left a half-written file"
    resume(run).run()
    assert run_files.differences(run / "checkpoint.pt", reference / "checkpoint.pt") == []
    assert run_files.differences(run / "best.pt", reference / "best.pt") == []
    leftovers = sorted(p.name for p in run.iterdir() if p.name != "tb")
    assert leftovers == sorted(
        ["config.json", "checkpoint.pt", "best.pt", "replay-1600.pt", "metrics.csv"]
        + ["learning_curve.png"]
    )
    assert _metrics(run) == _metrics(reference)


@pytest.mark.parametrize("function, nth", [("update", 40), ("collect_step", 77)])
def test_ctrl_c_inside_a_step_saves_a_resumable_state(tmp_path, reference, function, nth):
    run, proc = interrupted(tmp_path, "sigint-in", function, nth)
    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert "checkpoint saved" in proc.stdout and "Traceback" not in proc.stderr
    saved = ckpt_io.load(run)  # the step it was in finished, and nothing after it began
    assert (saved["updates"] if function == "update" else saved["step"] // 8) == nth
    assert not list(run.glob(".*.tmp"))
    resume(run).run()
    assert run_files.differences(run / "checkpoint.pt", reference / "checkpoint.pt") == []
    assert _metrics(run) == _metrics(reference)


def _metrics(run: Path) -> list[str]:
    lines = (run / "metrics.csv").read_text().splitlines()
    wall = lines[0].split(",").index("wall_seconds")
    return [",".join(x for i, x in enumerate(line.split(",")) if i != wall) for line in lines]


# Damaged, foreign and mismatched files ---------------------------------------------------
class Gadget:  # anything torch would need to run code to rebuild
    pass


def _middle_of_largest_member(path: Path) -> int:
    """The file offset of the middle byte of the archive's largest member's data (its
    local header's name and extra field skipped: torch pads the extra field, unchecked)."""
    with zipfile.ZipFile(path) as z:
        info = max(z.infolist(), key=lambda m: m.compress_size)
    header = path.read_bytes()[info.header_offset : info.header_offset + 30]
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len + info.compress_size // 2


def _corrupt(kind: str, good: Path, target: Path) -> None:
    data = good.read_bytes()
    ckpt = ckpt_io.load(good)
    if kind == "truncated":
        target.write_bytes(data[: len(data) // 2])
    elif kind == "random bytes":
        target.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "text":
        target.write_text("step: 1000\nactor: mine\n")
    elif kind == "empty":
        target.write_bytes(b"")
    elif kind == "flipped byte":
        i = _middle_of_largest_member(good)  # inside data its checksum covers
        target.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :])
    elif kind == "foreign":
        torch.save({"weights": torch.zeros(3)}, target)
    elif kind == "code inside":
        torch.save({**ckpt, "extra": Gadget()}, target, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    elif kind == "other version":
        torch.save({**ckpt, "version": 99}, target)
    elif kind == "wrong shapes":
        ckpt["actor"]["state_dict"]["net.0.weight"] = torch.zeros(16, 5)
        torch.save(ckpt, target)
    elif kind == "non-finite":
        ckpt["actor"]["state_dict"]["net.0.weight"][0, 0] = float("nan")
        torch.save(ckpt, target)


BAD = {
    "truncated": "truncated or damaged checkpoint",
    "random bytes": "not a checkpoint",
    "text": "not a checkpoint",
    "empty": "empty file",
    "flipped byte": "damaged checkpoint",
    "foreign": "not a quadpilot checkpoint",
    "code inside": "refused: this checkpoint holds objects other than tensors",
    "other version": "checkpoint version 99; this quadpilot reads version",
    "wrong shapes": r"actor tensor net.0.weight has shape \(16, 5\); this network's is",
    "non-finite": "actor tensor net.0.weight holds non-finite values",
}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("small")
    cfg = make_config("hover", run_dir=str(d), name="a", **{**TINY, "total_env_steps": 800})
    return Trainer(cfg).run()


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_checkpoint_gets_one_line_in_the_project_words(kind, small_run, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    _corrupt(kind, small_run / "checkpoint.pt", bad)
    assert train_cli(["evaluate", str(bad), "--episodes", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {bad}: ")
    import re

    assert re.search(BAD[kind], err), err
    for library_words in ("weights_only", "Traceback", "KeyError", "pickle", "torch.load"):
        assert library_words not in err


def test_a_replay_file_of_another_save_is_refused_naming_both(small_run, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for f in small_run.iterdir():
        if f.is_file():
            (run / f.name).write_bytes(f.read_bytes())
    replay = torch.load(run / "replay-800.pt", weights_only=True)
    torch.save({**replay, "step": 400}, run / "replay-800.pt")
    assert train_cli(["--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "replay-800.pt holds the transitions of step 400 but checkpoint.pt is at step 800" in err
    (run / "replay-800.pt").unlink()
    assert train_cli(["--resume", str(run)]) == 2
    assert "names the replay buffer replay-800.pt, which is missing" in capsys.readouterr().err


def test_resume_cleans_what_a_killed_process_left(small_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for f in small_run.iterdir():
        if f.is_file():
            (run / f.name).write_bytes(f.read_bytes())
    left = [run / ".checkpoint.pt.abc123.tmp", run / ".learning_curve.png.x1.tmp"]
    for p in left:
        p.write_bytes(b"half")
    (run / "replay-1200.pt").write_bytes(b"an unfinished save's replay")
    os.symlink(run.name, tmp_path / ".latest.999999999")  # no such process
    removed = run_files.clean_stale(run)
    assert sorted(p.name for p in removed) == sorted(
        [".checkpoint.pt.abc123.tmp", ".learning_curve.png.x1.tmp", "replay-1200.pt"]
    )
    assert (run / "replay-800.pt").exists()
    assert not (tmp_path / ".latest.999999999").is_symlink()


def test_differences_names_the_entry_that_differs(small_run, tmp_path):
    ckpt = ckpt_io.load(small_run)
    assert run_files.differences(small_run / "checkpoint.pt", small_run / "checkpoint.pt") == []
    ckpt["critics"][next(iter(ckpt["critics"]))].view(-1)[0] += 1e-7
    ckpt["wall_seconds"] += 5.0  # when it ran is not what it computed
    torch.save(ckpt, tmp_path / "other.pt")
    diff = run_files.differences(small_run / "checkpoint.pt", tmp_path / "other.pt")
    assert diff == [f"/critics/{next(iter(ckpt['critics']))}"]


def test_a_run_killed_before_saving_anything_says_so_and_is_cleaned(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".config.json.k2j4.tmp").write_text('{"se')  # killed inside its first write
    assert train_cli(["--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "stopped before it saved anything (not even config.json)" in err
    assert "start it again with the command that started it" in err
    assert not list(run.iterdir())


def test_metrics_of_a_run_written_before_a_figure_existed_read_as_nan(tmp_path):
    old = tmp_path / "metrics.csv"  # a run from before evaluations kept hover quality
    old.write_text("env_steps,success_rate\n800,0.5\n")
    rows = [{**run_files.read_metrics_csv(old)[0], "command_change_mean": 0.02}]
    run_files.write_metrics_csv(old, rows)  # a resumed run appends rows with the figure
    (row,) = run_files.read_metrics_csv(old)
    assert row["success_rate"] == 0.5 and row["command_change_mean"] == 0.02
    assert math.isnan(row["gyro_rms_rad_s"])
