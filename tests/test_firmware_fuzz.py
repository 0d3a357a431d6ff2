"""Short libFuzzer runs over the frame receiver, plain and in the flight build: each
builds its harness and finds nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from firmware_support import ROOT
from toolchain import require_tool

from export.fixtures import small_app


def smoke(*args: str) -> None:
    """A number of executions, not a time: beside 4 CPU-bound processes a 5 s run failed
    its bound of 10,000 (1,000-2,200 per second idle under ASan and UBSan)."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fuzz.py"), *args, "--runs", "20000", "--no-write"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert " 0 crashes" in run.stdout
    executions = int(run.stdout.splitlines()[-1].split()[0].replace(",", ""))
    assert executions >= 20_000, run.stdout


def test_fuzz_smoke_run_finds_no_crash():
    require_tool("clang")
    smoke()


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """A small actor's export and its Crazyflie app, as the other flight tests make them."""
    require_tool("clang")
    return small_app(tmp_path_factory.mktemp("fuzzflight"))


def test_fuzz_flight_smoke_run_finds_no_crash(exported):
    """The flight build's harness (make fuzz-flight) over the app's own C files."""
    smoke("--flight", "--artifacts", str(exported))


def test_the_flight_corpus_seeds_are_current():
    """tests/fuzz/corpus_flight holds the frames the codec makes today."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "fuzz" / "flight_seeds.py"), "--check"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
