"""A short libFuzzer run over the frame receiver: builds the harness and finds nothing."""

from __future__ import annotations

import subprocess
import sys

from firmware_support import ROOT
from toolchain import require_tool


def test_fuzz_smoke_run_finds_no_crash():
    require_tool("clang")
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fuzz.py"), "--seconds", "5", "--no-write"],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert " 0 crashes" in run.stdout
    executions = int(run.stdout.split()[0])
    assert executions > 10_000, run.stdout
