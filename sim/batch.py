"""N quadrotors flying one task, stepped in one compiled call.

``QuadBatch`` is the engine under both Gymnasium environments: it holds the float64
states, maps actions to rotor commands, integrates, and computes observations, rewards,
termination, truncation and success. Resets are drawn with numpy from a seeded
Generator, so the same seed gives the same episodes.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from sim import layout as L
from sim import tasks as T
from sim.dynamics import CHUNK, _rk4_env, quat_to_matrix
from sim.tasks import OBS_DIM, TaskConfig


def _observe(s, target, lo, span, out):
    """One observation row (float32) from one state row; layout in sim.tasks.OBS_LAYOUT."""
    for k in range(3):
        out[k] = s[L.POS + k] - target[k]
    quat_to_matrix(s[L.QUAT : L.QUAT + 4], out[3:12])
    for k in range(3):
        out[12 + k] = s[L.VEL + k]
        out[15 + k] = s[L.OMEGA + k]
    for k in range(4):
        out[18 + k] = 2.0 * (s[L.ROTOR + k] - lo) / span - 1.0


_observe_jit = njit(cache=True, inline="always")(_observe)


@njit(cache=True, parallel=True)
def observe_parallel(state, target, lo, span, obs):
    for e in prange(state.shape[0]):
        _observe_jit(state[e], target, lo, span, obs[e])


@njit(cache=True)
def observe_serial(state, target, lo, span, obs):
    for e in range(state.shape[0]):
        _observe_jit(state[e], target, lo, span, obs[e])


@njit(cache=True, inline="always")
def _task_range(
    start,
    stop,
    state,
    actions,
    params,
    frame,
    tp,
    target,
    lo,
    span,
    dt,
    n_sub,
    floor_z,
    steps,
    max_steps,
    window_steps,
    window_err,
    obs,
    reward,
    terminated,
    truncated,
    success,
):
    """Apply actions, integrate one control step, and score it, for environments
    start..stop-1."""
    k1 = np.empty(L.N_STATE)
    k2 = np.empty(L.N_STATE)
    k3 = np.empty(L.N_STATE)
    k4 = np.empty(L.N_STATE)
    tmp = np.empty(L.N_STATE)
    cmd = np.empty(4)
    for e in range(start, stop):
        s = state[e]
        act_cost = 0.0
        for i in range(4):
            a = actions[e, i]
            a = -1.0 if a < -1.0 else (1.0 if a > 1.0 else a)
            cmd[i] = lo + 0.5 * (a + 1.0) * span
            d = a - tp[T.T_HOVER_A]
            act_cost += d * d
        _rk4_env(s, cmd, params[e], frame, dt, n_sub, floor_z, k1, k2, k3, k4, tmp)
        steps[e] += 1
        o = obs[e]
        _observe_jit(s, target, lo, span, o)
        err = math.sqrt(o[0] * o[0] + o[1] * o[1] + o[2] * o[2])
        speed = math.sqrt(s[3] * s[3] + s[4] * s[4] + s[5] * s[5])
        rate = math.sqrt(s[10] * s[10] + s[11] * s[11] + s[12] * s[12])
        up = o[11]  # R22: world-z component of the body z axis
        finite = True
        for j in range(L.N_STATE):
            if not math.isfinite(s[j]):
                finite = False
        term = (not finite) or err > tp[T.T_MAX_ERR] or up < tp[T.T_MIN_UP]
        if steps[e] > max_steps - window_steps and err > window_err[e]:
            window_err[e] = err
        trunc = (not term) and steps[e] >= max_steps
        r = (
            tp[T.T_ALIVE]
            + tp[T.T_PREC] * math.exp(-err / tp[T.T_PREC_SCALE])
            - tp[T.T_POS] * err
            - tp[T.T_VEL] * speed
            - tp[T.T_RATE] * rate
            - tp[T.T_TILT] * (1.0 - up)
            - tp[T.T_ACT] * act_cost
        )
        if term:
            r -= tp[T.T_TERM]
        reward[e] = r if finite else -tp[T.T_TERM]
        terminated[e] = term
        truncated[e] = trunc
        success[e] = trunc and window_err[e] < tp[T.T_SUCCESS_R]


# The vector env uses the parallel entry point, the single env the serial one (no thread
# start-up). Two functions, not two builds of one: numba's cache would key those alike.
@njit(cache=True, parallel=True)
def task_step_parallel(
    state,
    actions,
    params,
    frame,
    tp,
    target,
    lo,
    span,
    dt,
    n_sub,
    floor_z,
    steps,
    max_steps,
    window_steps,
    window_err,
    obs,
    reward,
    terminated,
    truncated,
    success,
):
    n = state.shape[0]
    for c in prange((n + CHUNK - 1) // CHUNK):
        _task_range(
            c * CHUNK,
            min(n, (c + 1) * CHUNK),
            state,
            actions,
            params,
            frame,
            tp,
            target,
            lo,
            span,
            dt,
            n_sub,
            floor_z,
            steps,
            max_steps,
            window_steps,
            window_err,
            obs,
            reward,
            terminated,
            truncated,
            success,
        )


@njit(cache=True)
def task_step_serial(
    state,
    actions,
    params,
    frame,
    tp,
    target,
    lo,
    span,
    dt,
    n_sub,
    floor_z,
    steps,
    max_steps,
    window_steps,
    window_err,
    obs,
    reward,
    terminated,
    truncated,
    success,
):
    _task_range(
        0,
        state.shape[0],
        state,
        actions,
        params,
        frame,
        tp,
        target,
        lo,
        span,
        dt,
        n_sub,
        floor_z,
        steps,
        max_steps,
        window_steps,
        window_err,
        obs,
        reward,
        terminated,
        truncated,
        success,
    )


class QuadBatch:
    """State and stepping of ``num_envs`` environments of one task."""

    def __init__(
        self, task: TaskConfig, num_envs: int, seed: int | None = None, parallel: bool | None = None
    ):
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs={num_envs!r}; allowed: an integer >= 1")
        self.task = task.validate()
        self.n = int(num_envs)
        body = task.body()
        self.body = body
        self.frame = body.frame()
        self.base_params = body.params_row()
        self.params = np.tile(self.base_params, (self.n, 1))
        self.tp = task.packed()
        self.target = np.asarray(task.target, dtype=np.float64)
        self.lo = float(body.rotor_speed_min)
        self.span = float(body.rotor_speed_max - body.rotor_speed_min)
        self.hover_speed = body.hover_rotor_speed()
        self.state = np.zeros((self.n, L.N_STATE))
        self.state[:, L.QUAT] = 1.0
        self.steps = np.zeros(self.n, dtype=np.int64)
        self.window_err = np.zeros(self.n)
        self.obs = np.zeros((self.n, OBS_DIM), dtype=np.float32)
        self.reward = np.zeros(self.n, dtype=np.float32)
        self.terminated = np.zeros(self.n, dtype=np.bool_)
        self.truncated = np.zeros(self.n, dtype=np.bool_)
        self.success = np.zeros(self.n, dtype=np.bool_)
        use_parallel = self.n >= 64 if parallel is None else parallel
        self._step = task_step_parallel if use_parallel else task_step_serial
        self._observe = observe_parallel if use_parallel else observe_serial
        self.rng = np.random.default_rng(seed)

    def seed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    # Resets ---------------------------------------------------------------------------
    def reset(self, idx: np.ndarray | None = None) -> None:
        """Draw new initial states (and airframe scalings) for the environments ``idx``."""
        idx = np.arange(self.n) if idx is None else np.asarray(idx)
        k = idx.size
        if k == 0:
            return
        t, rng = self.task, self.rng
        pos = self.target + np.asarray(t.start_offset) + _ball(rng, k, 3, t.init_position)
        pos[:, 2] = np.maximum(pos[:, 2], t.floor_z)
        s = np.zeros((k, L.N_STATE))
        s[:, L.POS : L.POS + 3] = pos
        s[:, L.VEL : L.VEL + 3] = _ball(rng, k, 3, t.init_speed)
        s[:, L.QUAT : L.QUAT + 4] = _tilted_quaternions(rng, k, math.radians(t.init_tilt_deg))
        s[:, L.OMEGA : L.OMEGA + 3] = _ball(rng, k, 3, t.init_rate)
        s[:, L.ROTOR : L.ROTOR + 4] = t.init_rotor * self.hover_speed
        self.state[idx] = s
        if t.randomise:
            p = np.tile(self.base_params, (k, 1))
            p[:, L.P_MASS] *= rng.uniform(*t.mass_scale, k)
            p[:, L.P_IXX : L.P_IZZ + 1] *= rng.uniform(*t.inertia_scale, (k, 1))
            p[:, L.P_KF] *= rng.uniform(*t.thrust_scale, k)
            p[:, L.P_TAU] *= rng.uniform(*t.motor_tau_scale, k)
            self.params[idx] = p
        self.steps[idx] = 0
        self.window_err[idx] = 0.0
        self.observe()

    def observe(self) -> np.ndarray:
        self._observe(self.state, self.target, self.lo, self.span, self.obs)
        return self.obs

    # Stepping ---------------------------------------------------------------------------
    def step(self, actions: np.ndarray) -> None:
        """One control step for all environments; results land in the output arrays."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.n, 4):
            raise ValueError(f"actions have shape {actions.shape}; expected ({self.n}, 4)")
        finite = np.isfinite(actions).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise ValueError(
                f"non-finite action for environment index {int(bad[0])} "
                f"({actions[bad[0]].tolist()}); {bad.size} environment(s) affected"
            )
        t = self.task
        self._step(
            self.state,
            actions,
            self.params,
            self.frame,
            self.tp,
            self.target,
            self.lo,
            self.span,
            t.dt,
            t.substeps,
            t.floor_z,
            self.steps,
            t.max_steps,
            t.window_steps,
            self.window_err,
            self.obs,
            self.reward,
            self.terminated,
            self.truncated,
            self.success,
        )

    def position_error(self) -> np.ndarray:
        return np.linalg.norm(self.state[:, L.POS : L.POS + 3] - self.target, axis=1)


def _ball(rng: np.random.Generator, k: int, dim: int, radius: float) -> np.ndarray:
    """Points drawn uniformly from the ball of ``radius`` (zeros when radius is 0)."""
    if radius == 0:
        return np.zeros((k, dim))
    v = rng.normal(size=(k, dim))
    v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return v * radius * rng.uniform(size=(k, 1)) ** (1.0 / dim)


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
