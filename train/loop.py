"""The training run: collect from the vector env, update, evaluate, log, checkpoint.

A run lives in ``runs/<name>/``: ``checkpoint.pt`` (everything needed to resume or to
export), ``replay-<step>.pt`` (the replay buffer, for an exact resume), ``best.pt``,
``metrics.csv``, TensorBoard events and ``learning_curve.png`` (train/run_files.py says
how they stay consistent). ``runs/latest`` points at the newest run.
"""

from __future__ import annotations

import dataclasses
import os
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from sim import make_vec, observation, quality
from sim.batch import PRIVILEGED_DIM
from sim.contract import checkpoint as ckpt_io
from sim.rollout import collect
from sim.tasks import ACT_DIM, make_task
from train import run_files, run_state
from train.config import TrainConfig
from train.ddpg import Agent, update
from train.interrupt import StopRequest
from train.noise import GaussianNoise, OUNoise
from train.obs_norm import RunningNorm
from train.progress import Progress
from train.replay import ReplayBuffer

EVAL_SEED = 12345  # evaluation episodes are the same set for every run and every eval


class Trainer:
    def __init__(self, cfg: TrainConfig, run_dir: Path | None = None):
        self.cfg = cfg.validate()
        torch.set_num_threads(cfg.threads)
        # Adam's second moments and tiny gradients reach subnormal floats, which x86 CPUs
        # handle ~100x slower; flushing them to zero changes nothing else.
        torch.set_flush_denormal(True)
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.task = make_task(cfg.task, **cfg.task_overrides)  # evaluated and exported
        # The training world by stage (one stage without a curriculum); the stage of the
        # current env step is set before each step, so a resumed run finds it again.
        self.stages = cfg.stage_tasks()
        self.stage = 0
        train_task = self.stages[0][1]
        obs_dim = self.task.obs_dim
        if train_task.obs_layout != self.task.obs_layout:
            raise ValueError(
                "train_task_overrides: the training task's observation layout must be the "
                f"evaluated task's ({[n for n, *_ in self.task.obs_layout]}); it is "
                f"{[n for n, *_ in train_task.obs_layout]}"
            )
        self.env = make_vec(
            train_task, num_envs=cfg.num_envs, seed=cfg.seed, privileged=cfg.critic_privileged
        )
        self.obs, _ = self.env.reset(seed=cfg.seed)
        # The privileged state of the current step (a function of the env's state).
        self.priv = self.env.privileged() if cfg.critic_privileged else None
        priv_dim = PRIVILEGED_DIM if cfg.critic_privileged else 0
        past = observation.offsets(self.task)[observation.O_PAST]  # -1: none observed
        self.agent = Agent(cfg, obs_dim, ACT_DIM, priv_dim, past if past >= 0 else None)
        self.buffer = ReplayBuffer(cfg.buffer_size, obs_dim, ACT_DIM, priv_dim, stride=cfg.num_envs)
        self.norm = RunningNorm(obs_dim)
        shape = (cfg.num_envs, ACT_DIM)
        self.noise = (
            OUNoise(shape, cfg.noise_sigma, cfg.ou_theta)
            if cfg.noise == "ou"
            else GaussianNoise(shape, cfg.noise_sigma)
        )
        self.env_steps = 0
        self.saved_step: int | None = None  # the step of the last complete save
        self.update_credit = 0.0
        self.wall_before = 0.0  # wall time of earlier sessions of a resumed run
        self.metrics: list[dict] = []
        self.recent_returns: list[float] = []
        self.episode_return = np.zeros(cfg.num_envs)
        self.last_stats: dict = {}
        name = cfg.name or f"{cfg.preset}-{cfg.algo}-s{cfg.seed}-{datetime.now():%Y%m%d-%H%M%S}"
        self.run_dir = Path(run_dir) if run_dir else Path(cfg.run_dir) / name
        # A sweep's trials leave runs/latest alone and draw no bar (many bars in one
        # terminal read as noise; the sweep prints a line per evaluation instead).
        self.link_latest = True
        self.show_progress = True

    # Acting -----------------------------------------------------------------------------
    def act(self) -> np.ndarray:
        if self.env_steps < self.cfg.warmup_steps:
            return self.rng.uniform(-1.0, 1.0, (self.cfg.num_envs, ACT_DIM)).astype(np.float32)
        with torch.no_grad():
            a = self.agent.actor(torch.from_numpy(self.obs)).numpy()
        return np.clip(a + self.noise.sample(self.rng), -1.0, 1.0).astype(np.float32)

    def collect_step(self) -> None:
        cfg = self.cfg
        stage = sum(start <= self.env_steps for start, _ in self.stages) - 1
        if stage != self.stage:
            self.stage = stage
            self.env.set_task(self.stages[stage][1])
        action = self.act()
        priv = self.priv
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        done = terminated | truncated
        stored_next = next_obs
        self.priv = next_priv = self.env.privileged() if cfg.critic_privileged else None
        if done.any():  # the real last observation, not the next episode's first
            stored_next = np.where(info["_final_obs"][:, None], info["final_obs"], next_obs)
            if cfg.critic_privileged:
                next_priv = np.where(done[:, None], info["final_privileged"], next_priv)
        self.buffer.add(
            self.obs, action, reward, stored_next, terminated, priv, next_priv, ended=done
        )
        if self.env_steps < cfg.obs_norm_steps:
            self.norm.update(self.obs)
            self.norm.freeze_into(self.agent.actor)
            self.norm.freeze_into(self.agent.actor_target)
            self.norm.freeze_into(self.agent.policy)
        self.episode_return += reward
        if done.any():
            self.recent_returns = (self.recent_returns + self.episode_return[done].tolist())[-100:]
            self.episode_return[done] = 0.0
            self.noise.reset(done)
        self.obs = next_obs
        self.env_steps += cfg.num_envs

    def learn(self) -> None:
        if self.env_steps < max(self.cfg.warmup_steps, self.cfg.batch_size):
            return
        self.update_credit += self.cfg.updates_per_step
        while self.update_credit >= 1.0:
            self.update_credit -= 1.0
            batch = self.buffer.sample(
                self.rng, self.cfg.batch_size, self.cfg.gamma, self.cfg.n_step
            )
            self.last_stats = update(self.agent, batch, self.cfg)

    # Evaluation -------------------------------------------------------------------------
    def evaluate(self) -> dict:
        policy = self.agent.policy
        policy.eval()
        # Serial sim kernels: numba's OpenMP threads, once started, spin between kernels
        # and compete with torch for the cores on a busy machine.
        r = collect(
            policy.act_numpy,
            self.task,
            episodes=self.cfg.eval_episodes,
            seed=EVAL_SEED,
            parallel=False,
        )
        policy.train()
        return {
            "success_rate": r.success_rate,
            "final_error": float(r.final_error.mean()),
            "episode_length": float(r.lengths.mean()),
            "eval_return": float(r.returns.mean()),
            **quality.hover_quality(r, self.task.window_steps),
        }

    # Checkpoints ------------------------------------------------------------------------
    def policy_payload(self) -> dict:
        """What export and evaluation read (run_state.policy_payload)."""
        return run_state.policy_payload(self)

    def save(self, wall: float) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        run_files.save(self.run_dir, run_state.payload(self, wall), self.buffer.state_dict())
        self.saved_step = self.env_steps

    def is_best(self, row: dict) -> bool:
        """Ranks above every earlier evaluation (``_rank``)."""
        return all(_rank(row) > _rank(m) for m in self.metrics[:-1])

    def save_best(self, row: dict) -> None:
        """``best.pt``: the policy of the best evaluation so far in the latest curriculum
        stage (``_rank``; what export wants when a run got worse later). Policy only: a
        run resumes from ``checkpoint.pt``."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        ckpt_io.save(
            self.run_dir / run_files.BEST,
            {"kind": ckpt_io.POLICY_ONLY, **self.policy_payload(), "evaluation": dict(row)},
        )

    def restore(self, ckpt: dict, replay: dict, source: Path) -> None:
        run_state.restore(self, ckpt, replay, source)

    # The run ----------------------------------------------------------------------------
    def run(self, on_eval=None) -> Path:
        """Train until a limit binds; ``on_eval(row)`` is called after each evaluation."""
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        run_files.clean_stale(self.run_dir)
        resumed = self.env_steps > 0
        if not resumed:
            run_files.write_config(self.run_dir, run_state.plain(dataclasses.asdict(cfg)))
        if self.link_latest:
            run_files.point_latest(self.run_dir, cfg.preset)
        if resumed:  # files a killed session wrote past its checkpoint: back to it
            run_files.write_metrics_csv(self.run_dir / run_files.METRICS, self.metrics)
        writer = run_files.tensorboard(self.run_dir, self.env_steps if resumed else None)
        start = time.perf_counter()
        next_eval = (self.env_steps // cfg.eval_every + 1) * cfg.eval_every
        next_ckpt = (self.env_steps // cfg.checkpoint_every + 1) * cfg.checkpoint_every
        bar = Progress(cfg, self.env_steps, self.wall_before, self.run_dir.name, self.show_progress)
        stop_reason = "total_env_steps reached"
        with StopRequest() as stop:
            try:
                while self.env_steps < cfg.total_env_steps:
                    self.collect_step()
                    self.learn()
                    wall = self.wall_before + time.perf_counter() - start
                    bar.update(self.env_steps, wall)
                    if self.env_steps >= next_eval:
                        next_eval += cfg.eval_every
                        row = self.log_eval(wall, writer)
                        bar.evaluated(row)
                        if on_eval is not None:
                            on_eval(row)
                        if cfg.stop_success and row["success_rate"] >= cfg.stop_success:
                            stop_reason = f"evaluation success {row['success_rate']:.0%}"
                            break
                    if self.env_steps >= next_ckpt:
                        next_ckpt += cfg.checkpoint_every
                        self.save(wall)
                    if cfg.max_minutes and wall > 60 * cfg.max_minutes:
                        stop_reason = f"max_minutes={cfg.max_minutes} reached"
                        break
                    if stop.requested:
                        bar.close()
                        self.save(wall)
                        print(
                            f"\ninterrupted at {self.env_steps:,} env steps; checkpoint saved "
                            f"in {self.run_dir}; continue with: python -m train --resume "
                            f"{self.run_dir}"
                        )
                        raise KeyboardInterrupt
                wall = self.wall_before + time.perf_counter() - start
                if not self.metrics or self.metrics[-1]["env_steps"] != self.env_steps:
                    row = self.log_eval(wall, None)
                    if on_eval is not None:
                        on_eval(row)
                self.save(wall)
                run_files.write_metrics_csv(self.run_dir / run_files.METRICS, self.metrics)
                run_files.plot_learning_curve(
                    self.run_dir / run_files.CURVE, self.metrics, self.run_dir.name
                )
            except KeyboardInterrupt:
                if not stop.requested or self.saved_step != self.env_steps:
                    print(
                        f"\nstopped at once; {self.run_dir / run_files.CHECKPOINT} holds the "
                        f"last complete save (resume with: python -m train --resume "
                        f"{self.run_dir})"
                    )
                raise
            finally:
                bar.close()
                if writer is not None:
                    writer.close()
        last = self.metrics[-1]
        best = max(self.metrics, key=_rank)
        of_stage = f" of stage {best['stage']:.0f}" if "stage" in best else ""
        print(
            f"done ({stop_reason}): {self.env_steps:,} env steps, {self.agent.updates:,} "
            f"updates, {wall:.0f} s; eval success {last['success_rate']:.0%}, final error "
            f"{last['final_error']:.3f} m -> {self.run_dir}\n"
            f"best evaluation{of_stage}: {best['success_rate']:.0%} at {best['env_steps']:,} "
            f"env steps -> {self.run_dir / run_files.BEST}"
        )
        return self.run_dir

    def log_eval(self, wall: float, writer) -> dict:
        row = {
            "env_steps": self.env_steps,
            "updates": self.agent.updates,
            "wall_seconds": round(wall, 3),
            **self.evaluate(),
            "train_return": float(np.mean(self.recent_returns)) if self.recent_returns else 0.0,
            "critic_loss": float(self.last_stats.get("critic_loss", float("nan"))),
            "actor_loss": float(self.last_stats.get("actor_loss", float("nan"))),
        }
        if self.cfg.curriculum:  # which world the run was training in (1 = the first)
            row["stage"] = self.stage + 1
        self.metrics.append(row)
        if self.is_best(row):
            self.save_best(row)
        if writer is not None:
            for k, v in row.items():
                if k != "env_steps":
                    writer.add_scalar(k, v, self.env_steps)
            writer.flush()
        run_files.write_metrics_csv(self.run_dir / run_files.METRICS, self.metrics)
        return row


def resume(path: str | os.PathLike, **overrides) -> Trainer:
    """A Trainer that continues the run at ``path`` exactly where its checkpoint left it
    (or, stopped before its first checkpoint, starts it over from its config.json)."""
    run_dir = Path(path)
    if run_dir.is_dir() and not (run_dir / run_files.CHECKPOINT).exists():
        run_files.clean_stale(run_dir)
        if not (run_dir / run_files.CONFIG).exists():
            raise ckpt_io.CheckpointError(
                f"{run_dir}: stopped before it saved anything (not even {run_files.CONFIG}); "
                f"start it again with the command that started it"
            )
        cfg = run_state.config_from(run_files.read_config(run_dir), overrides, run_dir)
        print(f"{run_dir}: stopped before its first checkpoint; starting it over")
        return Trainer(cfg, run_dir=run_dir)
    ckpt_file, ckpt, replay = run_files.load(path)
    trainer = Trainer(
        run_state.config_from(ckpt["config"], overrides, ckpt_file), run_dir=ckpt_file.parent
    )
    try:
        trainer.restore(ckpt, replay, ckpt_file)
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise ckpt_io.CheckpointError(f"{ckpt_file}: cannot restore ({exc!r})") from None
    return trainer


# Helpers ----------------------------------------------------------------------------------
def _rank(row: dict) -> tuple[float, float, float]:
    """Evaluations compare by curriculum stage first: only the last stage trains in the
    run's own world with its final reward (the hover preset's second stage flies late
    latencies only, early in it under a penalty not yet learned; docs/benchmarks.md,
    "Which evaluation best.pt keeps"). Within a stage by success; on a tie, the lower
    final error ranks higher. Without a curriculum every row is stage 1."""
    return (row.get("stage", 1), row["success_rate"], -row["final_error"])
