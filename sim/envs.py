"""Gymnasium environments over ``QuadBatch``: one vehicle, or N in one compiled call.

Actions are 4 numbers in [-1, 1] (values outside are clipped; non-finite values raise
a ValueError naming the environment index). At an episode's end ``info["is_success"]``
says whether the task's success condition held (see sim.tasks.TaskConfig).

``render_mode`` "rgb_array" makes ``render()`` return a (480, 480, 3) uint8 frame of a 3D
view (sim/render.py); "human" shows it in a window at the control rate after every reset
and step. With None (the default) nothing of rendering is imported or kept.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from sim import layout as L
from sim.batch import QuadBatch
from sim.render import RENDER_MODES, Viewer, check_render_mode
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

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 100}

    def __init__(
        self, task: str | TaskConfig = "hover", render_mode: str | None = None, **overrides
    ):
        self.render_mode = check_render_mode(render_mode)
        self.task = _task(task, overrides)
        self.metadata = {**self.metadata, "render_fps": self.task.control_hz}
        self.observation_space, self.action_space = _spaces(self.task)
        self.batch = QuadBatch(self.task, 1, parallel=False)
        self._action = np.zeros((1, ACT_DIM))
        self._viewer = Viewer(self.task, render_mode, self.task.name) if render_mode else None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.batch.seed(seed)
        self.batch.reset()
        if self._viewer is not None:
            self._viewer.restart(self.batch.state[0, L.POS : L.POS + 3])
            if self.render_mode == "human":
                self._viewer.render(self.batch, 0)
        return self.batch.obs[0].copy(), {}

    def step(self, action):
        self._action[0] = action
        b = self.batch
        b.step(self._action)
        terminated, truncated = bool(b.terminated[0]), bool(b.truncated[0])
        info = {"is_success": bool(b.success[0])} if terminated or truncated else {}
        if self._viewer is not None:
            self._viewer.trail.add(b.state[0, L.POS : L.POS + 3])
            if self.render_mode == "human":
                self._viewer.render(b, 0)
        return b.obs[0].copy(), float(b.reward[0]), terminated, truncated, info

    def render(self):
        """rgb_array: the current frame, (480, 480, 3) uint8. human: None (the window is
        updated by reset and step). No render mode: a warning, None."""
        return _frame(self._viewer, self.render_mode, self.batch, 0, "an environment")

    def close(self):
        if self._viewer is not None:
            self._viewer.close()


def _frame(viewer, mode: str | None, batch: QuadBatch, index: int, what: str):
    """render() of either environment: environment ``index``'s frame (rgb_array), None
    (human: the window follows reset and step), or a warning without a render mode."""
    if viewer is None:
        gym.logger.warn(
            f"render() called on {what} made without a render_mode; allowed: "
            f"{', '.join(RENDER_MODES)} (e.g. gym.make(..., render_mode='rgb_array'))"
        )
        return None
    return None if mode == "human" else viewer.render(batch, index)


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

    With a ``render_mode``, ``render()`` shows one environment, ``render_index`` (a
    single frame, not one per environment: drawing thousands of vehicles per step would
    cost more than stepping them).
    """

    metadata = {
        "autoreset_mode": AutoresetMode.SAME_STEP,
        "render_modes": list(RENDER_MODES),
        "render_fps": 100,
    }

    def __init__(
        self,
        task: str | TaskConfig = "hover",
        num_envs: int = 256,
        seed: int | None = None,
        privileged: bool = False,
        render_mode: str | None = None,
        render_index: int = 0,
        **overrides,
    ):
        """``privileged``: also return the ended episodes' privileged state in
        ``info["final_privileged"]`` (for an asymmetric critic)."""
        self.render_mode = check_render_mode(render_mode)
        self.task = _task(task, overrides)
        self.keep_privileged = privileged
        self.batch = QuadBatch(self.task, num_envs, seed=seed)
        self.num_envs = self.batch.n
        self.single_observation_space, self.single_action_space = _spaces(self.task)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, self.num_envs
        )
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.metadata = {**self.metadata, "render_fps": self.task.control_hz}
        if not (isinstance(render_index, int) and 0 <= render_index < self.num_envs):
            raise ValueError(
                f"render_index={render_index!r}; allowed: an integer from 0 to {self.num_envs - 1}"
            )
        self.render_index = render_index
        self._viewer = (
            Viewer(self.task, render_mode, f"{self.task.name}, env {render_index}")
            if render_mode
            else None
        )

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.batch.seed(seed)
        self.batch.reset()
        self._restart_view()
        return self.batch.obs.copy(), {}

    def _restart_view(self) -> None:
        if self._viewer is not None:
            self._viewer.restart(self.batch.state[self.render_index, L.POS : L.POS + 3])
            if self.render_mode == "human":
                self._viewer.render(self.batch, self.render_index)

    def render(self):
        """rgb_array: the frame of environment ``render_index``; human: None (the window
        follows reset and step). No render mode: a warning, None."""
        return _frame(
            self._viewer, self.render_mode, self.batch, self.render_index, "a vector environment"
        )

    def close_extras(self, **kwargs):
        if self._viewer is not None:
            self._viewer.close()

    def set_task(self, task: TaskConfig) -> None:
        """The next stage of a curriculum: ``QuadBatch.set_task``."""
        self.batch.set_task(task)
        self.task = self.batch.task

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
        if self._viewer is not None:
            if done[self.render_index]:  # the shown vehicle starts a new episode
                self._restart_view()
            else:
                self._viewer.trail.add(b.state[self.render_index, L.POS : L.POS + 3])
                if self.render_mode == "human":
                    self._viewer.render(b, self.render_index)
        return obs, b.reward.copy(), b.terminated.copy(), b.truncated.copy(), info
