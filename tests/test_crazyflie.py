"""make crazyflie: the Crazyflie out-of-tree controller app around the exported policy -
what it writes and refuses, its C compiled for the host against the firmware shim and
for the Cortex-M4, its safety rules tick by tick, and the app flown in the sim through
the firmware's units (frames, signs and motor order checked against the sim's)."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from toolchain import require_tool

from export import bundle as bundle_mod
from export import crazyflie
from export import int_reference as ref
from export.__main__ import main as export_main
from export.fixtures import make_checkpoint
from firmware_bridge import crazyflie_loop as cl
from firmware_bridge import paced
from firmware_bridge.crazyflie_run import CrazyflieOptions, run
from firmware_bridge.hil import closed_loop_task
from sim.airframes import get_airframe
from sim.contract.spec import PolicySpec
from sim.dynamics import rotation_matrices
from sim.tasks import make_task

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cf")
    ckpt = make_checkpoint(d / "run" / "checkpoint.pt", step=7)
    out = d / "artifacts"
    argv = [str(ckpt), "--out", str(out), "--test-states", "2000", "--episodes", "10"]
    argv += ["--finetune-steps", "300", "--robustness-episodes", "0", "--no-c-check"]
    assert export_main(argv) == 0
    crazyflie.write_app(out)
    return out


@pytest.fixture(scope="module")
def host_app(exported, tmp_path_factory):
    """The app built with the sim airframe's full thrust as THRUST_MAX (nothing lost)."""
    require_tool("cc")
    task = bundle_mod.load(exported / "policy_bundle.json").spec.task_config()
    lib = cl.build_host_library(
        exported / "crazyflie", cl.thrust_of(task), tmp_path_factory.mktemp("lib")
    )
    return cl.HostApp(lib), task


def cli(*args: str, module: str = "export") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


# What make crazyflie writes ----------------------------------------------------------------
def test_the_app_holds_the_exported_policy_and_its_rotor_model(exported):
    app = exported / "crazyflie"
    for name in ("Makefile", "Kbuild", "app-config", "src/Kbuild", "src/quadpilot_controller.c"):
        assert (app / name).is_file(), name
    assert "CONFIG_CONTROLLER_OOT=y" in (app / "app-config").read_text()
    assert "include $(CRAZYFLIE_BASE)/tools/make/oot.mk" in (app / "Makefile").read_text()
    for name in ("policy.h", "qp_kernel.h", "qp_state.h"):
        assert (app / "src" / name).read_bytes() == (exported / name).read_bytes()
    b = bundle_mod.load(exported / "policy_bundle.json")
    body = b.spec.task_config().body()
    config = (app / "src" / "qp_flight_config.h").read_text()
    speed_max = re.search(r"#define QP_FLIGHT_SPEED_MAX (\S+)f\n", config).group(1)
    assert np.float32(speed_max) == np.float32(body.rotor_speed_max)
    assert "#define QP_FLIGHT_CONTROL_HZ 100\n" in config
    objects = set((app / "src" / "Kbuild").read_text().split())
    assert {f"{c.stem}.o" for c in (app / "src").glob("*.c")} <= objects
    assert not list(exported.glob(".crazyflie*"))  # no temporary directory left


def test_without_an_export_it_says_so_in_one_line_and_writes_nothing(tmp_path):
    r = cli("--target", "crazyflie", "--out", str(tmp_path))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "no exported policy" in r.stderr and "make export" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_header_of_another_export_is_refused_and_the_old_app_kept(exported, tmp_path):
    out = tmp_path / "artifacts"
    shutil.copytree(exported, out)
    before = (out / "crazyflie" / "src" / "policy.h").read_bytes()
    shutil.copyfile(ROOT / "firmware/test/policy_fixture.h", out / "policy.h")
    r = cli("--target", "crazyflie", "--out", str(out))
    assert r.returncode == 2 and "is not the policy of" in r.stderr, r.stderr
    assert (out / "crazyflie" / "src" / "policy.h").read_bytes() == before
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize(
    "task, why",
    [
        ("hover-nominal", r"observes rotor_speeds \(4 numbers\), which the Crazyflie"),
        ("takeoff", "observes rotor_speeds"),
    ],
)
def test_a_policy_the_crazyflie_cannot_serve_is_refused_naming_why(task, why):
    with pytest.raises(crazyflie.CrazyflieError, match=why):
        crazyflie.check_policy(PolicySpec.of_task(make_task(task)))


def test_another_rotor_layout_or_rate_is_refused():
    with pytest.raises(crazyflie.CrazyflieError, match="rotor 1 sits at x=0.4, y=0"):
        crazyflie.check_airframe(get_airframe("udacity"))
    cf = get_airframe("crazyflie")
    swapped = cf.replace(rotor_yaw_signs=tuple(-s for s in cf.rotor_yaw_signs))
    with pytest.raises(crazyflie.CrazyflieError, match="rotor 1 turns the other way"):
        crazyflie.check_airframe(swapped)
    spec = dataclasses.replace(PolicySpec.of_task(make_task("hover")), control_hz=30.0)
    with pytest.raises(crazyflie.CrazyflieError, match="30 Hz, which the stabiliser"):
        crazyflie.check_policy(spec)


# The C, compiled ----------------------------------------------------------------------------
def test_the_app_compiles_for_the_cortex_m4_with_warnings_as_errors(exported, tmp_path):
    require_tool("arm-none-eabi-gcc")
    sizes = cl.build_arm_objects(exported / "crazyflie", tmp_path)
    assert set(sizes) == {"qp_flight.c", "qp_policy.c", "quadpilot_controller.c"}
    assert sizes["qp_policy.c"]["text"] > 5000  # the tables and the kernel


def test_a_wrong_hook_signature_does_not_compile(exported, tmp_path):
    """controller.h's prototypes are seen (autoconf.h comes first): a hook with another
    signature is a build error, not a silent link."""
    require_tool("cc")
    app = tmp_path / "crazyflie"
    shutil.copytree(exported / "crazyflie", app)
    glue = app / "src" / "quadpilot_controller.c"
    text = glue.read_text()
    assert "const stabilizerStep_t stabilizerStep)" in text
    glue.write_text(text.replace("const stabilizerStep_t stabilizerStep)", "int stabilizerStep)"))
    with pytest.raises(cl.CrazyflieLoopError, match="building the Crazyflie app"):
        cl.build_host_library(app, 0.12, tmp_path / "lib")


# Tick by tick --------------------------------------------------------------------------------
LEVEL = np.array([1.0, 0.0, 0.0, 0.0])
ZERO3 = np.zeros(3)
HOVER_AT = np.array([0.0, 0.0, 1.0])


def fresh(app: cl.HostApp, spinup_ms: int = 0) -> None:
    assert app.start()  # controllerOutOfTreeTest: the header's self-test passed
    app.set_param("qpilot", "spinupMs", spinup_ms)


def tick(app, n=1, position=HOVER_AT, quat=LEVEL, z_mode=cl.MODE_ABS, age_ms=0):
    return app.ticks(n, position, ZERO3, quat, ZERO3, HOVER_AT, z_mode, age_ms)


def test_decimation_force_mode_and_motor_mapping(host_app):
    app, task = host_app
    fresh(app)
    assert tick(app, 9) == cl.CONTROL_MODE_FORCE and app.policy_calls == 0
    tick(app)  # the 10th tick of the 1 kHz loop: the 100 Hz policy runs
    assert app.policy_calls == 1 and app.mode == 2
    tick(app, 90)
    assert app.policy_calls == 10
    # Each motor's force is its rotor's command through the sim's rotor model.
    motors = cl.Motors.of(task, cl.thrust_of(task), 0.0)
    np.testing.assert_allclose(motors.action(app.forces), app.action(), atol=2e-6)
    assert app.log("qpilot", "a1") == pytest.approx(float(app.action()[0]))


def test_spin_up_then_the_policy(host_app):
    app, _ = host_app
    fresh(app, spinup_ms=300)
    tick(app, 300)
    np.testing.assert_array_equal(app.forces, np.float32(0.15))
    assert app.policy_calls == 0 and app.mode == 1
    tick(app, 10)
    assert app.policy_calls == 1 and app.mode == 2


def test_disabled_or_stale_setpoints_stop_the_motors(host_app):
    app, _ = host_app
    fresh(app)
    tick(app, 20)
    assert app.forces.max() > 0
    tick(app, 1, z_mode=cl.MODE_DISABLE)
    assert app.forces.max() == 0 and app.mode == 0
    fresh(app)
    tick(app, 20)
    tick(app, 10, age_ms=501)  # older than the supervisor's 500 ms
    assert app.forces.max() == 0 and app.log("qpilot", "nStale") == 10
    tick(app, 10)  # a fresh setpoint again: reactivated, the kept blocks reset
    assert app.forces.max() > 0 and app.mode == 2


@pytest.mark.parametrize(
    "bad, fault, counter",
    [
        ({"position": np.array([0.0, np.nan, 1.0])}, 1, "nNonfin"),
        ({"quat": np.array([1.2, 0.0, 0.0, 0.0])}, 2, "nQuat"),
        ({"quat": np.array([np.cos(0.75), np.sin(0.75), 0.0, 0.0])}, 3, "nTilt"),  # 86 deg
    ],
)
def test_a_bad_estimate_latches_the_motors_off_until_reenabled(host_app, bad, fault, counter):
    app, _ = host_app
    fresh(app)
    tick(app, 20)
    tick(app, 1, **bad)
    assert app.forces.max() == 0 and (app.mode, app.fault) == (3, fault)
    assert app.log("qpilot", counter) == 1
    tick(app, 20)  # good estimates again: still off until the pilot re-enables
    assert app.forces.max() == 0 and app.mode == 3
    tick(app, 1, z_mode=cl.MODE_DISABLE)
    tick(app, 20)
    assert app.forces.max() > 0 and app.mode == 2


def test_quaternion_of_inverts_the_sims_rotation_matrix():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(50, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[q[:, 0] < 0] *= -1
    for qi, r in zip(q, rotation_matrices(q), strict=True):
        np.testing.assert_allclose(cl.quaternion_of(r), qi, atol=1e-12)


# Closed loop in the sim -----------------------------------------------------------------------
def test_the_app_flies_as_the_integer_model_in_a_noise_free_world(host_app, exported):
    """Frames, units, signs and motor order: with every noise off, the observation the app
    builds from state_t and sensorData_t is the sim's to float32 rounding, every action is
    the integer model's on it, and the commands it flies are the model's."""
    app, task = host_app
    b = bundle_mod.load(exported / "policy_bundle.json")
    params = b.int_params()
    t = closed_loop_task(task, "nominal", 10.0)
    quiet = {f: 0.0 for f in ("noise_position", "noise_velocity", "noise_attitude", "noise_gyro")}
    t = t.replace(**quiet, gyro_bias=0.0)
    fresh(app)
    flyer = cl.AppFlyer(
        app,
        t,
        cl.Motors.of(t, cl.thrust_of(t), 0.0),
        t.latency_steps[1],
        lambda o: ref.act(params, o),
    )
    got = paced.fly(flyer, t, 10, 11, start=flyer.start)
    want = paced.fly(paced.fixed_answer(lambda o: ref.act(params, o), flyer.delay), t, 10, 11)
    # The fixture's untrained actor tips over within ~25 steps (the app cuts its motors
    # past 80 deg of tilt, the sim ends the episode at 90).
    assert flyer.stats.differing == 0 and flyer.stats.policy_calls > 150
    assert flyer.stats.obs_diff_max < 1e-5
    # Before chaos amplifies float rounding, and while the app flies (not cut off by its
    # tilt limit): the commands are the model's.
    q = want.attitudes[:30, 0]
    upright = 1 - 2 * (q[:, 1] ** 2 + q[:, 2] ** 2) > np.cos(np.radians(75))
    assert upright[:10].all()
    np.testing.assert_allclose(
        got.commands[:30, 0][upright], want.commands[:30, 0][upright], atol=1e-4
    )


def test_the_closed_loop_report(exported, tmp_path):
    """The command's whole path on a short row set: both builds fly, the integer and float
    policies beside them, the report and plot written."""
    opts = CrazyflieOptions(
        artifacts=exported, reports=tmp_path, episodes=4, rows="short", build_dir=tmp_path / "b"
    )
    report = run(opts, log=lambda line: None)
    assert set(report["rows"]) == {"nominal", "combined worst case"}
    assert report["steps_differing_from_integer_model"] == 0
    for r in report["rows"].values():
        assert r["app_sim"]["steps"] > 0 and r["app_vehicle"]["thrust_max_n"] == 0.12
        assert {"integer", "float"} <= set(r)
    assert (tmp_path / "crazyflie.json").is_file() and (tmp_path / "crazyflie.png").is_file()


def test_the_command_without_an_app_says_what_to_run(tmp_path, exported):
    out = tmp_path / "artifacts"
    shutil.copytree(exported, out)
    shutil.rmtree(out / "crazyflie")
    r = cli(
        "crazyflie",
        "--artifacts",
        str(out),
        "--reports",
        str(tmp_path / "r"),
        module="firmware_bridge",
    )
    assert r.returncode == 2 and "make crazyflie" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
