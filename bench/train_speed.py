"""Wall-clock time to learn: ours (DDPG/TD3, several seeds) and Stable-Baselines3 TD3.

Each run trains with a wall-clock budget and evaluates every ``--eval-every`` env steps on
100 episodes from the task's random initial states (the same set for every run). The
time to a threshold is the wall-clock time of the first evaluation at or above it,
evaluation time included.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench.common import machine, write_section

COMMAND = "python -m bench train_speed"


def first_time(metrics: list[dict], threshold: float) -> float | None:
    for m in metrics:
        if m["success_rate"] >= threshold:
            return m["wall_seconds"]
    return None


def ours(preset: str, algo: str, seed: int, minutes: float, eval_every: int, run_dir: Path) -> dict:
    from train.config import make_config
    from train.loop import Trainer

    cfg = make_config(
        preset,
        algo=algo,
        seed=seed,
        max_minutes=minutes,
        total_env_steps=10**9,
        stop_success=0.0,
        eval_every=eval_every,
        run_dir=str(run_dir),
        name=f"{preset}-{algo}-s{seed}",
        checkpoint_every=10**9,
    )
    trainer = Trainer(cfg)
    trainer.run()
    m = trainer.metrics
    return {
        "seed": seed,
        "algo": algo,
        "t90": first_time(m, 0.90),
        "t95": first_time(m, 0.95),
        "final": m[-1]["success_rate"],
        "best": max(x["success_rate"] for x in m),
        "env_steps": m[-1]["env_steps"],
        "updates": m[-1]["updates"],
        "wall": m[-1]["wall_seconds"],
    }


def sb3_td3(task: str, seed: int, minutes: float, eval_every: int) -> dict:
    """SB3 TD3 with its defaults on the single Gymnasium env (an optional dependency)."""
    import gymnasium as gym
    from stable_baselines3 import TD3
    from stable_baselines3.common.callbacks import BaseCallback

    import sim
    from sim.rollout import collect
    from train.loop import EVAL_SEED

    env = gym.make(sim.ENV_IDS[task])
    model = TD3("MlpPolicy", env, seed=seed, verbose=0)
    metrics: list[dict] = []
    start = time.perf_counter()

    def policy(obs: np.ndarray) -> np.ndarray:
        return model.predict(obs, deterministic=True)[0]

    class Eval(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % eval_every == 0:
                r = collect(policy, task, episodes=100, seed=EVAL_SEED)
                metrics.append(
                    {
                        "env_steps": self.num_timesteps,
                        "success_rate": r.success_rate,
                        "wall_seconds": time.perf_counter() - start,
                    }
                )
                print(
                    f"sb3 td3 {self.num_timesteps} steps {metrics[-1]['wall_seconds']:.0f} s "
                    f"success {r.success_rate:.0%}",
                    flush=True,
                )
            return time.perf_counter() - start < 60 * minutes

    model.learn(total_timesteps=10**9, callback=Eval())
    if not metrics:
        metrics.append({"env_steps": 0, "success_rate": 0.0, "wall_seconds": 0.0})
    return {
        "seed": seed,
        "algo": "sb3-td3",
        "t90": first_time(metrics, 0.90),
        "t95": first_time(metrics, 0.95),
        "final": metrics[-1]["success_rate"],
        "best": max(m["success_rate"] for m in metrics),
        "env_steps": metrics[-1]["env_steps"],
        "wall": time.perf_counter() - start,
    }


def fmt(t: float | None) -> str:
    return "not reached" if t is None else f"{t:.0f} s"


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--minutes", type=float, default=3.0, help="budget per hover run")
    ap.add_argument(
        "--sb3-minutes", type=float, default=10.0, help="budget for the SB3 run (0 skips it)"
    )
    ap.add_argument("--eval-every", type=int, default=50_000)
    ap.add_argument("--run-dir", default="runs/bench")
    args = ap.parse_args(argv)
    run_dir = Path(args.run_dir)
    results = {
        "hover": [
            ours("hover-nominal", "ddpg", s, args.minutes, args.eval_every, run_dir)
            for s in args.seeds
        ]
    }
    results["hover_td3"] = [
        ours("hover-nominal", "td3", args.seeds[0], args.minutes, args.eval_every, run_dir)
    ]
    sb3_note = "skipped (--sb3-minutes 0)"
    if args.sb3_minutes > 0:
        try:
            results["sb3"] = [sb3_td3("hover-nominal", args.seeds[0], args.sb3_minutes, 10_000)]
            sb3_note = ""
        except ImportError:
            sb3_note = "not run: stable-baselines3 is not installed (pip install stable-baselines3)"
    (run_dir / "train_speed.json").parent.mkdir(parents=True, exist_ok=True)
    (run_dir / "train_speed.json").write_text(json.dumps(results, indent=2))

    def rows(items: list[dict]) -> str:
        return "\n".join(
            f"| {r['algo']} | {r['seed']} | {fmt(r['t90'])} | {fmt(r['t95'])} | "
            f"{r['final']:.0%} | {r['best']:.0%} | {r['env_steps']:,} | {r['wall']:.0f} s |"
            for r in items
        )

    hover_ok = sum(r["final"] >= 0.95 or r["t95"] is not None for r in results["hover"])
    header = (
        "| algorithm | seed | time to 90% | time to 95% | final success | best | "
        "env steps | wall |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    ratio = ""
    if "sb3" in results:
        ours_t = [r["t95"] for r in results["hover"] if r["t95"] is not None]
        sb3_t = results["sb3"][0]["t95"]
        if ours_t and sb3_t:
            ratio = f"SB3 TD3 / ours (median time to 95%): {sb3_t / float(np.median(ours_t)):.1f}x."
        elif ours_t:
            ratio = (
                f"SB3 TD3 did not reach 95% within {args.sb3_minutes:g} min; ours took a "
                f"median {float(np.median(ours_t)):.0f} s: a ratio above "
                f"{60 * args.sb3_minutes / float(np.median(ours_t)):.1f}x."
            )
    md = f"""## Training: wall-clock time to success

`{COMMAND}` on {machine()}. Budget {args.minutes:g} min per hover run, evaluation every
{args.eval_every:,} env steps on 100 fixed random initial states (time includes
evaluation). Success: the sim's definition (survive, error < 0.1 m over the last
second). Takeoff has its own section (`python -m bench train_takeoff`).

Nominal hover (the `hover-nominal` preset, DDPG, without its stop rule),
{len(args.seeds)} seeds: {hover_ok} of {len(args.seeds)} reached
95%.

{header}
{rows(results["hover"])}
{rows(results["hover_td3"])}

Stable-Baselines3 TD3 with its defaults on `quadpilot/Hover-v0` (single env, evaluated
every 10,000 steps on the same 100 initial states): {sb3_note}

{header}
{rows(results.get("sb3", []))}

{ratio}
"""
    write_section("train_speed", md)
    print(md)
    return md


if __name__ == "__main__":
    main()
