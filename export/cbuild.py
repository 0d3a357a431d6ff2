"""Compile a generated header with a small C driver and run it on observations.

Used by export's own check (policy.h must match the numpy model bit for bit), by the
tests and by bench/export_speed.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

from export import int_reference
from export.kernel_layout import KERNEL
from export.model import ExportError

DRIVER = KERNEL.parent / "driver.c"
STRICT = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")
RECORD = np.dtype([("rc", "<i4"), ("action", "<f4", (4,))])


def find_cc(name: str | None = None) -> str | None:
    for cc in [name] if name else ["cc", "gcc", "clang"]:
        if shutil.which(cc):
            return cc
    return None


def build(
    header: Path,
    exe: Path,
    cc: str = "gcc",
    flags=("-O2",),
    source: Path = DRIVER,
) -> Path:
    """Compile ``source`` (which includes QP_HEADER with the implementation) into ``exe``.
    The kernel must lie beside the header (``header.write_header`` puts it there)."""
    header, exe = Path(header).resolve(), Path(exe)
    cmd = [
        cc,
        *STRICT,
        *flags,
        f"-DQP_HEADER=<{header.name}>",
        f"-I{header.parent}",
        str(source),
        "-o",
        str(exe),
        "-lm",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["no output"])[0]
        raise ExportError(f"{header.name}: {cc} failed: {first}")
    return exe


def run(exe: Path, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(return codes (n,), actions (n, 4) float32) from the compiled driver."""
    data = np.ascontiguousarray(obs, dtype=np.float32).tobytes()
    proc = subprocess.run([str(exe)], input=data, capture_output=True)
    if proc.returncode != 0:
        raise ExportError(
            f"{exe}: exited with {proc.returncode}: {proc.stderr.decode(errors='replace')[:200]}"
        )
    rec = np.frombuffer(proc.stdout, dtype=RECORD)
    if len(rec) != len(obs):
        raise ExportError(f"{exe}: returned {len(rec)} records for {len(obs)} rows")
    return rec["rc"].copy(), rec["action"].copy()


def selftest(exe: Path) -> int:
    """qp_policy_selftest()'s result in the compiled driver (QP_OK is 0)."""
    proc = subprocess.run([str(exe), "--selftest"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ExportError(f"{exe} --selftest exited with {proc.returncode}: {proc.stderr[:200]}")
    return int(proc.stdout)


def codes_of(actions: np.ndarray) -> np.ndarray:
    """Output codes from the actions of a policy.h (action = code / QP_OUT_ONE, exact in
    float32)."""
    try:
        return int_reference.codes_of(actions)
    except ValueError as e:
        raise ExportError(f"policy.h produced an action that is not a code: {e}") from None
