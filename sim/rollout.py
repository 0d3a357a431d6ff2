"""Fly a policy for whole episodes and record what it saw and how it did.

Used for evaluation (train), calibration and closed-loop checks (export), and plots.
Each of ``episodes`` environments flies exactly one episode from the task's random
initial states; the seed fixes them, so two policies can be compared on the same set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim import layout as L
from sim.batch import QuadBatch
from sim.tasks import ACT_DIM, TaskConfig, make_task

Policy = Callable[[np.ndarray], np.ndarray]


@dataclass
class Rollout:
    obs: np.ndarray  # (M, obs_dim) float32: every observation a policy was asked about
    actions: np.ndarray  # (M, 4) float32: the policy's answers, in the same order
    success: np.ndarray  # (episodes,) bool
    final_error: np.ndarray  # (episodes,) m, position error at the episode's last step
    lengths: np.ndarray  # (episodes,) control steps survived
    returns: np.ndarray  # (episodes,) undiscounted return
    positions: np.ndarray  # (max_steps + 1, episodes, 3), NaN after an episode ended
    target: np.ndarray  # (3,)
    control_hz: float
    # For videos (sim/video.py): attitude quaternions (w, x, y, z) beside ``positions``,
    # and the command each episode applied at each step, (max_steps, episodes, 4); NaN
    # after an episode ended.
    attitudes: np.ndarray | None = None
    commands: np.ndarray | None = None
    # For hover quality (sim/quality.py): the true body rates (p, q, r, rad/s) beside
    # ``positions``, (max_steps + 1, episodes, 3); NaN after an episode ended.
    body_rates: np.ndarray | None = None

    @property
    def success_rate(self) -> float:
        return float(self.success.mean())


def collect(
    policy: Policy,
    task: str | TaskConfig = "hover",
    episodes: int = 100,
    seed: int = 0,
    parallel: bool | None = None,
    **overrides,
) -> Rollout:
    """Run ``policy`` (float32 (n, obs_dim) -> (n, 4) in [-1, 1]) for ``episodes`` episodes."""
    cfg = (
        task.replace(**overrides) if isinstance(task, TaskConfig) else make_task(task, **overrides)
    )
    batch = QuadBatch(cfg, episodes, seed=seed, parallel=parallel)
    batch.reset()
    active = np.ones(episodes, dtype=bool)
    success = np.zeros(episodes, dtype=bool)
    final_error = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    returns = np.zeros(episodes)
    positions = np.full((cfg.max_steps + 1, episodes, 3), np.nan)
    positions[0] = batch.state[:, L.POS : L.POS + 3]
    attitudes = np.full((cfg.max_steps + 1, episodes, 4), np.nan)
    attitudes[0] = batch.state[:, L.QUAT : L.QUAT + 4]
    body_rates = np.full((cfg.max_steps + 1, episodes, 3), np.nan)
    body_rates[0] = batch.state[:, L.OMEGA : L.OMEGA + 3]
    commands = np.full((cfg.max_steps, episodes, ACT_DIM), np.nan, dtype=np.float32)
    obs_log, act_log = [], []
    actions = np.zeros((episodes, ACT_DIM))
    for t in range(cfg.max_steps):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        obs = batch.obs[idx].copy()
        act = np.asarray(policy(obs), dtype=np.float32).reshape(idx.size, ACT_DIM)
        obs_log.append(obs)
        act_log.append(act)
        actions[idx] = act
        commands[t, idx] = act
        # Finished environments are re-started and keep flying; their results are ignored.
        batch.step(actions)
        returns[idx] += batch.reward[idx]
        positions[t + 1, idx] = batch.state[idx, L.POS : L.POS + 3]
        attitudes[t + 1, idx] = batch.state[idx, L.QUAT : L.QUAT + 4]
        body_rates[t + 1, idx] = batch.state[idx, L.OMEGA : L.OMEGA + 3]
        ended = np.flatnonzero(batch.terminated | batch.truncated)
        done = ended[active[ended]]
        success[done] = batch.success[done]
        final_error[done] = batch.position_error()[done]
        lengths[done] = batch.steps[done]
        active[done] = False
        # Re-start every ended one: a crashed vehicle flown on for long overflows its state.
        batch.reset(ended)
    return Rollout(
        obs=np.concatenate(obs_log),
        actions=np.concatenate(act_log),
        success=success,
        final_error=final_error,
        lengths=lengths,
        returns=returns,
        positions=positions,
        target=np.asarray(cfg.target, dtype=float),
        control_hz=cfg.control_hz,
        attitudes=attitudes,
        commands=commands,
        body_rates=body_rates,
    )
