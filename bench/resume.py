"""Interrupt training at random moments and check that resuming ends exactly where an
uninterrupted run ends.

    .venv/bin/python -m bench resume [--trials 20] [--seed 0] [--no-write]

Two uninterrupted reference runs of the default preset (a short budget, frequent
checkpoints and evaluations, so that writes are frequent), one of them with a curriculum
whose stages change inside the budget; then TRIALS runs alternating between the two
commands, each stopped once by Ctrl-C (SIGINT) or kill -9 at a random moment, a third of
them while a file is being written (a temporary file is present in the run directory),
then resumed with ``python -m train --resume`` to the end. Every trial must end with a
checkpoint and a best policy bit-identical to its reference (train.run_files.differences)
and no temporary files. Writes the "resume" section of docs/benchmarks.md; exits 1 on any
mismatch.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import machine, write_section

ROOT = Path(__file__).resolve().parent.parent
ARGS = [
    "--preset", "hover", "--seed", "7", "--total-env-steps", "96000",
    "--checkpoint-every", "6400", "--eval-every", "6400", "--eval-episodes", "20",
    "--buffer-size", "100000",
]  # fmt: skip
# The same run with a curriculum of its own (the preset's stages at 50% and 87.5% of the
# budget are in the plain case): three training worlds, the stage changes inside the
# budget, so interruptions land before, between and after them; the last is the
# preset's training task (command-change penalty 5).
CURRICULUM = [
    "--curriculum",
    "0:latency_s=(0,0.005),reward_action_rate=0.0;32000:latency_s=(0,0.01),"
    "reward_action_rate=0.5;64000:latency_s=(0,0.02),reward_action_rate=5.0",
]
CASES = {"plain": ARGS, "curriculum": ARGS + CURRICULUM}
MODES = ("Ctrl-C", "kill -9", "kill -9 during a write")


def _default_sigint() -> None:
    # As at a terminal: a bench started in the background (nohup, &) ignores SIGINT, and
    # its children would inherit that.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def train(run_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "train", *extra],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=_default_sigint,
    )


def interrupt(proc: subprocess.Popen, run: Path, mode: str, delay: float) -> str:
    """Stop ``proc`` after ``delay`` s as ``mode`` says; what was happening then."""
    time.sleep(delay)
    if mode == "kill -9 during a write":
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if any(run.glob(".*.tmp")):
                proc.send_signal(signal.SIGKILL)
                return "kill -9 while a file was being written"
            time.sleep(0.0005)
        return "no write seen before the run ended"
    if proc.poll() is not None:
        return "the run had ended"
    writing = any(run.glob(".*.tmp"))
    proc.send_signal(signal.SIGINT if mode == "Ctrl-C" else signal.SIGKILL)
    return f"{mode}{' (during a write)' if writing else ''}"


def trial(scratch: Path, case: str, i: int, mode: str, delay: float) -> dict:
    from train import run_files

    args, reference = CASES[case], scratch / f"ref-{case}"
    run = scratch / f"t{i}"
    proc = train(run, *args, "--run-dir", str(scratch), "--name", run.name)
    what = interrupt(proc, run, mode, delay)
    code = proc.wait(timeout=600)
    stopped_at = _step(run)
    resumed = train(run, "--resume", str(run)).wait(timeout=900)
    if resumed == 2 and not (run / "config.json").exists():
        # Killed inside its very first write: --resume says to run the command again.
        what += "; nothing saved, so the command was run again"
        resumed = train(run, *args, "--run-dir", str(scratch), "--name", run.name).wait(900)
    left = sorted(p.name for p in run.glob(".*.tmp"))
    diff = (
        run_files.differences(run / "checkpoint.pt", reference / "checkpoint.pt")
        + run_files.differences(run / "best.pt", reference / "best.pt")
        if resumed == 0
        else [f"resume exited {resumed}"]
    )
    shutil.rmtree(run, ignore_errors=True)
    return {
        "trial": i,
        "case": case,
        "mode": mode,
        "delay": delay,
        "what": what,
        "exit": code,
        "saved_step": stopped_at,
        "differences": diff,
        "temp_left": left,
    }


def _step(run: Path) -> str:
    from sim.contract import checkpoint as ckpt_io

    try:
        return f"{ckpt_io.load(run)['step']:,}"
    except ckpt_io.CheckpointError:
        return "none yet"


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench resume")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="qp-resume-") as tmp:
        scratch = Path(tmp)
        ref_seconds = {}
        for case, args_ in CASES.items():
            t0 = time.perf_counter()
            code = train(scratch, *args_, "--run-dir", tmp, "--name", f"ref-{case}").wait(900)
            if code != 0:
                sys.exit(f"bench resume: the {case} reference run exited {code}")
            ref_seconds[case] = time.perf_counter() - t0
        rows = []
        for i in range(args.trials):
            case = tuple(CASES)[i % len(CASES)]
            mode = MODES[(i // len(CASES)) % len(MODES)]
            delay = float(rng.uniform(3.0, max(4.0, 0.9 * ref_seconds[case])))
            rows.append(trial(scratch, case, i + 1, mode, delay))
            r = rows[-1]
            print(
                f"trial {i + 1:2d} ({case}): {r['what']} at {r['delay']:.1f} s (exit "
                f"{r['exit']}, checkpoint at step {r['saved_step']}) -> resumed: "
                f"{'identical' if not r['differences'] else r['differences'][:3]}, "
                f"{len(r['temp_left'])} temp files left",
                flush=True,
            )
    failed = [r for r in rows if r["differences"] or r["temp_left"]]
    lines = [
        "## Resume after an interruption",
        "",
        f"`python -m bench resume --trials {args.trials} --seed {args.seed}` on "
        f"{machine()}, {time.strftime('%Y-%m-%d')}, load average "
        f"{os.getloadavg()[0]:.1f} at the end. Two references, each uninterrupted: `python "
        f"-m train {' '.join(ARGS)}` ({ref_seconds['plain']:.0f} s), and the same with a "
        f'curriculum of three training worlds, `{CURRICULUM[0]} "{CURRICULUM[1]}"` '
        f"({ref_seconds['curriculum']:.0f} s). Trials alternate between the two; each runs "
        "its case's command, stops it once at a random moment, then runs `python -m train "
        "--resume` to the end and compares every tensor and number of checkpoint.pt and "
        "best.pt with its reference (wall-clock figures aside).",
        "",
        "| trial | case | interruption | after | checkpoint on disk at step | resumed run vs "
        "reference | temporary files left |",
        "|---:|---|---|---:|---:|---|---:|",
    ]
    for r in rows:
        verdict = "bit-identical" if not r["differences"] else ", ".join(r["differences"][:3])
        lines.append(
            f"| {r['trial']} | {r['case']} | {r['what']} | {r['delay']:.1f} s | "
            f"{r['saved_step']} | {verdict} | {len(r['temp_left'])} |"
        )
    lines += ["", f"{len(rows) - len(failed)} of {len(rows)} trials ended bit-identical "
              "with no temporary files left."]  # fmt: skip
    print(lines[-1])
    if not args.no_write:
        write_section("resume", "\n".join(lines))
    if failed:
        sys.exit(1)
