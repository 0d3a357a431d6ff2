"""Simulator speed: raw dynamics, vector-env step and single env, for both tasks."""

from __future__ import annotations

import argparse
import os
from datetime import date

from bench.common import machine, write_section
from sim import bench as simbench
from sim.tasks import make_task

COMMAND = "python -m bench sim_speed"


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__)
    ap.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = ap.parse_args(argv)
    rows = []
    results = {
        task: simbench.run(task, args.seconds) for task in ("hover", "hover-nominal", "takeoff")
    }
    for task, res in results.items():
        for n in simbench.SIZES:
            rows.append(
                f"| {task} | {n} | {res['raw_dynamics'][n]:,.0f} | {res['vector_env'][n]:,.0f} |"
            )
    singles = ", ".join(f"{t} {r['single_env']:,.0f}" for t, r in results.items())
    rates = "; ".join(
        f"{t} {c.substeps} ({c.control_hz:g} Hz control, {c.physics_hz:g} Hz physics)"
        for t, c in ((t, make_task(t)) for t in results)
    )
    md = f"""## Simulator speed

`{COMMAND}` ({args.seconds:g} s per figure) on {machine()}, {date.today()}, 1-minute load
average {os.getloadavg()[0]:.2f} at the end. One env-step is one control step of RK4
physics steps: {rates}. "Vector env" is `QuadVectorEnv.step` with observation, reward,
termination and autoreset, flying the nominal hover action (in the randomised hover
world ~2.5% of the vehicles end an episode and are reset each step: 102 of 4096 on
average over 1,000 steps, measured once); for hover (the deployable task) that
includes the latency (a physics step split where an episode's latency falls inside it),
gusts and the noisy estimates of every observation, which the nominal task does
without. Targets: raw >= 10,000,000 and vector env >= 2,000,000
env-steps/s at N = 4096; single env >= 30,000 steps/s.

| task | N | raw dynamics (env-steps/s) | vector env (env-steps/s) |
|---|---:|---:|---:|
{chr(10).join(rows)}

Single Gymnasium env (`QuadEnv.step`, unwrapped): {singles} steps/s.
"""
    write_section("sim_speed", md)
    print(md)
    return md


if __name__ == "__main__":
    main()
