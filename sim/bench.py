"""Speed of the simulator: raw dynamics, the vector env step, and the single env."""

from __future__ import annotations

import time

import numpy as np

from sim import dynamics
from sim import layout as L
from sim.envs import QuadEnv, QuadVectorEnv
from sim.tasks import make_task

SIZES = (1, 256, 4096)


def _rate(fn, steps_per_call: int, seconds: float) -> float:
    fn()  # compile / warm up outside the timed region
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls * steps_per_call / elapsed


def raw_dynamics(n: int, task: str = "hover", seconds: float = 1.0) -> float:
    """Env-steps/s of the bare RK4 kernel (one control step = ``substeps`` RK4 steps)."""
    cfg = make_task(task)
    body = cfg.body()
    state = np.zeros((n, L.N_STATE))
    state[:, L.QUAT] = 1.0
    state[:, L.ROTOR : L.ROTOR + 4] = body.hover_rotor_speed()
    cmd = np.full((n, 4), body.hover_rotor_speed())
    params = np.tile(body.params_row(), (n, 1))
    frame = body.frame()
    kernel = dynamics.step if n >= 64 else dynamics.step_serial
    return _rate(
        lambda: kernel(state, cmd, params, frame, cfg.dt, cfg.substeps, cfg.floor_z), n, seconds
    )


def vector_env(n: int, task: str = "hover", seconds: float = 1.0) -> float:
    env = QuadVectorEnv(task, num_envs=n, seed=0)
    env.reset()
    actions = np.full((n, 4), env.batch.body.hover_action(), dtype=np.float32)
    return _rate(lambda: env.step(actions), n, seconds)


def single_env(task: str = "hover", seconds: float = 1.0) -> float:
    env = QuadEnv(task)
    env.reset(seed=0)
    action = np.full(4, env.batch.body.hover_action(), dtype=np.float32)

    def one():
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()

    return _rate(one, 1, seconds)


def run(task: str = "hover", seconds: float = 1.0) -> dict:
    return {
        "task": task,
        "raw_dynamics": {n: raw_dynamics(n, task, seconds) for n in SIZES},
        "vector_env": {n: vector_env(n, task, seconds) for n in SIZES},
        "single_env": single_env(task, seconds),
    }
