"""Shared by the firmware, protocol and link tests: the fixture policy recomputed in
numpy, firmware builds, and process helpers that never wait without a timeout."""

from __future__ import annotations

import hashlib
import select
import subprocess
from pathlib import Path

import numpy as np

from firmware_bridge.emulator import stop_process

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
FIXTURE_HEADER = FIRMWARE / "test" / "policy_fixture.h"
VECTORS = ROOT / "tests" / "vectors" / "protocol.jsonl"
OBS_DIM, ACT_DIM = 18, 4


def fixture_weights() -> tuple[np.ndarray, np.ndarray]:
    """W[i][j] = ((2i + 5j) mod 9 - 4) / 16, B[i] = (2i - 3) / 16, as in the header."""
    w = np.array(
        [[((2 * i + 5 * j) % 9 - 4) / 16 for j in range(OBS_DIM)] for i in range(ACT_DIM)],
        dtype="<f4",
    )
    b = np.array([(2 * i - 3) / 16 for i in range(ACT_DIM)], dtype="<f4")
    return w, b


def fixture_hash() -> str:
    w, b = fixture_weights()
    return hashlib.sha256(w.tobytes() + b.tobytes()).hexdigest()


def fixture_policy(obs) -> np.ndarray:
    """The fixture's action, rounded to float32 after every operation like the C code."""
    w, b = fixture_weights()
    x = np.asarray(obs, dtype=np.float32)
    out = np.empty(ACT_DIM, dtype=np.float32)
    for i in range(ACT_DIM):
        acc = b[i]
        for j in range(OBS_DIM):
            acc = np.float32(acc + np.float32(w[i, j] * x[j]))
        out[i] = min(max(acc, np.float32(-1.0)), np.float32(1.0))
    return out


def make(*args: str, timeout: float = 300.0) -> subprocess.CompletedProcess:
    """``make -C firmware args``; fails the test with make's output on error."""
    run = subprocess.run(
        ["make", "-C", str(FIRMWARE), *args], capture_output=True, text=True, timeout=timeout
    )
    if run.returncode != 0:
        raise AssertionError(f"make {' '.join(args)} failed:\n{run.stdout}\n{run.stderr}")
    return run


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    """One line of a child's stdout, or AssertionError after ``timeout`` seconds."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise AssertionError(f"no output from {proc.args[0]} within {timeout} s")
    return proc.stdout.readline().decode().strip()


stop = stop_process  # the bridge's own: terminate, then kill after 3 s


def interruptible() -> None:
    """preexec_fn for a child that a test stops with SIGINT: whatever the test runner's
    own disposition and mask (a CI job started in the background ignores SIGINT; some
    thread pools block it), the child starts with the default handler, unblocked."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
