"""The closed loop in real time: the sim paced by the wall clock at the control rate.

At the bench the board answers over a real link, so its action reaches the motors late
by the round trip. Each control period the host sends the observation, waits for the
ACTION until the period's deadline, and applies it that many physics steps into the
period (the round trip rounded up to whole physics steps); an ACTION that misses the
deadline is a deadline miss, and the previous command holds for that period (a late
reply is recognised by its seq and dropped). Episodes fly one after another, one vehicle
at a time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sim import layout as L
from sim.batch import QuadBatch
from sim.rollout import Rollout
from sim.tasks import ACT_DIM, TaskConfig

from .link import Link, LinkTimeout, StepResult

# obs -> (action, or None for a missed deadline; physics steps until it reaches the motors)
Answer = Callable[[np.ndarray], tuple[np.ndarray | None, int]]


@dataclass
class PacedStats:
    steps: int = 0
    deadline_misses: int = 0
    delay_steps: list[int] = field(default_factory=list)  # applied latency per answered step
    results: list[StepResult] = field(default_factory=list)


def paced_task(task: TaskConfig, max_delay: int | None = None) -> TaskConfig:
    """``task`` able to delay a command by up to ``max_delay`` physics steps (default
    one control period, or the task's own latency if longer; set per step here)."""
    if max_delay is None:
        max_delay = max(task.substeps, task.latency_steps[1])
    return task.replace(randomise=True, latency_s=(0.0, max_delay / task.physics_hz))


def board_answer(link: Link, task: TaskConfig, stats: PacedStats, columns: np.ndarray) -> Answer:
    """The board as an ``Answer``: its ACTION for the observation's estimate and sensor
    numbers (``columns``), or None when it misses the deadline, and the round trip in
    whole physics steps. ``fly`` sets link.timeout to what is left of the period before
    each call. A late answer was still committed by the board, so its past actions then
    hold a command the motors never got: the sim's cannot follow it there."""
    physics_dt = 1.0 / task.physics_hz

    def answer(obs: np.ndarray) -> tuple[np.ndarray | None, int]:
        stats.steps += 1
        try:
            r = link.step(obs[columns])
        except LinkTimeout:
            stats.deadline_misses += 1
            return None, 0
        stats.results.append(r)
        delay = min(task.substeps, math.ceil(r.rtt_s / physics_dt - 1e-9))
        stats.delay_steps.append(delay)
        return r.action, delay

    return answer


def fixed_answer(policy, delay: int) -> Answer:
    """A host policy as an ``Answer`` whose command always arrives ``delay`` steps late."""
    return lambda obs: (np.asarray(policy(obs[None, :]), dtype=np.float32)[0], delay)


def fly(
    answer: Answer,
    task: TaskConfig,
    episodes: int,
    seed: int,
    link: Link | None = None,
    start: Callable[[], object] | None = None,
    max_delay: int | None = None,
) -> Rollout:
    """``episodes`` episodes, one vehicle at a time, from the initial states of seeds
    seed, seed + 1, ...; paced by the wall clock when ``link`` is given (its timeout is
    set to the time left in each period, with no retries). ``start`` is called as each
    episode begins (a board's RESET), before the pacing starts."""
    task = paced_task(task, max_delay)
    period = 1.0 / task.control_hz
    n = task.max_steps
    success = np.zeros(episodes, dtype=bool)
    final_error = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    returns = np.zeros(episodes)
    positions = np.full((n + 1, episodes, 3), np.nan)
    attitudes = np.full((n + 1, episodes, 4), np.nan)
    body_rates = np.full((n + 1, episodes, 3), np.nan)
    commands = np.full((n, episodes, ACT_DIM), np.nan, dtype=np.float32)
    obs_log, act_log = [], []
    saved = (link.timeout, link.retries) if link else None
    if link:
        link.retries = 0  # a late answer is a miss, not a reason to ask again
    try:
        for ep in range(episodes):
            b = QuadBatch(task, 1, seed=seed + ep, parallel=False)
            b.reset()
            if start is not None:
                if link:
                    link.timeout, link.retries = saved
                start()
                if link:
                    link.retries = 0
            positions[0, ep] = b.state[0, L.POS : L.POS + 3]
            attitudes[0, ep] = b.state[0, L.QUAT : L.QUAT + 4]
            body_rates[0, ep] = b.state[0, L.OMEGA : L.OMEGA + 3]
            last = np.full(ACT_DIM, task.initial_action(), dtype=np.float32)
            tick = time.monotonic()
            for t in range(n):
                tick += period
                obs = b.obs[0].copy()
                if link:
                    link.timeout = max(1e-3, tick - time.monotonic())
                action, delay = answer(obs)
                action = last if action is None else action
                obs_log.append(obs)
                act_log.append(action)
                commands[t, ep] = action
                b.params[0, L.P_DELAY] = delay
                b.step(action[None, :])
                last = action
                returns[ep] += b.reward[0]
                positions[t + 1, ep] = b.state[0, L.POS : L.POS + 3]
                attitudes[t + 1, ep] = b.state[0, L.QUAT : L.QUAT + 4]
                body_rates[t + 1, ep] = b.state[0, L.OMEGA : L.OMEGA + 3]
                if b.terminated[0] or b.truncated[0]:
                    success[ep] = b.success[0]
                    final_error[ep] = b.position_error()[0]
                    lengths[ep] = b.steps[0]
                    break
                if link:
                    time.sleep(max(0.0, tick - time.monotonic()))
    finally:
        if link:
            link.timeout, link.retries = saved
    return Rollout(
        obs=np.array(obs_log, dtype=np.float32).reshape(-1, task.obs_dim),
        actions=np.array(act_log, dtype=np.float32).reshape(-1, ACT_DIM),
        success=success,
        final_error=final_error,
        lengths=lengths,
        returns=returns,
        positions=positions,
        target=np.asarray(task.target, dtype=float),
        control_hz=task.control_hz,
        attitudes=attitudes,
        commands=commands,
        body_rates=body_rates,
    )
