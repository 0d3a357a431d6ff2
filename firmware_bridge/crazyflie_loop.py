"""The Crazyflie app flown in the simulator, without a Crazyflie.

The app ``python -m export --target crazyflie`` wrote (its own C files, unchanged) is
compiled for the host against firmware/crazyflie_shim/ - a shim of the few firmware
types and calls it uses, declared from the firmware's documented API, whose stabiliser
part (shim_app.c) the project's firmware runs the app with too - into one shared
library. The sim plays the flight stack: each control step it hands the app the
estimate in the firmware's units and frames (state_t position and velocity, the attitude
quaternion with its scalar in .w, sensorData_t gyro in deg/s, an absolute position
setpoint at the target) for as many 1 kHz stabiliser ticks as one control period holds;
the app decimates to the policy's rate itself, and its control_t forces go back to the
sim's motors through the firmware's force mode (a force is a fraction of THRUST_MAX per
motor; below THRUST_MIN a motor gets nothing: crazyflie-firmware src/drivers/src/motors.c,
src/platform/interface/platform_defaults_cf2.h). The app's forces are clipped to [0, 1]
(qp_flight.h), so a motor saturates at THRUST_MAX as on the vehicle.

Each episode starts with the setpoint disabled for one control period, then enabled: the
app's own activation path resets its kept blocks. Episodes start in the air, so the
app's spin-up is set to 0 ms through its parameter.
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sim import observation
from sim.tasks import TaskConfig

SHIM = Path(__file__).resolve().parent.parent / "firmware" / "crazyflie_shim"
SHIM_SOURCES = ("shim_app.c", "shim_host.c")  # shared with the firmware, host-only
MODE_ABS, MODE_DISABLE = 1, 0
CONTROL_MODE_FORCE = 2  # stabilizer_types.h controlModeForce
CFLAGS = ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-Wdouble-promotion"]
# No fused multiply-add, so the host's floats are the board's bit for bit (the firmware
# builds with it too). x86-64 without -mfma has no FMA to fuse into; this keeps it so
# under -march=native or on a host that has one.
HOST_FLAGS = ["-O2", "-fPIC", "-shared", "-ffp-contract=off"]
ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-Os"]


class CrazyflieLoopError(RuntimeError):
    """The app could not be built or started (one line)."""


def app_sources(app: Path) -> list[Path]:
    sources = sorted((Path(app) / "src").glob("*.c"))
    if not sources:
        raise CrazyflieLoopError(
            f"{app} holds no app sources (src/*.c): run `make crazyflie` (python -m export "
            "--target crazyflie) first"
        )
    return sources


def _run(cmd: list[str], what: str) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise CrazyflieLoopError(f"{cmd[0]} not found: it is needed to {what}") from None
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["no output"])[0]
        raise CrazyflieLoopError(f"{what} failed: {first}")


def build_host_library(app: Path, thrust_max: float, out_dir: Path, cc: str = "cc") -> Path:
    """The app's C files and the shim's host side as one shared library, built with the
    firmware's warnings as errors (its non-debug builds use -Werror -Wdouble-promotion).
    Named after what went into it, so a rebuild happens only when something changed."""
    app = Path(app)
    sources = [*app_sources(app), *(SHIM / name for name in SHIM_SOURCES)]
    flags = [*CFLAGS, *HOST_FLAGS, f"-DQP_FLIGHT_THRUST_MAX={thrust_max!r}f"]
    digest = hashlib.sha256(" ".join(flags).encode())
    for path in sorted([*sources, *(app / "src").glob("*.h"), *SHIM.glob("*.h")]):
        digest.update(path.name.encode() + path.read_bytes())
    lib = Path(out_dir) / f"libqpcf-{digest.hexdigest()[:16]}.so"
    if lib.is_file():
        return lib
    lib.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=lib.parent) as tmp:
        built = Path(tmp) / lib.name
        cmd = [cc, *flags, "-I", str(SHIM), "-I", str(app / "src"), *map(str, sources), "-lm"]
        _run([*cmd, "-o", str(built)], "building the Crazyflie app for the host")
        built.replace(lib)
    return lib


def build_arm_objects(app: Path, out_dir: Path, gcc: str = "arm-none-eabi-gcc") -> dict:
    """The app's C files compiled for the Crazyflie's Cortex-M4 (its FPU flags, -Os) with
    warnings as errors; the sizes arm-none-eabi-size gives for each object."""
    app, out_dir = Path(app), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for src in app_sources(app):
        obj = out_dir / (src.stem + ".o")
        cmd = [gcc, *CFLAGS, *ARM_FLAGS, "-ffunction-sections", "-fdata-sections"]
        cmd += ["-I", str(SHIM), "-I", str(app / "src"), "-c", str(src), "-o", str(obj)]
        _run(cmd, f"compiling {src.name} for the Cortex-M4")
        size = shutil.which(gcc.replace("gcc", "size")) or "arm-none-eabi-size"
        out = subprocess.run([size, str(obj)], capture_output=True, text=True, check=True)
        text, data, bss = (int(v) for v in out.stdout.splitlines()[1].split()[:3])
        sizes[src.name] = {"text": text, "data": data, "bss": bss}
    return sizes


class HostApp:
    """The app in the shared library: the firmware's start-up, ticks, log and params."""

    def __init__(self, lib: Path):
        self.lib = ctypes.CDLL(str(lib))
        f32p = np.ctypeslib.ndpointer(np.float32, flags="C_CONTIGUOUS")
        L = self.lib
        L.shim_start.argtypes, L.shim_start.restype = [ctypes.c_int], ctypes.c_int
        L.shim_ticks.argtypes = [
            ctypes.c_int,
            f32p,
            f32p,
            f32p,
            f32p,
            f32p,
            ctypes.c_int,
            ctypes.c_uint32,
            f32p,
        ]
        L.shim_ticks.restype = ctypes.c_int
        L.shim_obs_dim.restype = ctypes.c_int
        for name in ("shim_observation", "shim_action"):
            getattr(L, name).restype = ctypes.POINTER(ctypes.c_float)
        L.shim_policy_calls.restype = ctypes.c_uint32
        L.shim_mode.restype = L.shim_fault.restype = ctypes.c_int
        L.shim_log_get.argtypes = [
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_double),
        ]
        L.shim_param_set.argtypes = [
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_double,
            ctypes.POINTER(ctypes.c_double),
        ]
        self.obs_dim = L.shim_obs_dim()
        self.forces = np.zeros(4, np.float32)

    def start(self) -> bool:
        """controllerOutOfTreeInit, then controllerOutOfTreeTest's answer."""
        return bool(self.lib.shim_start(1))

    def ticks(
        self, n, position, velocity, quat_wxyz, gyro_dps, target, z_mode=MODE_ABS, age_ms=0
    ) -> int:
        def f32(x):
            return np.ascontiguousarray(x, dtype=np.float32)

        return self.lib.shim_ticks(
            n,
            f32(position),
            f32(velocity),
            f32(quat_wxyz),
            f32(gyro_dps),
            f32(target),
            z_mode,
            age_ms,
            self.forces,
        )

    def observation(self) -> np.ndarray:
        return np.ctypeslib.as_array(self.lib.shim_observation(), (self.obs_dim,)).copy()

    def action(self) -> np.ndarray:
        return np.ctypeslib.as_array(self.lib.shim_action(), (4,)).copy()

    @property
    def policy_calls(self) -> int:
        return self.lib.shim_policy_calls()

    @property
    def mode(self) -> int:
        return self.lib.shim_mode()

    @property
    def fault(self) -> int:
        return self.lib.shim_fault()

    def log(self, group: str, name: str) -> float:
        value = ctypes.c_double()
        if self.lib.shim_log_get(group.encode(), name.encode(), ctypes.byref(value)) != 0:
            raise KeyError(f"the app logs no {group}.{name}")
        return value.value

    def set_param(self, group: str, name: str, value: float) -> float:
        """Sets it; returns what it holds now (an integer parameter keeps its type's)."""
        now = ctypes.c_double()
        found = self.lib.shim_param_set(
            group.encode(), name.encode(), float(value), ctypes.byref(now)
        )
        if found != 0:
            raise KeyError(f"the app has no parameter {group}.{name}")
        return now.value


@dataclass(frozen=True)
class Motors:
    """What the Crazyflie's force mode does with normalizedForces, as the sim's action:
    thrust = force x thrust_max per motor, nothing below thrust_min, and the rotor speed
    of that static thrust in the airframe's [min, max] as [-1, 1]."""

    thrust_max: float
    thrust_min: float
    thrust_coefficient: float
    speed_min: float
    speed_max: float

    @classmethod
    def of(cls, task: TaskConfig, thrust_max: float, thrust_min: float) -> Motors:
        body = task.body()
        return cls(
            thrust_max,
            thrust_min,
            body.thrust_coefficient,
            body.rotor_speed_min,
            body.rotor_speed_max,
        )

    def action(self, forces: np.ndarray) -> np.ndarray:
        thrust = np.clip(forces.astype(np.float64), 0.0, 1.0) * self.thrust_max
        thrust[thrust < self.thrust_min] = 0.0
        speed = np.sqrt(thrust / self.thrust_coefficient)
        a = 2.0 * (speed - self.speed_min) / (self.speed_max - self.speed_min) - 1.0
        return np.clip(a, -1.0, 1.0).astype(np.float32)


def quaternion_of(r: np.ndarray) -> np.ndarray:
    """(w, x, y, z) of the rotation nearest a 3x3 matrix (a noisy estimate's matrix is
    not quite orthonormal): the eigenvector of Bar-Itzhack's symmetric 4x4 matrix."""
    k = (
        np.array(
            [
                [
                    r[0, 0] - r[1, 1] - r[2, 2],
                    r[1, 0] + r[0, 1],
                    r[2, 0] + r[0, 2],
                    r[2, 1] - r[1, 2],
                ],
                [
                    r[1, 0] + r[0, 1],
                    r[1, 1] - r[0, 0] - r[2, 2],
                    r[2, 1] + r[1, 2],
                    r[0, 2] - r[2, 0],
                ],
                [
                    r[2, 0] + r[0, 2],
                    r[2, 1] + r[1, 2],
                    r[2, 2] - r[0, 0] - r[1, 1],
                    r[1, 0] - r[0, 1],
                ],
                [
                    r[2, 1] - r[1, 2],
                    r[0, 2] - r[2, 0],
                    r[1, 0] - r[0, 1],
                    r[0, 0] + r[1, 1] + r[2, 2],
                ],
            ]
        )
        / 3.0
    )
    _, vecs = np.linalg.eigh(k)
    x, y, z, w = vecs[:, -1]
    q = np.array([w, x, y, z])
    return q if w >= 0 else -q


@dataclass
class AppStats:
    steps: int = 0
    differing: int = 0  # steps whose action differs from the model's on the app's observation
    obs_diff_max: float = 0.0  # largest |app input - sim input| over the estimate and gyro
    saturated: int = 0  # motor commands at 0 or 1
    faults: int = 0
    policy_calls: int = 0


@dataclass
class AppFlyer:
    """The app as a ``paced.Answer`` for one task: ``start`` at each episode, then one
    call per control step with the sim's observation."""

    app: HostApp
    task: TaskConfig
    motors: Motors
    delay: int  # physics steps the forces reach the motors late (the row's latency)
    check: object = None  # the integer reference: obs (n, dim) -> actions
    stats: AppStats = field(default_factory=AppStats)

    def __post_init__(self):
        layout = self.task.obs_layout
        self.cols = {
            d["name"]: slice(d["offset"], d["offset"] + d["size"])
            for d in observation.describe(layout)
        }
        self.wire = observation.wire_columns(layout)
        self.ticks = 1000 // int(self.task.control_hz)
        self.target = np.asarray(self.task.target, dtype=np.float64)

    def start(self) -> None:
        zeros, level = np.zeros(3), np.array([1.0, 0.0, 0.0, 0.0])
        self.app.ticks(self.ticks, zeros, zeros, level, zeros, zeros, z_mode=MODE_DISABLE)

    def __call__(self, obs: np.ndarray):
        c = self.cols
        position = self.target + obs[c["position_error"]]
        quat = quaternion_of(obs[c["rotation_matrix"]].astype(np.float64).reshape(3, 3))
        gyro_dps = np.degrees(obs[c["body_rates"]].astype(np.float64))
        calls = self.app.policy_calls
        mode = self.app.ticks(self.ticks, position, obs[c["velocity"]], quat, gyro_dps, self.target)
        if mode != CONTROL_MODE_FORCE:
            raise CrazyflieLoopError(f"the app set controlMode {mode}, not force mode (2)")
        s = self.stats
        s.steps += 1
        if self.app.policy_calls != calls + 1:
            s.faults += 1  # no policy call this period: the app stopped the motors
        else:
            s.policy_calls += 1
            app_obs = self.app.observation()
            d = np.abs(app_obs[: len(self.wire)] - obs[self.wire]).max()
            s.obs_diff_max = max(s.obs_diff_max, float(d))
            if self.check is not None:
                want = np.asarray(self.check(app_obs[None, :]), np.float32)[0]
                s.differing += int(not np.array_equal(want, self.app.action()))
        forces = self.app.forces.copy()
        s.saturated += int(np.sum((forces <= 0.0) | (forces >= 1.0)))
        return self.motors.action(forces), self.delay


def thrust_of(task: TaskConfig) -> float:
    """One rotor's static thrust at full speed in the sim's airframe, N."""
    body = task.body()
    return body.thrust_coefficient * body.rotor_speed_max**2


def hover_force(task: TaskConfig, thrust_max: float) -> float:
    body = task.body()
    return body.mass * body.gravity / 4 / thrust_max
