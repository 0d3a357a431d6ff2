"""The QEMU launcher: it always stops the emulator, boots every firmware variant and
works from the command line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from board_twin import FixtureBoard
from firmware_support import (
    IN_DIM,
    ROOT,
    fixture_hash,
    interruptible,
    make,
    read_line,
    stop,
)
from toolchain import require_tool

from firmware_bridge.emulator import Emulator
from firmware_bridge.link import HandshakeError
from firmware_bridge.protocol import ResetCause


@pytest.fixture(autouse=True)
def tools():
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); look at its state.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_emulator_stops_on_exceptions(exc):
    with pytest.raises(exc):
        with Emulator() as emu:
            pid = emu.proc.pid
            assert alive(pid)
            raise exc("boom")
    assert not alive(pid)


def test_emulator_stops_when_the_handshake_fails():
    before = set(os.listdir("/proc"))
    with pytest.raises(HandshakeError):
        Emulator(expected_hash="ff" * 32).start()
    started = [
        p
        for p in set(os.listdir("/proc")) - before
        if p.isdigit() and alive(int(p)) and b"qemu" in open(f"/proc/{p}/cmdline", "rb").read()
    ]
    assert started == []


def test_echo_firmware_copies_the_observation():
    with Emulator(echo=True) as emu:
        assert emu.info.echo and emu.info.model_hash_hex == fixture_hash()
        inputs = np.arange(IN_DIM, dtype=np.float32) / 8
        np.testing.assert_array_equal(emu.link.step(inputs).action, inputs[:4])


def assert_first_step_is_the_twins(link, inputs):
    """RESET, one STEP: the board's action is its numpy twin's."""
    link.reset()
    twin = FixtureBoard()
    twin.reset()
    np.testing.assert_array_equal(link.step(inputs).action, twin.act(inputs))


def test_real_clock_build_falls_back_to_hsi_in_qemu():
    """QEMU's RCC never reports HSE ready: the bounded waits must give up, not hang."""
    make("BOARD=stm32f405", "REAL_CLOCK=1")
    elf = ROOT / "firmware/build/stm32f405/policy_fixture-realclock/quadpilot.elf"
    with Emulator(elf=elf) as emu:
        assert_first_step_is_the_twins(emu.link, np.full(IN_DIM, 0.75, dtype=np.float32))


UNIMP_WRITE = re.compile(
    r"^(\S+): unimplemented device write \(size 4, offset 0x([0-9a-f]+), value 0x([0-9a-f]+)\)"
)
IWDG_REGION = {"IWDG", "I2S2ext"}  # QEMU 7.2 labels the region at 0x40003000 I2S2ext
REFRESH = (0x0, 0xAAAA)


def unimplemented_writes(log) -> list[tuple[str, int, int]]:
    if not log.exists():
        return []
    found = (UNIMP_WRITE.match(line) for line in log.read_text().splitlines())
    return [(m[1], int(m[2], 16), int(m[3], 16)) for m in found if m]


def test_watchdog_is_started_and_refreshed_and_reset_flags_cleared(tmp_path):
    """QEMU 7.2 models no IWDG: the firmware's writes land in an unimplemented-device
    region, harmlessly, and `-d unimp` logs them. The log must show the start sequence
    with the documented prescaler and reload, then the main loop's refreshes, and the
    RMVF write that clears RCC_CSR's reset flags."""
    log = tmp_path / "unimp.log"

    class LoggedEmulator(Emulator):
        def command(self, elf, port):
            return [*super().command(elf, port), "-d", "unimp", "-D", str(log)]

    def iwdg_writes():
        return [(off, val) for dev, off, val in unimplemented_writes(log) if dev in IWDG_REGION]

    with LoggedEmulator(expected_hash=fixture_hash()) as emu:
        assert emu.info.watchdog_ms == 250 and emu.info.reset_cause == ResetCause.UNKNOWN
        assert_first_step_is_the_twins(emu.link, np.full(IN_DIM, 0.5, dtype=np.float32))
        # Refreshes come every 10 ms of virtual time; wait for a few (QEMU flushes its
        # log line by line), with a generous deadline instead of a fixed sleep.
        deadline = time.monotonic() + 60
        while iwdg_writes().count(REFRESH) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert emu.link.ping(b"still alive") > 0
    writes = iwdg_writes()
    # KR start, KR unlock, PR = 3 (/32), RLR = 249, KR refresh: 250 ms at 32 kHz.
    assert writes[:5] == [(0x0, 0xCCCC), (0x0, 0x5555), (0x4, 3), (0x8, 249), REFRESH]
    assert len(writes) >= 8 and set(writes[5:]) == {REFRESH}, writes[:12]
    rcc = [(off, val) for dev, off, val in unimplemented_writes(log) if dev == "RCC"]
    assert rcc[0] == (0x74, 1 << 24)  # RCC_CSR |= RMVF, before anything else in RCC


def test_cli_emulate_prints_info_and_stops_on_ctrl_c():
    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware_bridge", "emulate", "--steps", "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=interruptible,
    )
    try:
        lines = [read_line(proc, timeout=60) for _ in range(5)]
        qemu_pid = int(lines[0].split()[2].rstrip(","))
        assert "socket://127.0.0.1:" in lines[0]
        assert lines[1].startswith("INFO: protocol v4") and fixture_hash() in lines[2]
        assert "self-test passed, kernel v1" in lines[1]
        twin = FixtureBoard()
        twin.reset()
        zeros = twin.act(np.zeros(IN_DIM, dtype=np.float32)).tolist()
        assert lines[3].startswith(f"STEP zeros -> {zeros}")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130  # generous: QEMU is stopped first
        assert not alive(qemu_pid)
    finally:
        stop(proc)
