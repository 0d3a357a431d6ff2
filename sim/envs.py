"""Gymnasium environments over ``QuadBatch``: one vehicle, or N in one compiled call.

Actions are 4 numbers in [-1, 1] (values outside are clipped; non-finite values raise
a ValueError naming the environment index). At an episode's end ``info["is_success"]``
says whether the task's success condition held (see sim.tasks.TaskConfig).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from sim.batch import QuadBatch
from sim.tasks import ACT_DIM, TaskConfig, make_task


def _spaces(task: TaskConfig) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    obs = gym.spaces.Box(-np.inf, np.inf, shape=(task.obs_dim,), dtype=np.float32)
    act = gym.spaces.Box(-1.0, 1.0, shape=(ACT_DIM,), dtype=np.float32)
    return obs, act


def _task(task: str | TaskConfig, overrides: dict) -> TaskConfig:
    if isinstance(task, TaskConfig):
        return task.replace(**overrides) if overrides else task.validate()
    return make_task(task, **overrides)


class QuadEnv(gym.Env):
    """A single quadrotor. ``QuadEnv("hover")`` or ``gym.make("quadpilot/Hover-v0")``."""

    metadata = {"render_modes": [], "render_fps": 100}

    def __init__(
        self, task: str | TaskConfig = "hover", render_mode: str | None = None, **overrides
    ):
        if render_mode is not None:
            raise ValueError(
                f"render_mode={render_mode!r}; allowed: None (use `python -m sim "
                f"fly` for trajectory plots)"
            )
        self.task = _task(task, overrides)
        self.metadata = {**self.metadata, "render_fps": self.task.control_hz}
        self.observation_space, self.action_space = _spaces(self.task)
        self.batch = QuadBatch(self.task, 1, parallel=False)
        self._action = np.zeros((1, ACT_DIM))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.batch.seed(seed)
        self.batch.reset()
        return self.batch.obs[0].copy(), {}

    def step(self, action):
        self._action[0] = action
        b = self.batch
        b.step(self._action)
        terminated, truncated = bool(b.terminated[0]), bool(b.truncated[0])
        info = {"is_success": bool(b.success[0])} if terminated or truncated else {}
        return b.obs[0].copy(), float(b.reward[0]), terminated, truncated, info


def _rows_only(values: np.ndarray, idx: np.ndarray, n: int) -> np.ndarray:
    """``values`` of rows ``idx`` in an (n, ...) array of zeros."""
    out = np.zeros((n, *values.shape[1:]), dtype=values.dtype)
    out[idx] = values
    return out


class QuadVectorEnv(VectorEnv):
    """``num_envs`` quadrotors stepped together, with same-step autoreset.

    When an environment's episode ends, the returned observation is already the first of
    its next episode; the last one is in ``info["final_obs"]`` (rows where
    ``info["_final_obs"]`` is True), with ``info["is_success"]`` likewise.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        task: str | TaskConfig = "hover",
        num_envs: int = 256,
        seed: int | None = None,
        privileged: bool = False,
        **overrides,
    ):
        """``privileged``: also return the ended episodes' privileged state in
        ``info["final_privileged"]`` (for an asymmetric critic)."""
        self.task = _task(task, overrides)
        self.keep_privileged = privileged
        self.batch = QuadBatch(self.task, num_envs, seed=seed)
        self.num_envs = self.batch.n
        self.single_observation_space, self.single_action_space = _spaces(self.task)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, self.num_envs
        )
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.render_mode = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.batch.seed(seed)
        self.batch.reset()
        return self.batch.obs.copy(), {}

    def privileged(self) -> np.ndarray:
        """(num_envs, PRIVILEGED_DIM): the true state and each episode's draws, for an
        asymmetric critic (``QuadBatch.privileged``); after an episode ended, the final one
        is in ``info["final_privileged"]`` when the env was made with privileged=True."""
        return self.batch.privileged()

    def step(self, actions):
        b = self.batch
        b.step(actions)
        done = b.terminated | b.truncated
        info: dict = {}
        obs = b.obs.copy()
        if done.any():
            idx = np.flatnonzero(done)
            info = {
                "final_obs": obs.copy(),
                "_final_obs": done.copy(),
                "is_success": b.success.copy(),
                "_is_success": done.copy(),
                "final_position_error": _rows_only(b.position_error(idx), idx, b.n),
            }
            if self.keep_privileged:
                info["final_privileged"] = _rows_only(b.privileged(idx), idx, b.n)
            b.reset(idx)
            obs[idx] = b.obs[idx]
        return obs, b.reward.copy(), b.terminated.copy(), b.truncated.copy(), info
