"""The exported policy as a Crazyflie out-of-tree controller app (docs/crazyflie.md).

    python -m export --target crazyflie [--out artifacts/]      (make crazyflie)

Reads what ``python -m export`` wrote into OUT (policy.h, qp_kernel.h, qp_state.h,
policy_bundle.json), checks that the Crazyflie can serve the policy, and writes
OUT/crazyflie/: the app's own files (export/crazyflie_app/, copied as they are), the
three headers, and qp_flight_config.h with the rate and rotor model the policy was
trained with, from the bundle. The app is assembled in a temporary directory beside OUT
and renamed into place, so a refused or failed run leaves the previous app untouched and
nothing half-written.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from export import bundle as bundle_mod
from export.header import KERNEL_NAME, STATE_NAME, c_float
from export.model import ExportError
from sim import observation
from sim.airframes import Airframe
from sim.contract.files import umask_now
from sim.contract.spec import PolicySpec

APP_SOURCE = Path(__file__).resolve().parent / "crazyflie_app"
APP_DIR = "crazyflie"
CONFIG_NAME = "qp_flight_config.h"
HEADER = "policy.h"  # the integer scheme: bit-exact with the numpy model
STABILIZER_HZ = 1000  # the Crazyflie's stabiliser loop (stabilizer_types.h RATE_MAIN_LOOP)

# What the firmware gives the app (state_t, sensorData_t) and which input block it fills.
SOURCES = {
    "position_error": "state_t position minus the target",
    "rotation_matrix": "state_t attitudeQuaternion",
    "velocity": "state_t velocity",
    "body_rates": "sensorData_t gyro",
}
# crazyflie-firmware power_distribution_quadrotor.c (its force/torque mixer's signs):
# M1 front right, M2 back right, M3 back left, M4 front left, body x forward and y left;
# yaw reaction -k f for M1 and M3, +k f for M2 and M4.
MOTOR_QUADRANTS = ((1, -1), (-1, -1), (-1, 1), (1, 1))
MOTOR_YAW_SIGNS = (-1.0, 1.0, -1.0, 1.0)
MOTOR_NAMES = ("front right", "back right", "back left", "front left")


class CrazyflieError(ExportError):
    """The app cannot be written for this policy (one line, naming why)."""


@dataclass(frozen=True)
class App:
    path: Path
    spec: PolicySpec
    model_hash: str
    data_hash: str
    control_hz: int


def check_policy(spec: PolicySpec) -> int:
    """The decimation from the stabiliser's 1 kHz; CrazyflieError naming what the
    Crazyflie cannot serve: an input block it has no source for, another rotor layout,
    a thrust model the force mapping does not reproduce, a rate 1 kHz does not divide."""
    for name, size in observation.wire_blocks(spec.obs_layout):
        if name not in SOURCES:
            raise CrazyflieError(
                f"the policy observes {name} ({size} numbers), which the Crazyflie's flight "
                f"stack has no source for; the app serves {', '.join(SOURCES)}"
            )
    wire = [name for name, _ in observation.wire_blocks(spec.obs_layout)]
    if wire != list(SOURCES):
        raise CrazyflieError(
            f"the policy's inputs come in the order {', '.join(wire)}; the app builds "
            f"{', '.join(SOURCES)}"
        )
    body = spec.task_config().body()
    check_airframe(body)
    hz = spec.control_hz
    if hz != int(hz) or STABILIZER_HZ % int(hz) != 0:
        raise CrazyflieError(
            f"the policy runs at {hz:g} Hz, which the stabiliser's {STABILIZER_HZ} Hz loop "
            "cannot decimate to (it must divide 1000)"
        )
    return int(hz)


def check_airframe(body: Airframe) -> None:
    """The sim's rotor i must be the Crazyflie's motor M(i+1), with its spin, and its
    thrust the static k_f w^2 the app's force mapping computes."""
    rotors = zip(body.rotor_positions, body.rotor_yaw_signs, strict=True)
    for i, ((x, y, _), sign) in enumerate(rotors):
        want = MOTOR_QUADRANTS[i]
        if (math.copysign(1, x), math.copysign(1, y)) != want or x == 0 or y == 0:
            raise CrazyflieError(
                f"airframe {body.name!r}: rotor {i + 1} sits at x={x:g}, y={y:g}; the "
                f"Crazyflie's motor M{i + 1} is {MOTOR_NAMES[i]} (an X layout, x forward, "
                "y left)"
            )
        if sign != MOTOR_YAW_SIGNS[i]:
            raise CrazyflieError(
                f"airframe {body.name!r}: rotor {i + 1} turns the other way from the "
                f"Crazyflie's M{i + 1} (yaw reaction sign {sign:+g}, the Crazyflie's "
                f"{MOTOR_YAW_SIGNS[i]:+g})"
            )
    if body.propeller_diameter != 0:
        raise CrazyflieError(
            f"airframe {body.name!r} has an inflow thrust model; the app maps actions to "
            "forces with static thrust k_f w^2 only"
        )


def config_header(body: Airframe, control_hz: int, model_hash: str) -> str:
    lines = [
        "/* qp_flight_config.h - written by python -m export --target crazyflie from",
        " * policy_bundle.json: the rate and rotor model the policy was trained with",
        f" * (model {model_hash[:16]}...). The action a in [-1, 1] commands rotor speed",
        " * min + (a + 1) / 2 * (max - min), in the airframe's unit, whose thrust is",
        " * QP_FLIGHT_THRUST_COEFF * speed^2 N (sim/airframes.py). */",
        "#ifndef QP_FLIGHT_CONFIG_H",
        "#define QP_FLIGHT_CONFIG_H",
        f'#define QP_FLIGHT_AIRFRAME "{body.name}"',
        f"#define QP_FLIGHT_CONTROL_HZ {control_hz}",
        f"#define QP_FLIGHT_SPEED_MIN {c_float(body.rotor_speed_min)} "
        f"/* {body.rotor_speed_unit} */",
        f"#define QP_FLIGHT_SPEED_MAX {c_float(body.rotor_speed_max)}",
        f"#define QP_FLIGHT_THRUST_COEFF {c_float(body.thrust_coefficient)}",
        f"#define QP_FLIGHT_MASS {c_float(body.mass)} /* kg, the nominal airframe's */",
        "#endif",
        "",
    ]
    return "\n".join(lines)


def app_data_hash(out: str | Path, b: bundle_mod.Bundle) -> str | None:
    """The data hash the app in ``out`` was written for when it is not the export's
    (``b``, the bundle in ``out``); None when they agree or there is no app. A BundleError
    for an unreadable app header."""
    policy = Path(out) / APP_DIR / "src" / "policy.h"
    if not policy.is_file():
        return None
    written_for = bundle_mod.header_identity(policy).data_hash
    return None if written_for == b.data_hash("int") else str(written_for)


def write_app(out: str | Path) -> App:
    """OUT/crazyflie/ around the policy exported into OUT."""
    out = Path(out)
    header = out / HEADER
    missing = [p.name for p in (header, out / KERNEL_NAME, out / STATE_NAME) if not p.is_file()]
    if missing:
        raise CrazyflieError(
            f"no exported policy in {out} ({', '.join(missing)} missing): run `make export` "
            "(python -m export) first"
        )
    try:
        b = bundle_mod.load(out / bundle_mod.BUNDLE_NAME)
        ident = bundle_mod.header_identity(header)
    except bundle_mod.BundleError as e:
        raise CrazyflieError(str(e)) from None
    if (ident.model_hash, ident.data_hash) != (b.model_hash, b.data_hash("int")):
        raise CrazyflieError(
            f"{header} (model {bundle_mod.short(ident.model_hash)}, data "
            f"{bundle_mod.short(ident.data_hash)}) is not the policy of {b.path} (model "
            f"{bundle_mod.short(b.model_hash)}, data {bundle_mod.short(b.data_hash('int'))}): "
            "export again"
        )
    control_hz = check_policy(b.spec)
    target = out / APP_DIR
    tmp = Path(tempfile.mkdtemp(prefix=f".{APP_DIR}.", suffix=".tmp", dir=out))
    try:
        shutil.copytree(APP_SOURCE, tmp, dirs_exist_ok=True)
        for name in (HEADER, KERNEL_NAME, STATE_NAME):
            shutil.copyfile(out / name, tmp / "src" / name)
        config = config_header(b.spec.task_config().body(), control_hz, b.model_hash)
        (tmp / "src" / CONFIG_NAME).write_text(config)
        tmp.chmod(0o777 & ~umask_now())  # mkdtemp's 0700 would hide it
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{APP_DIR}.old.", suffix=".tmp", dir=out))
            os.replace(target, old / APP_DIR)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return App(target, b.spec, b.model_hash, b.data_hash("int"), control_hz)
