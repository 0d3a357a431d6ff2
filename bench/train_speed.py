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
from train.run_files import first_reaching

COMMAND = "python -m bench train_speed"


def first_time(metrics: list[dict], threshold: float) -> float | None:
    hit = first_reaching(metrics, threshold)
    return None if hit is None else hit["wall_seconds"]


def ours(
    preset: str,
    algo: str,
    seed: int,
    minutes: float,
    eval_every: int,
    run_dir: Path,
    label: str = "",
    **overrides,
) -> dict:
    """One run that stops at its first evaluation at or above 95% (or the budget)."""
    from train.config import make_config
    from train.loop import Trainer

    cfg = make_config(
        preset,
        algo=algo,
        seed=seed,
        max_minutes=minutes,
        total_env_steps=10**9,
        stop_success=0.95,
        eval_every=eval_every,
        run_dir=str(run_dir),
        name=f"{preset}-{algo}-s{seed}{label}",
        checkpoint_every=10**9,
        **overrides,
    )
    trainer = Trainer(cfg)
    trainer.link_latest = False
    trainer.run()
    m = trainer.metrics
    hit = first_reaching(m, 0.95) or {}
    return {
        "seed": seed,
        "algo": algo,
        "t90": first_time(m, 0.90),
        "t95": first_time(m, 0.95),
        "steps95": hit.get("env_steps"),
        "updates95": hit.get("updates"),
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
        "steps95": (first_reaching(metrics, 0.95) or {}).get("env_steps"),
        "updates95": None,
        "final": metrics[-1]["success_rate"],
        "best": max(m["success_rate"] for m in metrics),
        "env_steps": metrics[-1]["env_steps"],
        "wall": time.perf_counter() - start,
    }


def fmt(t: float | None) -> str:
    return "not reached" if t is None else f"{t:.1f} s"


def count(n: int | None) -> str:
    return "-" if n is None else f"{int(n):,}"


# The settings of the hover-nominal preset before this benchmark's round of changes
# (measured side by side on today's code).
BEFORE = {
    "num_envs": 32,
    "actor_lr": 1e-3,
    "critic_lr": 1e-3,
    "tau": 0.005,
    "batch_size": 256,
    "n_step": 1,
    "threads": 1,
}

# Published anchors, measured on this machine class (2 vCPU AMD EPYC); their success
# criterion is looser than ours (within 0.2 m at the end vs within 0.1 m for the last second).
ANCHORS = [
    ("RLtools L2F TD3 (original)", "~41 s", "300k, 1 env", "end within 0.2 m"),
    ("RLtools L2F SAC, benchmark build", "~1.1 s", "280k, 8 envs", "~2 of 3 seeds within 0.2 m"),
    ("RLtools L2F SAC, with logging", "~6.5 s", "280k, 8 envs", "~2 of 3 seeds within 0.2 m"),
]


def median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def rows(items: list[dict]) -> str:
    return "\n".join(
        f"| {r['algo']} | {r['seed']} | {fmt(r['t90'])} | {fmt(r['t95'])} | "
        f"{count(r['steps95'])} | {count(r['updates95'])} | {r['best']:.0%} | "
        f"{r['wall']:.0f} s |"
        for r in items
    )


HEADER = (
    "| algorithm | seed | time to 90% | time to 95% | env steps to 95% | updates to 95% | "
    "best | wall |\n|---|---:|---:|---:|---:|---:|---:|---:|"
)


def summary_row(label: str, items: list[dict]) -> str:
    t = [r["t95"] for r in items]
    within = sum(x is not None and x <= 60 for x in t)
    return (
        f"| {label} | {fmt(median(t))} | {within} of {len(items)} | "
        f"{count(median([r['updates95'] for r in items]))} | "
        f"{count(median([r['steps95'] for r in items]))} | within 0.1 m for the last 1 s |"
    )


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--minutes", type=float, default=1.5, help="budget per run")
    ap.add_argument("--skip-before", action="store_true", help="only today's preset")
    ap.add_argument(
        "--sb3-minutes", type=float, default=0.0, help="budget for an SB3 TD3 run (0 skips it)"
    )
    ap.add_argument("--eval-every", type=int, default=50_000)
    ap.add_argument("--run-dir", default="runs/bench")
    args = ap.parse_args(argv)
    run_dir = Path(args.run_dir)
    go = {"minutes": args.minutes, "eval_every": args.eval_every, "run_dir": run_dir}
    results = {"hover": [ours("hover-nominal", "ddpg", s, **go) for s in args.seeds]}
    if not args.skip_before:
        results["before"] = [
            ours("hover-nominal", "ddpg", s, label="-before", **go, **BEFORE) for s in args.seeds
        ]
    results["hover_td3"] = [ours("hover-nominal", "td3", args.seeds[0], **go)]
    sb3_note = "not run (--sb3-minutes 0)"
    if args.sb3_minutes > 0:
        try:
            results["sb3"] = [sb3_td3("hover-nominal", args.seeds[0], args.sb3_minutes, 10_000)]
            sb3_note = ""
        except ImportError:
            sb3_note = "not run: stable-baselines3 is not installed (pip install stable-baselines3)"
    (run_dir / "train_speed.json").parent.mkdir(parents=True, exist_ok=True)
    (run_dir / "train_speed.json").write_text(json.dumps(results, indent=2))

    summary = [
        "| configuration | median time to 95% | seeds at 95% within 60 s | median updates | "
        "median env steps | success criterion |",
        "|---|---:|---:|---:|---:|---|",
    ]
    if "before" in results:
        summary.append(
            summary_row(
                "before: 32 envs, lr 1e-3, tau 0.005, batch 256, 1-step, 1 thread",
                results["before"],
            )
        )
    summary.append(summary_row("now: the hover-nominal preset", results["hover"]))
    for name, t, steps, crit in ANCHORS:
        summary.append(f"| {name} (anchor) | {t} | | | {steps} | {crit} |")
    before_rows = ""
    if "before" in results:
        settings = ", ".join(f"{k}={v}" for k, v in BEFORE.items())
        before_rows = f"""
The same seeds with the settings before this round ({settings}), on today's code:

{HEADER}
{rows(results["before"])}
"""
    sb3 = f"\n\n{HEADER}\n{rows(results['sb3'])}" if "sb3" in results else ""
    md = f"""## Training: wall-clock time to success

`{COMMAND}` on {machine()}, one run at a time. Each run stops at its first
evaluation at or above 95% (budget {args.minutes:g} min); evaluation every
{args.eval_every:,} env steps on 100 fixed random initial states, its time included.
Success: the sim's definition (survive, within 0.1 m of the target for the whole last
second). Takeoff has its own section (`python -m bench train_takeoff`).

{chr(10).join(summary)}

Nominal hover (the `hover-nominal` preset, DDPG), {len(args.seeds)} seeds, and TD3 on
the first:

{HEADER}
{rows(results["hover"])}
{rows(results["hover_td3"])}
{before_rows}
Stable-Baselines3 TD3 with its defaults on `quadpilot/Hover-v0`: {sb3_note}{sb3}
"""
    write_section("train_speed", md)
    print(md)
    return md


if __name__ == "__main__":
    main()
