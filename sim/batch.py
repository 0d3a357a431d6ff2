"""N quadrotors flying one task, stepped in one compiled call.

``QuadBatch`` is the engine under both Gymnasium environments: it holds the float64
states, maps actions to rotor commands, delays them, integrates, and computes the
flight controller's (noisy) observations, rewards, termination, truncation and success.
Resets are drawn with numpy from a seeded Generator; the noise within an episode comes
from a per-environment counter-based generator (splitmix64), so the same seed gives the
same episodes whether the kernels run on one thread or many.

The kernels take the per-environment arrays as one tuple (``World``), the task's
constants as another, so every entry point lists them once.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from sim import layout as L
from sim import observation as OB
from sim import tasks as T
from sim.dynamics import CHUNK, quat_to_matrix, rk4_step, rotation_matrices
from sim.tasks import TaskConfig


class World(NamedTuple):
    """Every per-environment array the compiled step reads or writes."""

    state: np.ndarray  # (N, N_STATE) float64: the vehicle
    params: np.ndarray  # (N, N_PARAMS) float64: this episode's draws
    fc: np.ndarray  # (N, N_FC_FIXED + 4 * past_rows) float64: flight-controller side
    rng: np.ndarray  # (N,) uint64: splitmix64 state of each environment's noise
    steps: np.ndarray  # (N,) int64: control steps taken this episode
    window_err: np.ndarray  # (N,) float64: worst error inside the success window
    obs: np.ndarray  # (N, obs_dim) float32
    reward: np.ndarray  # (N,) float32
    terminated: np.ndarray  # (N,) bool
    truncated: np.ndarray  # (N,) bool
    success: np.ndarray  # (N,) bool


# Width of QuadBatch.privileged(): true state 3+3+9+3+4, draws 4+1+2+5+3+3+3+1.
PRIVILEGED_DIM = 44

# The fields a checkpoint must hold to continue a batch exactly.
SAVED = ("state", "params", "fc", "rng", "steps", "window_err", "obs")

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, inline="always")
def _uniform(rng, e):
    """splitmix64 (Steele, Lea and Flood 2014): the next number in (0, 1) of stream e."""
    z = rng[e] + _GOLDEN
    rng[e] = z
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    z = z ^ (z >> np.uint64(31))
    return (float(z >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always")
def _normals(rng, e, out, n):
    """``n`` (even) standard normal draws into ``out`` (Box-Muller, both of each pair)."""
    for k in range(0, n, 2):
        r = math.sqrt(-2.0 * math.log(_uniform(rng, e)))
        a = 2.0 * math.pi * _uniform(rng, e)
        out[k] = r * math.cos(a)
        out[k + 1] = r * math.sin(a)


@njit(cache=True)
def _observe(w, e, tp, oo, target, scratch, out):
    """The flight controller's observation of environment e (layout: TaskConfig.obs_layout):
    the true state seen through the estimator's noise, plus what the board keeps itself.
    ``scratch`` holds 16 numbers."""
    s, p, fc = w.state[e], w.params[e], w.fc[e]
    sp, sv, sa, sg = tp[T.T_NOISE_POS], tp[T.T_NOISE_VEL], tp[T.T_NOISE_ATT], tp[T.T_NOISE_GYRO]
    q, z = scratch[0:4], scratch[4:16]  # z: unit normals for position, velocity, attitude, gyro
    if sp > 0.0 or sv > 0.0 or sa > 0.0 or sg > 0.0:
        _normals(w.rng, e, z, 12)
    else:
        z[:] = 0.0
    o = oo[OB.O_POS]
    for k in range(3):
        out[o + k] = s[L.POS + k] - target[k] + sp * z[k]
    for k in range(4):
        q[k] = s[L.QUAT + k]
    if sa > 0.0:  # attitude error: a small rotation about the body axes, q (x) dq
        ax, ay, az = sa * z[6], sa * z[7], sa * z[8]
        angle = math.sqrt(ax * ax + ay * ay + az * az)
        c = math.cos(0.5 * angle)
        f = math.sin(0.5 * angle) / angle if angle > 1e-12 else 0.5
        dw, dx, dy, dz = c, f * ax, f * ay, f * az
        qw, qx, qy, qz = q[0], q[1], q[2], q[3]
        q[0] = qw * dw - qx * dx - qy * dy - qz * dz
        q[1] = qw * dx + qx * dw + qy * dz - qz * dy
        q[2] = qw * dy - qx * dz + qy * dw + qz * dx
        q[3] = qw * dz + qx * dy - qy * dx + qz * dw
    o = oo[OB.O_ROT]
    quat_to_matrix(q, out[o : o + 9])
    o = oo[OB.O_VEL]
    for k in range(3):
        out[o + k] = s[L.VEL + k] + sv * z[3 + k]
    o = oo[OB.O_RATES]
    for k in range(3):
        out[o + k] = s[L.OMEGA + k] + p[L.P_GYRO_BIAS + k] + sg * z[9 + k]
    o = oo[OB.O_ROTORS]
    if o >= 0:
        for k in range(4):
            out[o + k] = 2.0 * (s[L.ROTOR + k] - tp[T.T_LO]) / tp[T.T_SPAN] - 1.0
    o = oo[OB.O_INTEGRAL]
    if o >= 0:
        for k in range(3):
            out[o + k] = fc[L.FC_INTEGRAL + k]
    o = oo[OB.O_PAST]
    if o >= 0:
        for k in range(4 * oo[OB.O_NPAST]):
            out[o + k] = fc[L.FC_PAST + k]


@njit(cache=True, inline="always")
def _board_update(fc, o, tp, oo):
    """The blocks the board keeps, updated with this step's observation ``o`` and
    written into it (sim/observation.py, steps 2-3): the position-error integral in
    float32, as export/kernel/qp_state.h computes it. The past actions are already
    in ``fc`` (the step put the newest command in row 0)."""
    pos = oo[OB.O_POS]
    dt = np.float32(tp[T.T_INT_DT])
    lim = np.float32(tp[T.T_INT_LIMIT])
    for k in range(3):
        v = np.float32(fc[L.FC_INTEGRAL + k]) + o[pos + k] * dt
        if v < -lim:
            v = -lim
        elif v > lim:
            v = lim
        fc[L.FC_INTEGRAL + k] = v
    at = oo[OB.O_INTEGRAL]
    if at >= 0:
        for k in range(3):
            o[at + k] = fc[L.FC_INTEGRAL + k]


@njit(cache=True)
def _step_env(w, e, actions, frame, tp, oo, target, work, cmd, scratch):
    """Apply env e's action, integrate one control step, observe and score it."""
    s, p, fc = w.state[e], w.params[e], w.fc[e]
    lo, span = tp[T.T_LO], tp[T.T_SPAN]
    n_sub = int(tp[T.T_NSUB])
    rows = (fc.shape[0] - L.N_FC_FIXED) // 4
    # The newest command goes to row 0 of the past commands; older ones move down.
    for j in range(4 * rows - 1, 3, -1):
        fc[L.FC_PAST + j] = fc[L.FC_PAST + j - 4]
    act_cost = 0.0
    rate_cost = 0.0
    for i in range(4):
        a = actions[e, i]
        a = -1.0 if a < -1.0 else (1.0 if a > 1.0 else a)
        d = a - fc[L.FC_PAST + i]
        rate_cost += d * d
        fc[L.FC_PAST + i] = a
        d = a - tp[T.T_HOVER_A]
        act_cost += d * d
    # Latency: a command reaches the motors `delay` physics steps (a real number) after it
    # was issued, so at time t (in physics steps since this control step began) the
    # command in force is the one of ceil((delay - t) / n_sub) control steps ago. That
    # changes once per control step, at t = delay mod n_sub; a physics step holding that
    # instant is split there, so latency is not rounded to the physics step.
    delay = p[L.P_DELAY]
    switch = delay - n_sub * math.floor(delay / n_sub)
    gust = fc[L.FC_GUST : L.FC_GUST + 3]
    for j in range(n_sub):
        start, stop = float(j), float(j + 1)
        cut = switch if start < switch < stop else stop
        while start < stop:
            mid = 0.5 * (start + cut)
            late = 0 if delay <= mid else int(math.ceil((delay - mid) / n_sub))
            for i in range(4):
                cmd[i] = lo + 0.5 * (fc[L.FC_PAST + 4 * late + i] + 1.0) * span
            rk4_step(s, cmd, p, frame, gust, (cut - start) * tp[T.T_DT], tp[T.T_FLOOR], work)
            start, cut = cut, stop
    if tp[T.T_GUST_STD] > 0.0:  # Ornstein-Uhlenbeck gust, exact discretisation
        a = tp[T.T_GUST_DECAY]
        sd = tp[T.T_GUST_STD] * p[L.P_MASS] * math.sqrt(1.0 - a * a)
        z = scratch[4:8]
        _normals(w.rng, e, z, 4)
        for k in range(3):
            gust[k] = a * gust[k] + sd * z[k]
    w.steps[e] += 1
    o = w.obs[e]
    _observe(w, e, tp, oo, target, scratch, o)
    _board_update(fc, o, tp, oo)
    # Reward, termination and success judge the true state, not the observation.
    ex = s[L.POS] - target[0]
    ey = s[L.POS + 1] - target[1]
    ez = s[L.POS + 2] - target[2]
    err = math.sqrt(ex * ex + ey * ey + ez * ez)
    vi, ri, qx, qy = L.VEL, L.OMEGA, L.QUAT + 1, L.QUAT + 2
    speed = math.sqrt(s[vi] * s[vi] + s[vi + 1] * s[vi + 1] + s[vi + 2] * s[vi + 2])
    rate = math.sqrt(s[ri] * s[ri] + s[ri + 1] * s[ri + 1] + s[ri + 2] * s[ri + 2])
    up = 1.0 - 2.0 * (s[qx] * s[qx] + s[qy] * s[qy])  # R22: world-z component of body z
    finite = True
    for j in range(L.N_STATE):
        if not math.isfinite(s[j]):
            finite = False
    term = (not finite) or err > tp[T.T_MAX_ERR] or up < tp[T.T_MIN_UP]
    max_steps = int(tp[T.T_MAX_STEPS])
    if w.steps[e] > max_steps - int(tp[T.T_WINDOW]) and err > w.window_err[e]:
        w.window_err[e] = err
    trunc = (not term) and w.steps[e] >= max_steps
    r = (
        tp[T.T_ALIVE]
        + tp[T.T_PREC] * math.exp(-err / tp[T.T_PREC_SCALE])
        - tp[T.T_POS] * err
        - tp[T.T_VEL] * speed
        - tp[T.T_RATE] * rate
        - tp[T.T_TILT] * (1.0 - up)
        - tp[T.T_ACT] * act_cost
        - tp[T.T_ACT_RATE] * rate_cost
    )
    if term:
        r -= tp[T.T_TERM]
    w.reward[e] = r if finite else -tp[T.T_TERM]
    w.terminated[e] = term
    w.truncated[e] = trunc
    w.success[e] = trunc and w.window_err[e] < tp[T.T_SUCCESS_R]


# Not inlined: inlined into the prange loop, numba 0.68 dropped its writes to the 1-D
# arrays of the World tuple (steps, reward, ...) while keeping those to the 2-D ones.
@njit(cache=True)
def _step_range(w, actions, frame, tp, oo, target, start, stop):
    work = np.empty((5, L.N_STATE))
    cmd = np.empty(4)
    scratch = np.empty(16)
    for e in range(start, stop):
        _step_env(w, e, actions, frame, tp, oo, target, work, cmd, scratch)


# The vector env uses the parallel entry point, the single env the serial one (no thread
# start-up). Two functions, not two builds of one: numba's cache would key those alike.
@njit(cache=True, parallel=True)
def task_step_parallel(w, actions, frame, tp, oo, target):
    n = w.state.shape[0]
    for c in prange((n + CHUNK - 1) // CHUNK):
        _step_range(w, actions, frame, tp, oo, target, c * CHUNK, min(n, (c + 1) * CHUNK))


@njit(cache=True)
def task_step_serial(w, actions, frame, tp, oo, target):
    _step_range(w, actions, frame, tp, oo, target, 0, w.state.shape[0])


@njit(cache=True)
def observe_rows(w, idx, tp, oo, target, board_step):
    """Observe the environments ``idx`` into ``w.obs``; with ``board_step`` (after a
    reset) the board's blocks take the first step of sim/observation.py too."""
    scratch = np.empty(16)
    for e in idx:
        _observe(w, e, tp, oo, target, scratch, w.obs[e])
        if board_step:
            _board_update(w.fc[e], w.obs[e], tp, oo)


class QuadBatch:
    """State and stepping of ``num_envs`` environments of one task."""

    def __init__(
        self, task: TaskConfig, num_envs: int, seed: int | None = None, parallel: bool | None = None
    ):
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs={num_envs!r}; allowed: an integer >= 1")
        self.task = task.validate()
        n = self.n = int(num_envs)
        body = task.body()
        self.body = body
        self.frame = body.frame()
        self.base_params = body.params_row()
        self.tp = task.packed()
        self.oo = task.obs_offsets()
        self.target = np.asarray(task.target, dtype=np.float64)
        self.lo = float(body.rotor_speed_min)
        self.span = float(body.rotor_speed_max - body.rotor_speed_min)
        self.hover_speed = body.hover_rotor_speed()
        state = np.zeros((n, L.N_STATE))
        state[:, L.QUAT] = 1.0
        self.world = World(
            state=state,
            params=np.tile(self.base_params, (n, 1)),
            fc=np.zeros((n, L.N_FC_FIXED + 4 * task.past_rows)),
            rng=np.zeros(n, dtype=np.uint64),
            steps=np.zeros(n, dtype=np.int64),
            window_err=np.zeros(n),
            obs=np.zeros((n, task.obs_dim), dtype=np.float32),
            reward=np.zeros(n, dtype=np.float32),
            terminated=np.zeros(n, dtype=np.bool_),
            truncated=np.zeros(n, dtype=np.bool_),
            success=np.zeros(n, dtype=np.bool_),
        )
        use_parallel = n >= 64 if parallel is None else parallel
        self._step = task_step_parallel if use_parallel else task_step_serial
        self.rng = np.random.default_rng(seed)

    # The arrays by name, for callers that read them.
    state = property(lambda self: self.world.state)
    params = property(lambda self: self.world.params)
    fc = property(lambda self: self.world.fc)
    steps = property(lambda self: self.world.steps)
    window_err = property(lambda self: self.world.window_err)
    obs = property(lambda self: self.world.obs)
    reward = property(lambda self: self.world.reward)
    terminated = property(lambda self: self.world.terminated)
    truncated = property(lambda self: self.world.truncated)
    success = property(lambda self: self.world.success)

    def seed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def set_task(self, task: TaskConfig) -> None:
        """Fly ``task`` from now on (a curriculum's next stage): episodes that start from
        here draw its world, and its reward weights and sensor noise apply from the next
        step; episodes under way keep the vehicle they drew. Only ``STAGE_FIELDS`` may
        differ from the current task."""
        task = task.validate()
        changed = [
            f.name
            for f in dataclasses.fields(task)
            if f.name not in T.STAGE_FIELDS and getattr(task, f.name) != getattr(self.task, f.name)
        ]
        if changed:
            raise ValueError(
                f"set_task: {', '.join(changed)} cannot change during a run; allowed: "
                f"{', '.join(T.STAGE_FIELDS)}"
            )
        if task.past_rows != self.task.past_rows:
            raise ValueError(
                f"set_task: latency_s={task.latency_s} keeps {task.past_rows} past commands, "
                f"this run {self.task.past_rows}; allowed: a latency range within "
                f"{self.task.action_history} control steps"
            )
        self.task = task
        self.tp = task.packed()

    # Resets ---------------------------------------------------------------------------
    def reset(self, idx: np.ndarray | None = None) -> None:
        """Draw new initial states, and this episode's world, for the environments ``idx``."""
        idx = np.arange(self.n) if idx is None else np.asarray(idx, dtype=np.int64)
        k = idx.size
        if k == 0:
            return
        t, rng, w = self.task, self.rng, self.world
        pos = self.target + np.asarray(t.start_offset) + _ball(rng, k, 3, t.init_position)
        pos[:, 2] = np.maximum(pos[:, 2], t.floor_z)
        s = np.zeros((k, L.N_STATE))
        s[:, L.POS : L.POS + 3] = pos
        s[:, L.VEL : L.VEL + 3] = _ball(rng, k, 3, t.init_speed)
        s[:, L.QUAT : L.QUAT + 4] = _tilted_quaternions(rng, k, math.radians(t.init_tilt_deg))
        s[:, L.OMEGA : L.OMEGA + 3] = _ball(rng, k, 3, t.init_rate)
        s[:, L.ROTOR : L.ROTOR + 4] = t.init_rotor * self.hover_speed
        w.state[idx] = s
        w.params[idx] = self._draw_params(k) if t.randomise else self.base_params
        fc = np.zeros((k, w.fc.shape[1]))
        fc[:, L.FC_PAST :] = t.initial_action()
        gust_sd = self.tp[T.T_GUST_STD] * w.params[idx, L.P_MASS]
        fc[:, L.FC_GUST : L.FC_GUST + 3] = rng.normal(size=(k, 3)) * gust_sd[:, None]
        w.fc[idx] = fc
        w.rng[idx] = rng.integers(0, 2**63, size=k, dtype=np.uint64)
        w.steps[idx] = 0
        w.window_err[idx] = 0.0
        observe_rows(w, idx, self.tp, self.oo, self.target, True)

    def _draw_params(self, k: int) -> np.ndarray:
        """This episode's vehicle, disturbances, sensor bias and latency (randomise=True)."""
        t, rng = self.task, self.rng
        p = np.tile(self.base_params, (k, 1))
        p[:, L.P_MASS] *= rng.uniform(*t.mass_scale, k)
        p[:, L.P_IXX : L.P_IYY + 1] *= rng.uniform(*t.inertia_scale, (k, 1))
        p[:, L.P_IZZ] *= rng.uniform(*t.inertia_scale, k)
        p[:, L.P_KF] *= rng.uniform(*t.thrust_scale, k)
        p[:, L.P_TAU_UP] *= rng.uniform(*t.motor_tau_up_scale, k)
        p[:, L.P_TAU_DOWN] *= rng.uniform(*t.motor_tau_down_scale, k)
        m = t.motor_mismatch
        p[:, L.P_MOTOR : L.P_MOTOR + 4] = rng.uniform(1.0 - m, 1.0 + m, (k, 4))
        p[:, L.P_ARM] = rng.uniform(*t.arm_scale, k)
        weight = p[:, L.P_MASS] * self.body.gravity
        p[:, L.P_FORCE : L.P_FORCE + 3] = (
            _sphere(rng, k) * (t.disturbance_force * weight * rng.uniform(size=k))[:, None]
        )
        # A centre of mass r = (x, y, 0) off the thrust axis: gravity's moment about the
        # thrust line at hover, r x (0, 0, -m g) in the body frame (torque = (-y, x, 0) m g).
        r = _ball(rng, k, 2, t.com_offset)
        p[:, L.P_TORQUE] = -r[:, 1] * weight
        p[:, L.P_TORQUE + 1] = r[:, 0] * weight
        b = t.gyro_bias * t.noise_scale
        p[:, L.P_GYRO_BIAS : L.P_GYRO_BIAS + 3] = rng.uniform(-b, b, (k, 3))
        lo, hi = t.latency_ms
        # (ms * physics_hz) / 1000 is exact for whole physics steps: no sliver steps
        p[:, L.P_DELAY] = rng.integers(lo, hi + 1, size=k) * t.physics_hz / 1000.0
        return p

    def observe(self) -> np.ndarray:
        """Observe every environment afresh (new noise draws; the board's blocks as
        they stand, not stepped)."""
        observe_rows(self.world, np.arange(self.n), self.tp, self.oo, self.target, False)
        return self.obs

    # Stepping ---------------------------------------------------------------------------
    def step(self, actions: np.ndarray) -> None:
        """One control step for all environments; results land in the output arrays."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.n, T.ACT_DIM):
            raise ValueError(f"actions have shape {actions.shape}; expected ({self.n}, 4)")
        finite = np.isfinite(actions).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise ValueError(
                f"non-finite action for environment index {int(bad[0])} "
                f"({actions[bad[0]].tolist()}); {bad.size} environment(s) affected"
            )
        self._step(self.world, actions, self.frame, self.tp, self.oo, self.target)

    def position_error(self, idx: np.ndarray | None = None) -> np.ndarray:
        rows = slice(None) if idx is None else idx
        return np.linalg.norm(self.state[rows, L.POS : L.POS + 3] - self.target, axis=1)

    def privileged(self, idx: np.ndarray | None = None) -> np.ndarray:
        """What the simulator knows and the board does not (PRIVILEGED_DIM per row, about
        unit scale): the true state and this episode's draws. For an asymmetric critic
        during training only; no policy ever sees it. ``idx``: only these rows."""
        rows = slice(None) if idx is None else idx
        s, p, fc, body = self.state[rows], self.params[rows], self.fc[rows], self.body
        base = self.base_params
        weight = p[:, L.P_MASS : L.P_MASS + 1] * body.gravity
        rotors = 2.0 * (s[:, L.ROTOR : L.ROTOR + 4] - self.lo) / self.span - 1.0
        quat = s[:, L.QUAT : L.QUAT + 4]
        parts = [
            s[:, L.POS : L.POS + 3] - self.target,
            s[:, L.VEL : L.VEL + 3],
            rotation_matrices(quat).reshape(-1, 9),
            s[:, L.OMEGA : L.OMEGA + 3] / 5.0,
            rotors,
            np.log(p[:, L.P_MASS : L.P_IZZ + 1] / base[L.P_MASS : L.P_IZZ + 1]),
            np.log(p[:, L.P_KF : L.P_KF + 1] / base[L.P_KF]),
            np.log(p[:, L.P_TAU_UP : L.P_TAU_DOWN + 1] / base[L.P_TAU_UP : L.P_TAU_DOWN + 1]),
            10.0 * (p[:, L.P_MOTOR : L.P_ARM + 1] - 1.0),
            10.0 * (p[:, L.P_FORCE : L.P_FORCE + 3] + fc[:, L.FC_GUST : L.FC_GUST + 3]) / weight,
            1000.0 * p[:, L.P_TORQUE : L.P_TORQUE + 3] / weight,
            50.0 * p[:, L.P_GYRO_BIAS : L.P_GYRO_BIAS + 3],
            p[:, L.P_DELAY : L.P_DELAY + 1] / max(self.task.substeps, 1),
        ]
        return np.concatenate(parts, axis=1).astype(np.float32)

    # Saving -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Copies of everything needed to continue exactly (numpy arrays, the rng state)."""
        out = {name: getattr(self.world, name).copy() for name in SAVED}
        out["reset_rng"] = self.rng.bit_generator.state
        return out

    def load_state_dict(self, saved: dict) -> None:
        for name in SAVED:
            target = getattr(self.world, name)
            value = np.asarray(saved[name])
            if value.shape != target.shape:
                raise ValueError(
                    f"saved sim array {name} has shape {value.shape}; this task needs "
                    f"{target.shape}"
                )
            target[...] = value
        self.rng.bit_generator.state = saved["reset_rng"]


def _ball(rng: np.random.Generator, k: int, dim: int, radius: float) -> np.ndarray:
    """Points drawn uniformly from the ball of ``radius`` (zeros when radius is 0)."""
    if radius == 0:
        return np.zeros((k, dim))
    v = rng.normal(size=(k, dim))
    v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return v * radius * rng.uniform(size=(k, 1)) ** (1.0 / dim)


def _sphere(rng: np.random.Generator, k: int) -> np.ndarray:
    """Unit vectors in uniformly random directions."""
    v = rng.normal(size=(k, 3))
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def _tilted_quaternions(rng: np.random.Generator, k: int, max_tilt: float) -> np.ndarray:
    """Uniform yaw, then a tilt of up to ``max_tilt`` about a random horizontal axis."""
    yaw = rng.uniform(-math.pi, math.pi, k)
    tilt = rng.uniform(0.0, max_tilt, k)
    axis = rng.uniform(-math.pi, math.pi, k)
    q_yaw = np.stack([np.cos(yaw / 2), np.zeros(k), np.zeros(k), np.sin(yaw / 2)], axis=1)
    s = np.sin(tilt / 2)
    q_tilt = np.stack([np.cos(tilt / 2), s * np.cos(axis), s * np.sin(axis), np.zeros(k)], axis=1)
    return _quat_mul(q_tilt, q_yaw)


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = a.T
    bw, bx, by, bz = b.T
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=1,
    )
