"""Tasks: what the vehicle is asked to do, what it observes, and how it is scored.

A task is a frozen ``TaskConfig``; the presets ``hover`` and ``takeoff`` are the two the
project trains on. Which blocks a task observes, and what each means, is declared in
sim/observation.py; a task's fields only turn blocks on.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from sim import observation
from sim.airframes import Airframe, get_airframe

ACT_DIM = 4
ACTION_MEANING = (
    "4 rotor-speed commands in [-1, 1], mapped linearly to [rotor_speed_min, rotor_speed_max]; "
    "values outside [-1, 1] are clipped"
)

# Packed task constants for the compiled step (index constants).
T_ALIVE, T_POS, T_VEL, T_RATE, T_TILT, T_ACT, T_TERM = range(7)
T_MAX_ERR, T_MIN_UP, T_SUCCESS_R, T_HOVER_A, T_PREC, T_PREC_SCALE = range(7, 13)
T_LO, T_SPAN, T_DT, T_NSUB, T_FLOOR, T_MAX_STEPS, T_WINDOW = range(13, 20)
T_NOISE_POS, T_NOISE_VEL, T_NOISE_ATT, T_NOISE_GYRO = range(20, 24)
T_GUST_STD, T_GUST_DECAY, T_INT_DT, T_INT_LIMIT, T_ACT_RATE = range(24, 29)
N_TASK = 29


@dataclass(frozen=True)
class TaskConfig:
    """One task. Every field can be overridden; ``validate`` names any bad field."""

    name: str = "hover"
    airframe: str = "crazyflie"
    control_hz: float = 100.0  # policy rate
    physics_hz: float = 100.0  # RK4 rate; a whole multiple of control_hz
    episode_seconds: float = 5.0
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # Initial state, drawn uniformly: start = target + start_offset + ball(init_position).
    start_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    init_position: float = 0.5  # m, radius of the position ball
    init_tilt_deg: float = 30.0  # tilt from level about a random horizontal axis; yaw free
    init_speed: float = 0.5  # m/s, radius of the velocity ball
    init_rate: float = 1.0  # rad/s, radius of the body-rate ball
    init_rotor: float = 1.0  # initial rotor speeds as a fraction of hover speed
    floor_z: float = -math.inf  # ground height; -inf for none
    # Termination: too far from the target, or flipped (body z below this world-z component).
    max_position_error: float = 1.0
    min_up: float = 0.0
    # Success at the episode's end: survived and within success_radius throughout the window.
    success_radius: float = 0.1
    success_window_s: float = 1.0
    # Reward per step: alive + precision*exp(-|e|/precision_scale) - pos*|e| - vel*|v|
    # - rate*|w| - tilt*(1-R22) - act*|a-a_hover|^2 - action_rate*|a-a_prev|^2. The
    # exponential term is steep near the target, where the linear one alone gives the
    # learner too little to resolve: at weight 1 single-critic DDPG settled 0.1-0.4 m off
    # target on every seed tried; at 5 it reached 95% hover success on five seeds of
    # five (docs/benchmarks.md).
    reward_alive: float = 1.0
    reward_precision: float = 5.0
    precision_scale: float = 0.1
    reward_position: float = 1.0
    reward_velocity: float = 0.1
    reward_rate: float = 0.02
    reward_tilt: float = 0.2
    reward_action: float = 0.05
    reward_action_rate: float = 0.0  # x |a_t - a_(t-1)|^2: calm commands survive latency
    termination_penalty: float = 10.0
    # What the policy observes (obs_layout): measured rotor speeds (boards with RPM
    # telemetry only), the integral of the position error, and its own past actions.
    observe_rotor_speeds: bool = True
    observe_integral: bool = False
    integral_limit: float = 0.5  # m s, per axis
    action_history: int = 0  # control steps of past actions observed
    # The reality gap (docs/sim.md, "The world the policy meets"). With randomise=False
    # every episode flies the nominal airframe in still air, observed exactly and commanded
    # without delay. With randomise=True each episode draws, uniformly within each range:
    # the vehicle (factors on the airframe's nominal values) ...
    randomise: bool = False
    mass_scale: tuple[float, float] = (0.9, 1.1)
    inertia_scale: tuple[float, float] = (0.9, 1.1)  # one draw for x and y, one for z
    thrust_scale: tuple[float, float] = (0.95, 1.05)
    motor_mismatch: float = 0.0  # each rotor's thrust coefficient x (1 +- this)
    motor_tau_up_scale: tuple[float, float] = (0.8, 1.2)  # lag while speeding up
    motor_tau_down_scale: tuple[float, float] = (0.8, 1.2)  # lag while slowing down
    arm_scale: tuple[float, float] = (1.0, 1.0)
    # ... the world around it (fractions of the episode's weight m g; offset in m) ...
    disturbance_force: float = 0.0  # constant force, uniform direction, |F| <= this
    com_offset: float = 0.0  # horizontal centre-of-mass offset (torque m g x r), |r| <= this
    gust_force: float = 0.0  # gust force std per axis (Ornstein-Uhlenbeck)
    gust_time_s: float = 0.5  # gust correlation time
    # ... and the flight controller's view: white noise (std) on each estimate, a constant
    # gyro bias (uniform per axis, |b| <= gyro_bias), all times noise_scale; and the delay
    # between a command and the motors (whole milliseconds, drawn per episode).
    noise_position: float = 0.0  # m
    noise_velocity: float = 0.0  # m/s
    noise_attitude: float = 0.0  # rad, a small rotation about each body axis
    noise_gyro: float = 0.0  # rad/s
    gyro_bias: float = 0.0  # rad/s
    noise_scale: float = 1.0
    latency_s: tuple[float, float] = (0.0, 0.0)
    airframe_overrides: dict = field(default_factory=dict)

    # Derived quantities -------------------------------------------------------------
    @property
    def substeps(self) -> int:
        return int(round(self.physics_hz / self.control_hz))

    @property
    def dt(self) -> float:
        return 1.0 / self.physics_hz

    @property
    def max_steps(self) -> int:
        return int(round(self.episode_seconds * self.control_hz))

    @property
    def window_steps(self) -> int:
        return int(round(self.success_window_s * self.control_hz))

    @property
    def latency_ms(self) -> tuple[int, int]:
        """The latency range in whole milliseconds, the grid it is drawn on per episode
        (0, 0 when not randomised)."""
        if not self.randomise:
            return (0, 0)
        lo, hi = self.latency_s
        return (int(round(lo * 1000)), int(round(hi * 1000)))

    @property
    def latency_steps(self) -> tuple[float, float]:
        """The latency range in physics steps; a fraction of one is simulated exactly (the
        step is split where the command changes)."""
        lo, hi = self.latency_ms
        return (lo * self.physics_hz / 1000.0, hi * self.physics_hz / 1000.0)

    @property
    def past_rows(self) -> int:
        """Past commands the step keeps: the observed history and those still in flight."""
        most_late = math.ceil(self.latency_ms[1] * self.control_hz / 1000.0 - 1e-9)
        return max(self.action_history, most_late + 1)

    @property
    def obs_layout(self) -> tuple[tuple[str, int, str], ...]:
        return obs_layout(self)

    @property
    def obs_dim(self) -> int:
        return sum(size for _, size, _ in self.obs_layout)

    def initial_action(self) -> float:
        """The normalised command of the initial rotor speed (what past actions start at)."""
        body = self.body()
        speed = self.init_rotor * body.hover_rotor_speed()
        span = body.rotor_speed_max - body.rotor_speed_min
        return float(np.clip(2.0 * (speed - body.rotor_speed_min) / span - 1.0, -1.0, 1.0))

    def body(self) -> Airframe:
        return (
            get_airframe(self.airframe).replace(**self.airframe_overrides)
            if self.airframe_overrides
            else get_airframe(self.airframe)
        )

    def validate(self) -> TaskConfig:
        def bad(name: str, allowed: str) -> ValueError:
            return ValueError(
                f"task {self.name!r}: {name}={getattr(self, name)!r}; allowed: {allowed}"
            )

        def positive(name: str) -> None:
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise bad(name, "a finite number > 0")

        def non_negative(name: str) -> None:
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise bad(name, "a finite number >= 0")

        for name in (
            "control_hz",
            "physics_hz",
            "episode_seconds",
            "max_position_error",
            "success_radius",
            "success_window_s",
            "precision_scale",
            "integral_limit",
            "gust_time_s",
            "noise_scale",
        ):
            positive(name)
        for name in (
            "init_position",
            "init_tilt_deg",
            "init_speed",
            "init_rate",
            "init_rotor",
            *REWARD_WEIGHTS,
            "disturbance_force",
            "com_offset",
            "gust_force",
            "noise_position",
            "noise_velocity",
            "noise_attitude",
            "noise_gyro",
            "gyro_bias",
        ):
            non_negative(name)
        if not 0 <= self.motor_mismatch < 1:
            raise bad("motor_mismatch", "a number in [0, 1)")
        for name in ("observe_rotor_speeds", "observe_integral", "randomise"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "True or False")
        h = self.action_history
        if not (isinstance(h, int) and not isinstance(h, bool) and 0 <= h <= 8):
            raise bad("action_history", "an integer from 0 to 8 (control steps)")
        ratio = self.physics_hz / self.control_hz
        if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
            raise bad("physics_hz", f"a whole multiple (1, 2, ...) of control_hz={self.control_hz}")
        if self.window_steps > self.max_steps:
            raise bad("success_window_s", f"at most episode_seconds={self.episode_seconds}")
        if self.init_tilt_deg >= 180:
            raise bad("init_tilt_deg", "a tilt in [0, 180) degrees")
        if not -1.0 <= self.min_up < 1.0:
            raise bad("min_up", "a number in [-1, 1)")
        for name in ("target", "start_offset"):
            v = getattr(self, name)
            if len(v) != 3 or not all(math.isfinite(x) for x in v):
                raise bad(name, "three finite numbers (x, y, z) in m")
        for name in SCALE_RANGES:
            v = getattr(self, name)
            if not (_pair(v) and 0 < v[0] <= v[1] and math.isfinite(v[1])):
                raise bad(name, "(low, high) with 0 < low <= high")
        lat = self.latency_s
        if not (_pair(lat) and 0 <= lat[0] <= lat[1] <= 1.0):
            raise bad("latency_s", "(low, high) in seconds with 0 <= low <= high <= 1")
        for x in lat:
            if abs(x * 1000 - round(x * 1000)) > 1e-6:
                raise bad("latency_s", "whole milliseconds (e.g. 0.005 for 5 ms)")
        if math.isnan(self.floor_z):
            raise bad("floor_z", "a number, or -inf for no ground")
        body = self.body()  # unknown airframe or bad overrides raise here, naming the field
        if self.randomise:
            # The weakest vehicle the ranges draw must still lift itself, or some episodes
            # cannot be flown at all (every motor weak by the mismatch, the heaviest mass).
            weakest = (
                body.hover_thrust_ratio()
                * self.thrust_scale[0]
                * (1.0 - self.motor_mismatch)
                / self.mass_scale[1]
            )
            if weakest <= 1.0:
                raise bad(
                    "thrust_scale",
                    f"a range whose weakest draw lifts the vehicle: thrust x{self.thrust_scale[0]}"
                    f" with mass x{self.mass_scale[1]} and motors {self.motor_mismatch:.0%}"
                    f" weak gives the {self.airframe} airframe thrust-to-weight {weakest:.2f}"
                    " (must be > 1)",
                )
        return self

    def replace(self, **changes) -> TaskConfig:
        known = {f.name for f in dataclasses.fields(self)}
        for key in changes:
            if key not in known:
                raise ValueError(
                    f"task {self.name!r}: unknown field {key!r}; allowed: "
                    f"{', '.join(sorted(known))}"
                )
        return dataclasses.replace(self, **changes).validate()

    def packed(self) -> np.ndarray:
        """Reward, termination, timing and observation-noise constants for the compiled
        step (the noise is zero unless randomise is on)."""
        body = self.body()
        tp = np.empty(N_TASK)
        tp[T_ALIVE] = self.reward_alive
        tp[T_POS] = self.reward_position
        tp[T_VEL] = self.reward_velocity
        tp[T_RATE] = self.reward_rate
        tp[T_TILT] = self.reward_tilt
        tp[T_ACT] = self.reward_action
        tp[T_TERM] = self.termination_penalty
        tp[T_MAX_ERR] = self.max_position_error
        tp[T_MIN_UP] = self.min_up
        tp[T_SUCCESS_R] = self.success_radius
        tp[T_HOVER_A] = body.hover_action()
        tp[T_PREC] = self.reward_precision
        tp[T_PREC_SCALE] = self.precision_scale
        tp[T_LO] = body.rotor_speed_min
        tp[T_SPAN] = body.rotor_speed_max - body.rotor_speed_min
        tp[T_DT] = self.dt
        tp[T_NSUB] = self.substeps
        tp[T_FLOOR] = self.floor_z
        tp[T_MAX_STEPS] = self.max_steps
        tp[T_WINDOW] = self.window_steps
        noise = self.noise_scale if self.randomise else 0.0
        tp[T_NOISE_POS] = noise * self.noise_position
        tp[T_NOISE_VEL] = noise * self.noise_velocity
        tp[T_NOISE_ATT] = noise * self.noise_attitude
        tp[T_NOISE_GYRO] = noise * self.noise_gyro
        tp[T_GUST_STD] = (self.gust_force if self.randomise else 0.0) * body.gravity
        tp[T_GUST_DECAY] = math.exp(-1.0 / (self.control_hz * self.gust_time_s))
        tp[T_INT_DT] = 1.0 / self.control_hz
        tp[T_INT_LIMIT] = self.integral_limit
        tp[T_ACT_RATE] = self.reward_action_rate
        return tp

    def obs_offsets(self) -> np.ndarray:
        """Where each block starts in the observation, for the compiled step
        (sim/observation.py: ``offsets``)."""
        return np.asarray(observation.offsets(self), dtype=np.int64)


REWARD_WEIGHTS = (
    "reward_alive",
    "reward_precision",
    "reward_position",
    "reward_velocity",
    "reward_rate",
    "reward_tilt",
    "reward_action",
    "reward_action_rate",
    "termination_penalty",
)

SCALE_RANGES = (
    "mass_scale",
    "inertia_scale",
    "thrust_scale",
    "motor_tau_up_scale",
    "motor_tau_down_scale",
    "arm_scale",
)

# What may change between the episodes of one training run (a curriculum's stages): the
# world's ranges, the starts and the reward weights. Everything else (rates, airframe,
# target, observation) is fixed for a run: the arrays and the observation depend on it.
STAGE_FIELDS = (
    *SCALE_RANGES,
    "motor_mismatch",
    "disturbance_force",
    "com_offset",
    "gust_force",
    "noise_position",
    "noise_velocity",
    "noise_attitude",
    "noise_gyro",
    "gyro_bias",
    "noise_scale",
    "latency_s",
    "init_position",
    "init_tilt_deg",
    "init_speed",
    "init_rate",
    *REWARD_WEIGHTS,
)


def _pair(v) -> bool:
    return (
        isinstance(v, (tuple, list))
        and len(v) == 2
        and all(isinstance(x, (int, float)) and math.isfinite(x) for x in v)
    )


def obs_layout(task: TaskConfig) -> tuple[tuple[str, int, str], ...]:
    """(name, size, meaning) of each observed block, in order (sim/observation.py)."""
    return observation.layout(task)


# The nominal hover task: what the project trained on before the reality gap was modelled
# (measured rotor speeds, no memory, an ideal world). Kept by name for comparison.
HOVER_NOMINAL = TaskConfig(name="hover-nominal")

# The deployable hover task: what a Crazyflie-class board can observe, in a world drawn
# per episode around the nominal one. Every range and its source: docs/sim.md.
HOVER = TaskConfig(
    name="hover",
    # Physics at 200 Hz under 100 Hz control: the motors resolve within a control period
    # and a late command lands at its own millisecond (a physics step is split there).
    # 500 Hz learned no better on a tuning seed (88% vs 91%) and costs 2.5x the RK4 steps.
    physics_hz=200.0,
    observe_rotor_speeds=False,
    observe_integral=True,
    # 8 past commands: a command up to 20 ms late lands two periods after it was chosen,
    # and with 4 the tuning seeds flew 15 ms late in 0% (docs/benchmarks.md runs E-O).
    action_history=8,
    randomise=True,
    # Thrust-to-weight from 1.40 (weak motors, heavy vehicle) to 2.31 around the
    # airframe's 1.81: the Crazyflie 2.1 has about 1.7 at its firmware's 29 g.
    mass_scale=(0.9, 1.1),
    inertia_scale=(0.8, 4.0),
    thrust_scale=(0.85, 1.15),
    motor_mismatch=0.05,
    motor_tau_up_scale=(0.33, 1.33),
    motor_tau_down_scale=(0.5, 2.0),
    arm_scale=(0.9, 1.1),
    disturbance_force=0.1,
    com_offset=0.001,
    gust_force=0.03,
    noise_position=0.002,
    noise_velocity=0.01,
    noise_attitude=0.005,
    noise_gyro=0.003,
    gyro_bias=0.0175,
    # Drawn per episode on a 1 ms grid: a link's delay is not a whole control period.
    latency_s=(0.0, 0.02),
    # Calm commands: a policy that changes its mind every step oscillates once its
    # commands arrive late. 5x the default body-rate penalty: with 0.02 the tuning seeds
    # spun in yaw (gyro RMS 3-12 rad/s) and learned more slowly.
    reward_action_rate=1.0,
    reward_rate=0.1,
)

TAKEOFF = TaskConfig(
    name="takeoff",
    airframe="udacity",
    control_hz=50.0,
    physics_hz=100.0,
    episode_seconds=5.0,
    target=(0.0, 0.0, 10.0),
    start_offset=(0.0, 0.0, -10.0),  # on the ground, 10 m below the target
    init_position=0.5,
    init_tilt_deg=5.0,
    init_speed=0.0,
    init_rate=0.0,
    init_rotor=0.0,
    floor_z=0.0,
    max_position_error=15.0,
    success_radius=0.3,
    # A steeper pull than hover's at the 10 m scale, and the precision term widened to the
    # success radius: with 0.1 and 0.1 m, DDPG climbed but ended 1-3 m off (tried: 5 M
    # steps); with these and train's takeoff preset it reaches 90% in 4-5 minutes
    # (docs/benchmarks.md).
    precision_scale=0.5,
    reward_position=0.3,
    reward_velocity=0.02,
    reward_rate=0.02,
)

PRESETS = {"hover": HOVER, "hover-nominal": HOVER_NOMINAL, "takeoff": TAKEOFF}
OBS_LAYOUT = HOVER.obs_layout  # the default task's layout (docs, tests)
OBS_DIM = HOVER.obs_dim


def make_task(name: str = "hover", **overrides) -> TaskConfig:
    """The preset ``name`` with ``overrides`` applied and validated."""
    if name not in PRESETS:
        raise ValueError(f"task={name!r} is unknown; allowed: {', '.join(sorted(PRESETS))}")
    return PRESETS[name].replace(**overrides)
