"""Ctrl-C at start-up and mid-work: exit 130, one line on stderr (no traceback), and no
temporary file left; the next run removes what a killed one left.

The SIGINT lands wherever the child happens to be (imports, set-up, rollouts); every
outcome must be the same, so nothing here depends on timing but the point of delivery."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from sim import tempfiles

ROOT = Path(__file__).resolve().parent.parent


def _interruptible() -> None:
    """A child started by a runner that ignores or blocks SIGINT gets its default back,
    so that Python installs its own handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def start(argv: list[str]) -> subprocess.Popen:
    """``python -m argv`` in the project, its output piped, SIGINT deliverable."""
    return subprocess.Popen(
        [sys.executable, "-m", *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_interruptible,
    )


@contextmanager
def running(argv: list[str]):
    """``start(argv)`` as a context: the child is killed if it is still running at the
    end, whatever the test asserted."""
    proc = start(argv)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def interrupt_after(argv: list[str], delay: float, wait_for: str | None = None):
    """Start ``python -m argv``, send SIGINT ``delay`` s after start (or after a line of
    stdout containing ``wait_for``), and return (status, stdout, stderr)."""
    with running(argv) as proc:
        if wait_for is not None:
            for line in proc.stdout:  # bounded by the wait below if it never comes
                if wait_for in line:
                    break
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def run_python(args: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``python ARGS`` to its end, the project importable from ``cwd``, SIGINT deliverable."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_interruptible,
    )


def assert_one_line_130(status: int, err: str) -> None:
    assert status == 130, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "no line said why it stopped"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from export.fixtures import make_checkpoint

    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "run" / "checkpoint.pt", step=3)


@pytest.mark.parametrize("delay", [0.3, 1.5])
def test_export_interrupted_at_start_up(checkpoint, tmp_path, delay):
    out = tmp_path / "artifacts"
    status, _, err = interrupt_after(["export", str(checkpoint), "--out", str(out)], delay)
    assert_one_line_130(status, err)
    assert not out.exists() or not list(out.iterdir())


def test_export_interrupted_while_building(checkpoint, tmp_path):
    out = tmp_path / "artifacts"
    status, _, err = interrupt_after(
        ["export", str(checkpoint), "--out", str(out)], 0.5, wait_for="exporting"
    )
    assert_one_line_130(status, err)
    assert err.strip().splitlines()[-1] == "export: interrupted"
    assert not out.exists() or not list(out.glob(".*.tmp"))


@pytest.mark.parametrize("delay", [0.3, 2.0])
def test_train_interrupted_at_start_up(tmp_path, delay):
    status, _, err = interrupt_after(
        ["train", "--preset", "hover-nominal", "--run-dir", str(tmp_path / "runs")], delay
    )
    assert_one_line_130(status, err)
    assert not list(tmp_path.rglob("*.tmp"))


def test_hil_interrupted_at_start_up(tmp_path):
    status, _, err = interrupt_after(
        ["firmware_bridge", "hil", "--emulator", "--reports", str(tmp_path / "r")], 0.3
    )
    assert_one_line_130(status, err)


def test_a_killed_writers_temporary_files_are_removed_and_no_others(tmp_path):
    left = [tmp_path / ".policy.h.k2j4x1.tmp", tmp_path / ".hil.json.a8f0.tmp"]
    others = [tmp_path / ".notes.txt.abcd.tmp", tmp_path / "policy.h", tmp_path / "x.tmp"]
    for p in left + others:
        p.write_text("x")
    removed = tempfiles.remove_stale(tmp_path, ["policy.h", "hil.json", "hil.png"])
    assert sorted(removed) == sorted(left)
    assert all(not p.exists() for p in left) and all(p.exists() for p in others)
    assert tempfiles.remove_stale(tmp_path / "missing", ["policy.h"]) == []


def test_export_removes_what_a_killed_export_left(checkpoint, tmp_path):
    out = tmp_path / "artifacts"
    out.mkdir()
    stale = out / ".policy.h.deadbeef.tmp"
    stale.write_text("half a header")
    status, _, err = interrupt_after(
        ["export", str(checkpoint), "--out", str(out)], 0.5, wait_for="exporting"
    )
    assert_one_line_130(status, err)
    assert not stale.exists()


def test_train_interrupted_mid_run(tmp_path):
    """SIGINT once the run's first metrics are on disk: the training loop itself."""
    runs = tmp_path / "runs"
    # One torch thread: the preset's two spin waiting for each other on a busy machine.
    args = ["train", "--preset", "hover-nominal", "--threads", "1", "--run-dir", str(runs)]
    with running(args) as proc:
        deadline = time.monotonic() + 600  # generous: a busy machine
        while not list(runs.glob("*/metrics.csv")) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.2)
        assert list(runs.glob("*/metrics.csv")), "no metrics.csv in 600 s"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)
    assert_one_line_130(proc.returncode, err)
    assert not list(tmp_path.rglob("*.tmp"))


def test_bench_interrupted_leaves_the_benchmarks_file_as_it_was(tmp_path):
    doc = ROOT / "docs" / "benchmarks.md"
    before = doc.read_bytes()
    status, _, err = interrupt_after(["bench", "sim_speed", "--seconds", "5"], 0.0, "==")
    assert_one_line_130(status, err)
    assert doc.read_bytes() == before
    assert not list(doc.parent.glob("*.tmp"))


def test_ctrl_c_swallowed_by_a_callback_still_stops(tmp_path):
    """A SIGINT that lands in a weakref callback or a ``__del__`` (as in the import
    machinery's module locks) is only "ignored" by Python; the command must stop anyway."""
    script = (
        "from train import sigint\n"
        "sigint.install('demo')\n"
        "class Dropped:\n"
        "    def __del__(self):\n"
        "        raise KeyboardInterrupt\n"
        "Dropped()\n"
        "print('ran on')\n"
    )
    proc = run_python(["-c", script])
    assert proc.returncode == 130, proc.stderr
    assert "ran on" not in proc.stdout
    assert proc.stderr.strip() == "demo: interrupted"


def test_ctrl_c_dropped_by_library_code_still_ends_the_command():
    """C code that runs Python and clears what it raised can drop the KeyboardInterrupt
    (a full run once trained to the end through a Ctrl-C sent during set-up): the
    command still ends with 130 and one line when it gets back to its own code."""
    script = (
        "import os, signal\n"
        "from train import sigint\n"
        "sigint.install('demo')\n"
        "def main():\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        signal.sigtimedwait([], 0.5)  # let the handler run in here\n"
        "    except BaseException:\n"
        "        pass  # a library that swallows everything\n"
        "    print('ran on')\n"
        "    return 0\n"
        "sigint.run(main, 'demo')\n"
    )
    proc = run_python(["-c", script])
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip() == "demo: interrupted"


def test_a_dropped_ctrl_c_before_training_stops_the_loop_at_once(monkeypatch):
    from train import sigint
    from train.interrupt import StopRequest

    with StopRequest() as stop:
        assert not stop.requested
    monkeypatch.setattr(sigint, "_received", True)
    with StopRequest() as stop:
        assert stop.requested


def test_ctrl_c_caught_inside_code_run_from_c_still_exits_130(tmp_path):
    """CPython marks a KeyboardInterrupt raised in code that C ran as a string as unhandled
    even once caught, and kills a ``python -m`` process by SIGINT at shutdown (status -2
    to a parent, as seen under load in train and hil): the command must exit 130."""
    (tmp_path / "demo_cmd.py").write_text(
        "import ctypes, os, signal\n"
        "from train import sigint\n"
        "run_string = ctypes.pythonapi.PyRun_String\n"
        "run_string.restype = ctypes.py_object\n"
        "run_string.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.py_object, "
        "ctypes.py_object]\n"
        "SOURCE = b'import os, signal\\nos.kill(os.getpid(), signal.SIGINT)\\n'\n"
        "def main():\n"
        "    try:\n"
        "        run_string(SOURCE, 257, {}, {})  # 257: Py_file_input\n"
        "    except KeyboardInterrupt:\n"
        "        print('stopped', flush=True)\n"
        "        return sigint.EXIT_STATUS\n"
        "    return 0\n"
        "if __name__ == '__main__':\n"
        "    sigint.run(main, 'demo')\n"
    )
    proc = run_python(["-m", "demo_cmd"], cwd=tmp_path)
    assert proc.returncode == 130, (proc.returncode, proc.stderr)
    assert proc.stdout.strip() == "stopped"
