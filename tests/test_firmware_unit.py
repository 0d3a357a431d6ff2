"""C unit tests (native, plain and under ASan+UBSan), the fixture header, and the
STM32F405 build: every build uses -Wall -Wextra -Werror -pedantic."""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
from firmware_support import FIRMWARE, FIXTURE_BUNDLE, FIXTURE_HEADER, fixture_hash, make
from toolchain import require_tool

from export.fixtures import firmware_fixture


def test_c_unit_tests_pass_plain_and_sanitized():
    require_tool("cc")
    run = make("test")
    results = re.findall(r"(\d+) checks, (\d+) failures", run.stdout)
    assert len(results) == 2, run.stdout  # the plain and the sanitized binary both ran
    for checks, failures in results:
        assert int(checks) > 10000 and int(failures) == 0
    assert run.stdout.count("vectors: ") == 2


def test_fixture_header_is_current():
    """The checked-in fixture and its bundle are what the renderer writes today
    (`python -m export.fixtures` rewrites both)."""
    header_text, bundle_text = firmware_fixture()
    assert FIXTURE_HEADER.read_text() == header_text
    # The float32 scheme's self-test actions are the torch policy's: their last bits
    # depend on the CPU's vector instructions (a board checks them with a tolerance).
    # Every other byte of the bundle is exact.
    kept, today = json.loads(FIXTURE_BUNDLE.read_text()), json.loads(bundle_text)
    float_actions = [d["schemes"]["float32"]["selftest"].pop("actions") for d in (kept, today)]
    assert kept == today
    np.testing.assert_allclose(*float_actions, rtol=0, atol=1e-6)
    assert f'#define QP_MODEL_HASH "{fixture_hash()}"' in FIXTURE_HEADER.read_text()


def test_stm32f405_build_reports_size_and_stack():
    require_tool("arm-none-eabi-gcc")
    out = make("BOARD=stm32f405").stdout
    flash = int(re.search(r"flash: (\d+) bytes", out).group(1))
    ram = int(re.search(r"RAM \(static\): (\d+) bytes", out).group(1))
    stack = int(re.search(r"stack worst case \(call graph\): (\d+) bytes", out).group(1))
    assert 1000 < flash < 64 * 1024, out
    assert 0 < ram < 16 * 1024, out
    assert 0 < stack < 4096, out


def test_echo_and_real_clock_variants_build():
    require_tool("arm-none-eabi-gcc")
    make("BOARD=stm32f405", "ECHO=1")
    make("BOARD=stm32f405", "REAL_CLOCK=1")


def make_fails(*args: str) -> str:
    """make's stderr for a build that must fail."""
    run = subprocess.run(
        ["make", "-C", str(FIRMWARE), *args], capture_output=True, text=True, timeout=120
    )
    assert run.returncode != 0, run.stdout
    return run.stderr


def test_scheme_mismatch_is_a_build_error():
    require_tool("cc")
    stderr = make_fails("BOARD=host", "SCHEME=float32", f"MODEL={FIXTURE_HEADER}")  # an int header
    assert "does not match QP_SCHEME_ID" in stderr


def test_the_old_scheme_spelling_is_refused_naming_the_new_one():
    stderr = make_fails("BOARD=host", "SCHEME=int8", f"MODEL={FIXTURE_HEADER}")
    assert "SCHEME=int8 is now SCHEME=int" in stderr and "retired" in stderr


def test_cppcheck_is_clean():
    require_tool("cppcheck")
    make("cppcheck")
