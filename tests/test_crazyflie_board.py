"""The bench HIL of the Crazyflie app: its own C files in the STM32F405 firmware (the
flight build, `make -C firmware CRAZYFLIE_APP=...`) in QEMU, driven over the protocol's
FLIGHT_* messages beside the same files in the host library - forces, actions and
observations bit for bit, the app's safety rules on the board, the cycles it reports -
and a board without the app refused in one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from toolchain import require_tool

from export import bundle as bundle_mod
from export.fixtures import small_app
from firmware_bridge import codec
from firmware_bridge import crazyflie_loop as cl
from firmware_bridge.crazyflie_board import BoardApp, FlightBoardError, TwinApp
from firmware_bridge.crazyflie_board_run import BoardOptions, run_board
from firmware_bridge.emulator import (
    DEFAULT_MODEL,
    Emulator,
    FlightApp,
    build_firmware,
    firmware_dir,
)
from firmware_bridge.link import DeviceError
from firmware_bridge.protocol import ErrorCode, MsgType

ROOT = Path(__file__).resolve().parents[1]
LEVEL = np.array([1.0, 0.0, 0.0, 0.0])
ZERO3 = np.zeros(3)
HOVER_AT = np.array([0.0, 0.0, 1.0])


@pytest.fixture(autouse=True)
def tools():
    require_tool("cc")
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """A small actor's export and its app (the hover layout: 18 inputs, 37 observed)."""
    return small_app(tmp_path_factory.mktemp("cfb"))


@pytest.fixture(scope="module")
def twin(exported, tmp_path_factory):
    """The flight build in QEMU and the host library, both with the sim's full thrust."""
    task = bundle_mod.load(exported / "policy_bundle.json").spec.task_config()
    thrust = cl.thrust_of(task)
    host = cl.HostApp(
        cl.build_host_library(exported / "crazyflie", thrust, tmp_path_factory.mktemp("lib"))
    )
    with Emulator(flight=FlightApp(exported / "crazyflie", thrust)) as emu:
        yield TwinApp(BoardApp(emu.link), host)


def fresh(twin: TwinApp) -> None:
    assert twin.start()  # controllerOutOfTreeTest on both: the self-test passed
    assert twin.set_param("qpilot", "spinupMs", 0) == 0


def tick(app, n=1, position=HOVER_AT, quat=LEVEL, z_mode=cl.MODE_ABS, age_ms=0):
    return app.ticks(n, position, ZERO3, quat, ZERO3, HOVER_AT, z_mode, age_ms)


def test_the_flight_build_is_its_own_variant(exported, tmp_path):
    """The flight build lands beside the plain one, never on it, and builds again from
    an app in another directory (a temporary one that is gone the next time)."""
    moved = tmp_path / "crazyflie"
    shutil.copytree(exported / "crazyflie", moved)
    build_firmware("stm32f405", flight=FlightApp(moved, 0.12))
    shutil.rmtree(moved)
    flight = FlightApp(exported / "crazyflie", 0.12)
    elf = build_firmware("stm32f405", flight=flight)
    plain = firmware_dir("stm32f405", flight.model)
    assert elf.parent.name == "policy-crazyflie-thrust0.12" and elf.parent != plain
    objects = {p.name for p in (elf.parent / "app").glob("*.o")}
    assert objects == {"quadpilot_controller.o", "qp_flight.o", "qp_policy.o", "shim_app.o"}


def test_the_board_ticks_as_the_host_library_bit_for_bit(twin):
    fresh(twin)
    rng = np.random.default_rng(3)
    for k in range(30):
        position = HOVER_AT + rng.normal(0, 0.05, 3)
        gyro = rng.normal(0, 20, 3)
        assert twin.ticks(10, position, rng.normal(0, 0.1, 3), LEVEL, gyro, HOVER_AT) == 2
        assert twin.policy_calls == k + 1  # one policy call per 10 ticks (100 Hz)
    assert vars(twin.stats) == {
        "requests": 30,
        "forces_differing": 0,
        "actions_differing": 0,
        "observations_differing": 0,
        "states_differing": 0,
    }
    assert twin.forces.max() > 0
    costs = twin.board.costs.summary()
    assert costs["policy"]["median_instructions"] > costs["idle"]["median_instructions"] > 0
    assert twin.board.log("qpilot", "calls") == 30


def test_a_nan_state_latches_the_fault_on_the_board(twin):
    """The app's own rule, not a protocol error: motors off, latched, counted."""
    fresh(twin)
    board = twin.board
    tick(twin, 20)
    counted = board.log("qpilot", "nNonfin")
    tick(twin, 1, position=np.array([0.0, np.nan, 1.0]))
    assert (board.mode, board.fault) == (3, 1) and board.forces.max() == 0
    assert board.log("qpilot", "nNonfin") == counted + 1
    tick(twin, 20)  # good estimates again: still off until re-enabled
    assert board.mode == 3 and board.forces.max() == 0
    tick(twin, 1, z_mode=cl.MODE_DISABLE)
    tick(twin, 20)
    assert board.mode == 2 and board.forces.max() > 0
    assert twin.stats.forces_differing == twin.stats.states_differing == 0


def test_flight_requests_are_checked_as_step_is(twin):
    board = twin.board
    fresh(twin)
    tick(twin, 10)
    calls = board.policy_calls
    state = (0.0,) * 16
    # One byte short: BAD_LENGTH naming the type, and the app did not tick.
    payload = codec.FlightTicks(10, 1, 0, state).payload()[:-1]
    board.link.send_raw(codec.encode_packet(MsgType.FLIGHT_TICKS, 900, payload))
    reply = codec.decode(board.link.read_frame(10.0))[1]
    assert reply == codec.Error(ErrorCode.BAD_LENGTH, MsgType.FLIGHT_TICKS)
    tick(twin, 10)
    assert board.policy_calls == calls + 1
    with pytest.raises(KeyError, match="no parameter qpilot.nope"):
        board.set_param("qpilot", "nope", 1)
    assert twin.set_param("qpilot", "tiltMax", 80.5) == 80.5
    assert twin.set_param("qpilot", "tiltMax", 80) == 80


def test_ticks_before_a_start_are_refused(exported):
    task = bundle_mod.load(exported / "policy_bundle.json").spec.task_config()
    with Emulator(flight=FlightApp(exported / "crazyflie", cl.thrust_of(task))) as emu:
        with pytest.raises(DeviceError, match="NOT_STARTED"):
            tick(BoardApp(emu.link), 10)


def test_a_plain_build_is_refused_in_one_line(exported, tmp_path):
    with Emulator(DEFAULT_MODEL) as emu:
        assert not emu.info.flight
        with pytest.raises(FlightBoardError) as e:
            BoardApp(emu.link)
        assert "without the Crazyflie app" in str(e.value) and "\n" not in str(e.value)
        with pytest.raises(DeviceError, match="UNKNOWN_TYPE"):
            emu.link.request(codec.FlightStart(), MsgType.FLIGHT_STARTED)
    elf = build_firmware("stm32f405", DEFAULT_MODEL)
    cmd = [sys.executable, "-m", "firmware_bridge", "crazyflie", "--emulator"]
    cmd += ["--artifacts", str(exported), "--reports", str(tmp_path), "--elf", str(elf)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "without the Crazyflie app" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_the_bench_hil_report(exported, tmp_path):
    """The command's whole path on the short rows: every request bit-identical to the
    host library, every action the integer model's, the safety rules, the cycles and the
    sizes reported."""
    opts = BoardOptions(
        artifacts=exported, reports=tmp_path, episodes=2, build_dir=tmp_path / "lib"
    )
    report = run_board(opts, log=lambda line: None)
    assert report["passed"] and report["differing"] == 0
    assert set(report["rows"]) == {"nominal", "combined worst case"}
    assert all(r["steps"] > 0 and r["policy_calls"] > 0 for r in report["rows"].values())
    assert all(s["passed"] for s in report["safety"].values())
    c = report["cycles"]
    assert c["policy"]["median_instructions"] > c["idle"]["median_instructions"] > 0
    assert 0 < c["policy_budget_share"] < 1
    sizes = report["app_objects"]
    assert sizes["qp_policy.o"]["flash"] > 1000 and sizes["quadpilot_controller.o"]["ram"] > 0
    assert json.loads((tmp_path / "crazyflie_board.json").read_text())["passed"]


def test_an_app_of_an_earlier_export_is_named_by_export_and_refused_by_the_bench(
    exported, tmp_path, capsys
):
    from export import crazyflie
    from export.__main__ import _note_stale_app
    from firmware_bridge.crazyflie_run import load_app

    out = tmp_path / "artifacts"
    shutil.copytree(exported, out)
    b = bundle_mod.load(out / bundle_mod.BUNDLE_NAME)
    assert crazyflie.app_data_hash(out, b) is None
    _note_stale_app(str(out))
    assert capsys.readouterr().out == ""  # the app is this export's: nothing to say
    # A new export leaves the app of the one before: other data in its header.
    policy = out / crazyflie.APP_DIR / "src" / "policy.h"
    policy.write_text(policy.read_text().replace(b.data_hash("int"), "0" * 64))
    assert crazyflie.app_data_hash(out, b) == "0" * 64
    _note_stale_app(str(out))
    said = capsys.readouterr().out
    assert said.startswith("note: ") and "`make crazyflie`" in said and said.count("\n") == 1
    with pytest.raises(cl.CrazyflieLoopError, match="0000000000000000.*make `?crazyflie` again"):
        load_app(out)
