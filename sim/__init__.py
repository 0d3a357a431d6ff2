"""quadpilot's quadrotor simulator: batched compiled dynamics and Gymnasium environments.

Importing ``sim`` registers ``quadpilot/Hover-v0`` (the deployable hover task: randomised
world, noisy estimates, latency), ``quadpilot/HoverNominal-v0`` and ``quadpilot/Takeoff-v0``.
"""

import os

import gymnasium as gym
import numba

from sim import kernel_cache

# numba's OpenMP layer shares torch's libgomp, whose idle workers keep spinning after a
# parallel kernel: on a machine with other work they starved the next torch job 10x
# (an export under CI load). The workqueue layer's workers sleep; the sim is as fast.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

kernel_cache.drop_if_stale()  # before any kernel is loaded from the cache

from sim.contract.spec import PolicySpec  # noqa: E402
from sim.envs import QuadEnv, QuadVectorEnv  # noqa: E402
from sim.tasks import OBS_DIM, OBS_LAYOUT, TaskConfig, make_task  # noqa: E402

__all__ = [
    "OBS_DIM",
    "OBS_LAYOUT",
    "PolicySpec",
    "QuadEnv",
    "QuadVectorEnv",
    "TaskConfig",
    "make_task",
    "make_vec",
]

ENV_IDS = {
    "hover": "quadpilot/Hover-v0",
    "hover-nominal": "quadpilot/HoverNominal-v0",
    "takeoff": "quadpilot/Takeoff-v0",
}

for _task, _id in ENV_IDS.items():
    if _id not in gym.registry:
        # The env ends its own episodes (truncation at the task's time limit).
        gym.register(
            id=_id,
            entry_point="sim.envs:QuadEnv",
            kwargs={"task": _task},
            disable_env_checker=False,
        )


def make_vec(
    task: str | TaskConfig = "hover",
    num_envs: int = 256,
    seed: int | None = None,
    privileged: bool = False,
    render_mode: str | None = None,
    render_index: int = 0,
    **overrides,
) -> QuadVectorEnv:
    """A batched vector env (same-step autoreset); see ``QuadVectorEnv``."""
    return QuadVectorEnv(
        task,
        num_envs=num_envs,
        seed=seed,
        privileged=privileged,
        render_mode=render_mode,
        render_index=render_index,
        **overrides,
    )
