"""The HIL end to end: a fixture checkpoint exported into a temporary directory, the
firmware built for its header, QEMU over a real loopback socket, and the CLI's report,
refusals and error messages.

Budget (2 cores): one export (~15 s), one full HIL run of 1,000 open-loop states and
3 closed-loop episodes (~20 s), a few short runs for refusals and Ctrl-C. The fixture
actor is untrained, so its episodes fail early; the closed-loop check is that the board
flies exactly the reference's trajectories, not that it succeeds.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from firmware_support import FIRMWARE, ROOT, corrupt_selftest, interruptible, read_line, stop
from toolchain import require_module, require_tool

from export import bundle, header, quantize, rollouts
from export import int_reference as ref
from export import model as model_mod
from export.__main__ import main as export_main
from export.fixtures import make_checkpoint
from export.report import TARGETS
from firmware_bridge import codec
from firmware_bridge.emulator import Emulator, build_firmware, firmware_dir
from firmware_bridge.hil import HilError, HilOptions, load_inputs
from firmware_bridge.link import Link
from firmware_bridge.protocol import MsgType, SelfTest
from sim import quality, robustness
from sim.tasks import make_task

OPEN_LOOP_STATES = 1000  # the CLI's minimum
EPISODES = 3


# A hang guard, not a speed bound: beside 4 CPU-bound processes the emulated runs went
# past the 240 s this was (docs/benchmarks.md, "Busy machine").
HIL_TIMEOUT = 1800


def hil(*args: str, timeout: float = HIL_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "firmware_bridge", "hil", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("hil")
    ckpt = make_checkpoint(d / "run" / "checkpoint.pt", step=7)
    out = d / "artifacts"
    argv = [str(ckpt), "--out", str(out), "--test-states", "2000", "--episodes", "10"]
    argv += ["--finetune-steps", "300"]  # the default (1,500) is for trained actors
    argv += ["--robustness-episodes", "10"]  # the default (400) resolves 2 pp; not needed here
    assert export_main(argv) == 0
    return {"dir": d, "ckpt": ckpt, "artifacts": out}


def common_args(exported: dict, reports: Path) -> list[str]:
    return [
        "--checkpoint",
        str(exported["ckpt"]),
        "--artifacts",
        str(exported["artifacts"]),
        "--reports",
        str(reports),
    ]


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_bundle_rebuilds_the_exact_integer_model(tmp_path, activation):
    """The HIL's reference runs on the bundle's integer model: rebuilt from the bundle's
    JSON, it is the QuantParams that wrote the header (independent of any export run),
    for tanh and ReLU actors, and the header's two hashes are the bundle's."""
    policy = model_mod.load(make_checkpoint(tmp_path / "c.pt", activation=activation, seed=3))
    calib = rollouts.policy_states(policy.act, policy.spec, 1000, 11)
    params = quantize.quantize(policy, calib)
    path = tmp_path / "policy.h"
    header.write_header(path, header.int_header(policy, params, calib[:8]).text)
    bundle.write(tmp_path / bundle.BUNDLE_NAME, bundle.build(policy, params, calib[:8], 1e-5))
    b = bundle.load(tmp_path / bundle.BUNDLE_NAME)
    ident = bundle.header_identity(path)
    assert ident.model_hash == b.model_hash == policy.model_hash
    assert ident.data_hash == b.data_hash("int") and ident.scheme == params.scheme
    got = b.int_params()
    for name in ("mean", "div", "scale", "zero", "lo", "hi"):
        np.testing.assert_array_equal(getattr(got.input, name), getattr(params.input, name))
        assert (
            np.asarray(getattr(got.input, name)).dtype
            == np.asarray(getattr(params.input, name)).dtype
        )
    for a, b_ in zip(got.layers, params.layers, strict=True):
        assert a.activation == b_.activation
        assert (a.lut is None) == (b_.lut is None) == (b_.activation == "relu")
        for name in ("weight", "bias", "multiplier", "shift", "lut", "code_limit", "acc_scale"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b_, name))
    test = rollouts.policy_states(policy.act, policy.spec, 500, 12)
    np.testing.assert_array_equal(ref.forward_codes(got, test), ref.forward_codes(params, test))


def test_headers_and_bundle_describe_the_same_model(exported):
    out = exported["artifacts"]
    b = bundle.load(out / bundle.BUNDLE_NAME)
    policy = model_mod.load(exported["ckpt"])
    assert b.model_hash == policy.model_hash and b.layout_text == policy.spec.layout_text
    assert b.raw["network"]["widths"] == policy.widths
    assert [blk["name"] for blk in b.raw["layout"]] == [n for n, *_ in policy.spec.obs_layout]
    for scheme, name in bundle.HEADERS.items():
        ident = bundle.header_identity(out / name)
        assert (ident.model_hash, ident.data_hash) == (b.model_hash, b.data_hash(scheme))
        text = (out / name).read_text()
        assert f"#define QP_OBS_DIM {policy.obs_dim}\n" in text
        assert f'#define QP_OBS_LAYOUT "{b.layout_text}"\n' in text
        obs = b.selftest_obs(scheme)
        assert header.c_array("float", "qp_selftest_obs", obs, header.c_float, 8) in text
    codes = np.asarray(b.scheme("int")["selftest"]["codes"])
    assert header.c_array("int16_t", "qp_selftest_codes", codes) in (out / "policy.h").read_text()
    np.testing.assert_array_equal(ref.forward_codes(b.int_params(), b.selftest_obs()), codes)
    assert b.data_hash("int") != b.data_hash("float32")


def _hil_inputs(exported, artifacts):
    return load_inputs(HilOptions(checkpoint=str(exported["ckpt"]), artifacts=artifacts))


def test_a_stale_header_of_the_same_checkpoint_is_refused_naming_both_hashes(exported, tmp_path):
    """The checkpoint exported again without fine-tuning: the same model hash, another
    quantisation. Its policy.h beside the first export's bundle is refused."""
    other = tmp_path / "other"
    argv = [str(exported["ckpt"]), "--out", str(other), "--no-finetune", "--no-c-check"]
    argv += ["--episodes", "1", "--test-states", "200", "--robustness-episodes", "0"]
    assert export_main(argv) == 0
    first = bundle.load(exported["artifacts"] / bundle.BUNDLE_NAME)
    stale = bundle.header_identity(other / "policy.h")
    assert stale.model_hash == first.model_hash and stale.data_hash != first.data_hash("int")
    mixed = tmp_path / "mixed"
    shutil.copytree(exported["artifacts"], mixed)
    shutil.copy(other / "policy.h", mixed / "policy.h")
    with pytest.raises(HilError) as err:
        _hil_inputs(exported, mixed)
    msg = str(err.value)
    assert stale.data_hash[:16] in msg and first.data_hash("int")[:16] in msg and "\n" not in msg
    _hil_inputs(exported, exported["artifacts"])  # the export as written passes


def test_a_missing_or_mismatched_bundle_is_refused(exported, tmp_path):
    d = tmp_path / "a"
    shutil.copytree(exported["artifacts"], d)
    raw = json.loads((d / bundle.BUNDLE_NAME).read_text())
    (d / bundle.BUNDLE_NAME).unlink()
    with pytest.raises(HilError, match=r"policy\.h has no policy_bundle\.json beside it"):
        _hil_inputs(exported, d)
    foreign = {**raw, "model_hash": "ab" * 32}  # another model's bundle
    (d / bundle.BUNDLE_NAME).write_text(json.dumps(foreign))
    with pytest.raises(HilError, match=f"model abababababababab.*model {raw['model_hash'][:16]}"):
        _hil_inputs(exported, d)
    edited = json.loads(json.dumps(raw))
    edited["schemes"]["int"]["data"]["layers"][0]["bias"][0] += 1
    (d / bundle.BUNDLE_NAME).write_text(json.dumps(edited))
    with pytest.raises(HilError, match="edited or damaged"):
        _hil_inputs(exported, d)


@pytest.fixture(scope="module")
def emulated_run(exported, tmp_path_factory) -> dict:
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    require_module("imageio_ffmpeg", "pip install -e '.[video]'")
    reports = tmp_path_factory.mktemp("reports")
    start = time.monotonic()
    proc = hil(
        "--emulator",
        *common_args(exported, reports),
        "--states",
        str(OPEN_LOOP_STATES),
        "--episodes",
        str(EPISODES),
        "--video",
    )
    return {
        "proc": proc,
        "reports": reports,
        "seconds": time.monotonic() - start,
        "report": json.loads((reports / "hil.json").read_text())
        if (reports / "hil.json").exists()
        else None,
    }


def test_emulator_hil_passes_and_is_bit_exact(emulated_run):
    proc, rep = emulated_run["proc"], emulated_run["report"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "HIL passed" in proc.stdout
    ol = rep["open_loop"]
    assert ol["states"] >= OPEN_LOOP_STATES  # whole episodes, RESET before each
    assert ol["bit_exact_fraction"] == 1.0 and ol["code_mismatches"] == 0
    assert ol["vs_reference"]["max"] == 0.0
    assert rep["scheme"] == "int" and rep["header_scheme"] == "int12w-int16a"  # the default
    assert 0 < ol["vs_float"]["max"] <= TARGETS["int_max_abs_error"]
    assert ol["vs_float"]["mean"] <= TARGETS["int_mean_abs_error"]
    assert all(ok for _, _, ok in rep["checks"].values())
    # INFO read again after the run: every byte of every request reached the policy.
    assert rep["checks"]["receive_bytes_lost"] == [0, 0, True]
    board = rep["board"]
    assert board["reset_cause"] == "unknown" and board["watchdog_ms"] == 250  # QEMU's RCC reads 0
    assert board["rx_dropped_after_run"] == board["rx_overruns_after_run"] == 0


def test_emulator_hil_closed_loop_matches_reference(emulated_run):
    cl = emulated_run["report"]["closed_loop"]
    assert cl["episodes"] == EPISODES and cl["board_steps"] > 0
    assert cl["success_rate"]["board"] == cl["success_rate"]["reference"]
    assert cl["board_identical_to_reference"]
    assert cl["mean_final_error_m"]["board"] == cl["mean_final_error_m"]["reference"]
    # The same commands and flights: the same hover quality (NaN where all crashed).
    for row in cl["rows"].values():
        for k in quality.METRICS:
            assert set(row[k]) == {"board", "reference", "float"}
            np.testing.assert_equal(row[k]["board"], row[k]["reference"])
    assert "hover quality" in emulated_run["proc"].stdout


def test_emulator_hil_reports_timing_and_files(emulated_run):
    rep, reports = emulated_run["report"], emulated_run["reports"]
    link, inf = rep["link"], rep["inference"]
    assert link["steps"] == rep["open_loop"]["states"] + rep["closed_loop"]["board_steps"]
    assert 0 < link["rtt_ms"]["p50"] <= link["rtt_ms"]["p99"]
    assert link["round_trips_per_s"] > 0 and link["bytes_per_step"]["total"] > 0
    assert inf["macs"] == make_task("hover").obs_dim * 64 + 64 * 64 + 64 * 4
    assert inf["ticks"]["min"] > 0 and inf["instructions_per_mac"] > 0
    assert (reports / "hil.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in reports.iterdir()) == ["hil.json", "hil.mp4", "hil.png"]


def test_emulator_hil_video_shows_board_beside_reference(emulated_run):
    """--video: every closed-loop episode of both rows, board on the left, reference on
    the right; the board flew the reference's trajectories, so the halves match below
    the captions (up to the video codec's noise)."""
    import imageio_ffmpeg

    path = emulated_run["reports"] / "hil.mp4"
    assert f"video {path}" in emulated_run["proc"].stdout
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    assert meta["size"] == (960, 480) and meta["fps"] == 50
    frames = [np.frombuffer(f, np.uint8).reshape(480, 960, 3) for f in reader]
    hold = 25  # half a second at 50 frames/s after each episode
    assert len(frames) >= 2 * EPISODES * (2 + hold)  # two rows of EPISODES episodes
    for f in frames[:: max(1, len(frames) // 20)]:
        left, right = f[60:, :480].astype(int), f[60:, 480:].astype(int)
        assert np.abs(left - right).mean() < 1.0
    assert np.abs(frames[0].astype(int) - frames[10].astype(int)).max() > 50  # it moves


def test_lockstep_closed_loop_flies_the_nominal_in_range_and_combined_rows(emulated_run):
    """The board keeps its own integral and past actions through every row: each of its
    commands equals the reference's on the sim's own observation, so it flies the
    reference's trajectories exactly."""
    cl = emulated_run["report"]["closed_loop"]
    inside = [r.name for r in robustness.rows() if r.inside or r.group == "combined"]
    assert cl["paced"] is False and set(cl["rows"]) == {"nominal", *inside}
    assert "combined worst case" in cl["rows"] and len(cl["rows"]) > 10
    nominal, combined = cl["rows"]["nominal"], cl["rows"]["combined worst case"]
    assert nominal["latency_ms"] == 10.0  # the CLI's default, applied in lockstep
    assert combined["latency_ms"] == 1000 * make_task("hover").latency_s[1]
    for row in cl["rows"].values():
        assert row["board_identical_to_reference"] and row["success_gap_pp"] == 0.0
        assert row["board_steps"] > 0 and row["steps_differing_from_reference"] == 0
    assert cl["board_steps"] == sum(row["board_steps"] for row in cl["rows"].values())
    checks = emulated_run["report"]["checks"]
    assert checks["closed_loop_steps_differing"] == [0, 0, True]


def test_paced_closed_loop_runs_in_real_time_on_the_emulator(exported, tmp_path):
    """--paced: answers applied when they arrive, misses counted (how many depends on the
    machine's load, so only the bookkeeping is checked)."""
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    reports = tmp_path / "r"
    start = time.monotonic()
    proc = hil(
        "--emulator",
        "--paced",
        *common_args(exported, reports),
        "--episodes",
        "1",
        "--rows",
        "short",
    )
    seconds = time.monotonic() - start
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    rep = json.loads((reports / "hil.json").read_text())
    cl = rep["closed_loop"]
    assert cl["paced"] is True and set(cl["rows"]) == {"nominal", "combined worst case"}
    for row in cl["rows"].values():
        answered = row["board_steps"] - row["deadline_misses"]
        assert 0 <= row["deadline_misses"] <= row["board_steps"] and answered >= 0
        assert row["latency_ms_median"] >= 0
    misses = sum(r["deadline_misses"] for r in cl["rows"].values())
    assert rep["checks"]["deadline_misses"] == [misses, 0, misses == 0]
    assert (proc.returncode == 0) == rep["passed"]
    # Real time: every step but an episode's last waited for the end of its period.
    period = 1 / make_task("hover").control_hz
    for row in cl["rows"].values():
        assert row["wall_s"] >= (row["board_steps"] - 1) * period
    assert seconds > sum(row["wall_s"] for row in cl["rows"].values())


def test_latency_that_is_not_whole_milliseconds_is_refused_before_any_work(exported, tmp_path):
    proc = hil("--emulator", *common_args(exported, tmp_path / "r"), "--latency-ms", "7.5")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "latency 7.5 ms" in proc.stderr and "whole milliseconds" in proc.stderr
    # Before any work: no firmware built, no emulator started, no report.
    assert proc.stdout == "" and not (tmp_path / "r").exists()


def test_wrong_model_hash_is_refused(exported, tmp_path):
    """A board running another model (the firmware's test fixture) over --port."""
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    with Emulator() as emu:
        emu.link.close()  # QEMU takes the next client once this one leaves
        emu.link = None
        proc = hil("--port", emu.url, *common_args(exported, tmp_path / "r"), timeout=600)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "model hash mismatch" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()


def test_board_whose_self_test_failed_is_refused(exported, tmp_path):
    """The host firmware built from the exported policy.h with one expected self-test code
    changed: the model and its hash are the same, the self-test at boot fails, INFO says
    so, and the HIL refuses the board naming the self-test and the model hash."""
    require_tool("cc")
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    for f in exported["artifacts"].iterdir():
        (artifacts / f.name).write_bytes(f.read_bytes())
    bad = corrupt_selftest((artifacts / "policy.h").read_text())
    (artifacts / "policy.h").write_text(bad)
    model = tmp_path / "policy_selftest_failed.h"  # a build directory of its own
    header.write_header(model, bad)
    proc = None
    try:
        proc = subprocess.Popen(
            [str(build_firmware("host", model)), "--pty"], stdout=subprocess.PIPE
        )
        line = read_line(proc, timeout=10)
        assert line.startswith("PTY /dev/"), line
        with Link(line.split()[1], timeout=10) as link:  # no handshake: read INFO as it is
            info, _, _ = link.request(codec.Hello(), MsgType.INFO)
        policy_hash = bundle.header_identity(artifacts / "policy.h").model_hash
        assert info.selftest == SelfTest.FAILED and info.model_hash_hex == policy_hash
        kernel_version = bundle.load(artifacts / bundle.BUNDLE_NAME).kernel_version
        assert info.kernel_version == kernel_version >= 1
        run = hil(
            "--port",
            line.split()[1],
            *common_args(exported, tmp_path / "r")[:2],
            "--artifacts",
            str(artifacts),
            "--reports",
            str(tmp_path / "r"),
            timeout=600,
        )
    finally:
        if proc is not None:
            stop(proc)
        build = firmware_dir("host", model)
        if build.is_relative_to(FIRMWARE / "build") and build.name == model.stem:
            shutil.rmtree(build, ignore_errors=True)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "self-test failed" in run.stderr and policy_hash[:16] in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "r").exists()


def test_clear_errors_without_traceback(exported, tmp_path):
    args = common_args(exported, tmp_path / "r")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    with socket.socket() as silent:  # accepts the connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        cases = {
            "missing artifacts": (
                ["--emulator", *args, "--artifacts", str(tmp_path / "none")],
                "is missing",
            ),
            "missing checkpoint": (
                ["--emulator", "--checkpoint", str(tmp_path / "no.pt"), *args[2:]],
                "no such checkpoint",
            ),
            "no such port": (["--port", "/dev/ttyQP_NONE", *args], "cannot open"),
            "closed port": (["--port", f"socket://127.0.0.1:{closed_port}", *args], "cannot open"),
            "timeout": (
                ["--port", f"socket://127.0.0.1:{port}", "--timeout", "0.1", *args],
                "no INFO",
            ),
            "too few states": (["--emulator", *args, "--states", "10"], ">= 1000"),
        }
        for name, (argv, message) in cases.items():
            proc = hil(*argv, timeout=600)
            assert proc.returncode == 2, (name, proc.stderr)
            assert message in proc.stderr and "Traceback" not in proc.stderr, (name, proc.stderr)
            if "--port" in argv:  # the port is tried before any rollout is computed
                assert "rollout states" not in proc.stdout, (name, proc.stdout)
    assert not (tmp_path / "r").exists()


def start_hil(args: list[str]) -> subprocess.Popen:
    """``python -m firmware_bridge hil ARGS``, output piped, SIGINT deliverable."""
    return subprocess.Popen(
        [sys.executable, "-m", "firmware_bridge", "hil", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )


def qemu_children(pid: int) -> list[int]:
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
            cmd = Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"qemu-system-arm" in cmd:
            found.append(int(p))
    return found


def test_ctrl_c_stops_qemu(exported, tmp_path):
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    proc = start_hil(["--emulator", *common_args(exported, tmp_path / "r")])
    try:
        deadline = time.monotonic() + 600  # the firmware's build and QEMU, on a busy machine
        qemu = []
        while not qemu and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            qemu = qemu_children(proc.pid)
        assert qemu, "QEMU never started"
        time.sleep(1.0)  # let it get into the HIL proper
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130
        deadline = time.monotonic() + 30
        while qemu_children(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in qemu:
            assert not Path(f"/proc/{pid}").exists() or "Z" in _state(pid)
    finally:
        stop(proc)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


@pytest.mark.parametrize(
    "phase, extra",
    [
        ("board:", []),  # the handshake done, the open loop starting
        ("closed loop:", []),  # lockstep
        ("closed loop:", ["--paced", "--rows", "short"]),  # in real time
    ],
    ids=["after-handshake", "closed-loop", "paced-closed-loop"],
)
def test_ctrl_c_in_each_phase_exits_130_and_stops_qemu(exported, tmp_path, phase, extra):
    """SIGINT as the HIL's log reaches a phase (wherever in it the signal then lands):
    exit 130 with no traceback, QEMU stopped, no temporary report file."""
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    reports = tmp_path / "r"
    proc = start_hil(["--emulator", *extra, *common_args(exported, reports)])
    try:
        seen = []
        for line in proc.stderr:  # the log, a line at a time (bounded by the wait below)
            seen.append(line)
            if line.startswith(phase):
                break
        assert seen and seen[-1].startswith(phase), "".join(seen)
        qemu = qemu_children(proc.pid)
        assert qemu, "QEMU is not running in this phase"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=600) == 130
        err = proc.stderr.read()
        assert "Traceback" not in err, err
        deadline = time.monotonic() + 10
        while any(_state(p) not in ("gone", "Z") for p in qemu) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(_state(p) in ("gone", "Z") for p in qemu)
        assert not reports.exists() or not list(reports.glob(".*.tmp"))
    finally:
        stop(proc)
