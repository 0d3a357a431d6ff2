"""Flashing from a fresh clone: the real st-flash and dfu-util with no board attached, a
missing image, a missing tool - each one line saying what to do, never "command not found"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from toolchain import require_tool

from firmware_bridge.__main__ import main as bridge

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def image(tmp_path):
    p = tmp_path / "quadpilot.bin"
    p.write_bytes(bytes(range(256)) * 4)
    return p


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in err and "command not found" not in err
    return err


@pytest.mark.parametrize(
    "method, tool, says",
    [
        ("stlink", "st-flash", "no ST-LINK programmer found: plug it in"),
        ("dfu", "dfu-util", "no board in DFU mode"),
    ],
)
def test_no_board_attached(image, capsys, method, tool, says):
    require_tool(tool)  # installed by `make deps`
    assert bridge(["flash", str(image), "--method", method]) == 2
    err = one_line_error(capsys)
    assert says in err and ("make flash-dfu" in err if method == "stlink" else "BOOT" in err)


def test_missing_image(tmp_path, capsys):
    assert bridge(["flash", str(tmp_path / "none.bin")]) == 2
    assert "no firmware image; build it with `make firmware" in one_line_error(capsys)


def test_missing_tool_names_the_package(image, tmp_path):
    bare = tmp_path / "bin"  # a PATH with no tools on it
    bare.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "firmware_bridge", "flash", str(image), "--method", "dfu"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(bare)},
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: dfu-util is not installed: run `make deps` or `apt-get install -y dfu-util`"
    )


def test_make_flash_without_an_exported_model(tmp_path):
    require_tool("make")
    proc = subprocess.run(
        ["make", "-s", "flash", f"MODEL={tmp_path / 'policy.h'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode != 0
    assert (
        f"flash: {tmp_path / 'policy.h'} is missing: run `make train export` first" in proc.stderr
    )
