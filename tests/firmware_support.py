"""Shared by the firmware, protocol and link tests: the fixture policy recomputed in
numpy, firmware builds, and process helpers that never wait without a timeout."""

from __future__ import annotations

import functools
import re
import select
import subprocess
from pathlib import Path

import numpy as np

from export import bundle as bundle_mod
from export import int_reference
from firmware_bridge.emulator import stop_process
from firmware_bridge.protocol import Scheme

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
FIXTURE_HEADER = FIRMWARE / "test" / "policy_fixture.h"
FIXTURE_BUNDLE = FIXTURE_HEADER.with_suffix(".json")  # its bundle (export/fixtures.py)
VECTORS = ROOT / "tests" / "vectors" / "protocol.jsonl"
# A STEP's inputs (the estimate and sensor blocks), the policy's whole observation (the
# board adds its integral and last command: tests/board_twin.py), the actions.
IN_DIM, OBS_DIM, ACT_DIM = 18, 25, 4


class FixtureModel:
    """The firmware's test model as its bundle describes it (what the tests compare the
    board with: model and data hash, scheme, MACs, kernel version, the integer model)."""

    def __init__(self, b: bundle_mod.Bundle):
        self.bundle = b
        self.model_hash = b.model_hash
        self.data_hash = b.data_hash("int")
        self.scheme = Scheme.INT
        self.macs = b.macs
        self.kernel_version = b.kernel_version
        self.params = b.int_params()


@functools.cache
def fixture() -> FixtureModel:
    """The firmware's test model (an integer data header, export/fixtures.py), read from
    its bundle; the header's two hashes must be the bundle's."""
    model = FixtureModel(bundle_mod.load(FIXTURE_BUNDLE))
    ident = bundle_mod.header_identity(FIXTURE_HEADER)
    assert (ident.model_hash, ident.data_hash) == (model.model_hash, model.data_hash), (
        f"{FIXTURE_HEADER} and {FIXTURE_BUNDLE} differ: run python -m export.fixtures"
    )
    return model


def fixture_hash() -> str:
    return fixture().model_hash


def fixture_policy(obs) -> np.ndarray:
    """The fixture's action: the numpy integer model on the bundle's integer model, which
    the kernel matches bit for bit."""
    return int_reference.act(fixture().params, np.asarray(obs, np.float32)[None])[0]


def corrupt_selftest(text: str) -> str:
    """A data header whose self-test expects one other answer: the first expected code
    one higher (integer scheme) or the first expected action 0.001 higher (float32, 100x
    its tolerance). The model's tables are untouched."""
    table = re.search(
        r"(static const (?:int16_t qp_selftest_codes|float qp_selftest_action)\[\d+\] = \{\s*)"
        r"(-?[0-9.e+-]+)(f?)",
        text,
    )
    assert table is not None, "no self-test table"
    value = table[2]
    bad = str(int(value) + 1) if table[3] == "" else repr(float(value) + 1e-3)
    return text[: table.start(2)] + bad + text[table.end(2) :]


def with_kernel_version(kernel: str, version: int) -> str:
    """The kernel's text as if it were kernel version ``version``."""
    define = f"#define QP_KERNEL_VERSION {version}"
    kernel, n = re.subn(r"#define QP_KERNEL_VERSION \d+", define, kernel)
    kernel, m = re.subn(r"is kernel version \d+,", f"is kernel version {version},", kernel)
    assert n == m == 1
    return kernel


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
