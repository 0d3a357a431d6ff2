"""``python -m firmware_bridge crazyflie --emulator``: the Crazyflie app's own C files on the
STM32F405 firmware in QEMU (the flight build), flown closed-loop in the sim beside the
same files in the host library, and what the controller costs per stabiliser tick.

Both apps are built with the sim airframe's full rotor thrust as THRUST_MAX (nothing lost
in the force mapping) and get the same inputs every control period (crazyflie_board.
TwinApp); the board's forces fly. Judged: every request's forces, action, observation,
controlMode, mode, fault and policy calls bit-identical on the board and the host, and
every action the integer model's on the board's own observation. Then the app's safety
rules on the board: a NaN estimate, a quaternion far from unit norm and a stale setpoint
stop the motors with the app's own counters, as on the host. Reported: the board's
instructions inside controllerOutOfTree per stabiliser tick (the ticks that ran the
policy and the idle ones, median and max; one instruction per cycle is the budget's
lower bound) and the flash and RAM the app's objects take in the linked image.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export import int_reference as ref
from sim import report_json
from sim.contract.files import atomic_write

from . import crazyflie_loop as cl
from . import paced
from .crazyflie_board import (
    BUDGET,
    BoardApp,
    FlightBoardError,
    TwinApp,
    check_flight,
    linked_sizes,
)
from .crazyflie_run import NOMINAL_LATENCY_MS, load_app
from .emulator import Emulator, FlightApp
from .hil import EMULATOR_TIMEOUT, closed_loop_task, hil_rows

REPORT = "crazyflie_board.json"
LEVEL = np.array([1.0, 0.0, 0.0, 0.0])
ZERO3 = np.zeros(3)


@dataclass(frozen=True)
class BoardOptions:
    artifacts: Path = Path("artifacts")
    reports: Path = Path("reports")
    episodes: int = 5
    rows: str = "short"
    seed: int = 0
    elf: Path | None = None  # a flight build to run instead of building one
    timeout: float = EMULATOR_TIMEOUT
    build_dir: Path = Path("build/crazyflie-host")


def elf_sizes(elf: Path) -> dict:
    """The whole image's flash and static RAM, as firmware/Makefile prints them."""
    size = shutil.which("arm-none-eabi-size") or "arm-none-eabi-size"
    out = subprocess.run([size, "-A", str(elf)], capture_output=True, text=True, check=True)
    flash = ram = 0
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            continue
        if parts[0] in (".isr_vector", ".text", ".ARM.exidx", ".data"):
            flash += int(parts[1])
        if parts[0] in (".data", ".bss"):
            ram += int(parts[1])
    return {"flash": flash, "ram": ram}


def _check_board(info, b) -> None:
    """The flight build first (its absence is the likely mistake), then its model and data."""
    check_flight(info)
    for what, have, want in (
        ("model", info.model_hash_hex, b.model_hash),
        ("data", info.data_hash_hex, b.data_hash("int")),
    ):
        if have != want:
            raise FlightBoardError(
                f"the board's app runs {what} {have[:16]}..., the export {want[:16]}...: "
                "build the flight firmware from this export's app (make crazyflie)"
            )


def _outcome(app, counter: str, before: float) -> dict:
    return {
        "mode": app.mode,
        "fault": app.fault,
        "max_force": float(app.forces.max()),
        f"{counter} counted": app.log("qpilot", counter) - before,
    }


def safety_checks(twin: TwinApp) -> dict:
    """The app's own rules on the board, each after a clean activation: the motors stop
    and its counter counts, as the host library's do."""
    hover = np.array([0.0, 0.0, 1.0])

    def tick(n=1, position=hover, quat=LEVEL, z_mode=cl.MODE_ABS, age_ms=0):
        return twin.ticks(n, position, ZERO3, quat, ZERO3, hover, z_mode, age_ms)

    cases = {
        "nan position": ({"position": np.array([0.0, np.nan, 1.0])}, 1, 3, 1, "nNonfin"),
        "quaternion norm 1.2": ({"quat": np.array([1.2, 0.0, 0.0, 0.0])}, 1, 3, 2, "nQuat"),
        "setpoint 501 ms old": ({"age_ms": 501}, 10, 0, 0, "nStale"),
    }
    results = {}
    for name, (bad, n, mode, fault, counter) in cases.items():
        if not twin.start():
            raise FlightBoardError("the app's controllerOutOfTreeTest failed (self-test)")
        twin.set_param("qpilot", "spinupMs", 0)
        tick(20)
        flying = float(twin.forces.max()) > 0 and twin.mode == 2
        # The counters live as long as the firmware (the app's start does not clear them).
        before = [app.log("qpilot", counter) for app in (twin.board, twin.host)]
        tick(n, **bad)
        board, host = (
            _outcome(app, counter, was)
            for app, was in zip((twin.board, twin.host), before, strict=True)
        )
        want = {"mode": mode, "fault": fault, "max_force": 0.0, f"{counter} counted": float(n)}
        results[name] = {"board": board, "passed": flying and board == want == host}
    return results


def run_board(opts: BoardOptions, log=print) -> dict:
    b, app_dir = load_app(opts.artifacts)
    task = b.spec.task_config()
    params = b.int_params()
    thrust = cl.thrust_of(task)
    lib = cl.build_host_library(app_dir, thrust, opts.build_dir)
    host = cl.HostApp(lib)
    flight = FlightApp(app_dir, thrust)
    start = time.monotonic()
    with Emulator(elf=opts.elf, flight=flight, link_timeout=opts.timeout) as emu:
        elf = emu.elf_path
        info = emu.info
        _check_board(info, b)
        log(f"board: {info.describe()}")
        twin = TwinApp(BoardApp(emu.link), host)
        if not twin.start():
            raise FlightBoardError("the app's controllerOutOfTreeTest failed (self-test)")
        twin.set_param("qpilot", "spinupMs", 0)  # episodes start in the air

        def int_act(obs):
            return ref.act(params, obs)

        rows = {}
        for row in hil_rows(task, opts.rows):
            latency = NOMINAL_LATENCY_MS if row == "nominal" else None
            t = closed_loop_task(task, row, latency)
            delay = t.latency_steps[1]
            before = vars(twin.stats).copy()
            flyer = cl.AppFlyer(twin, t, cl.Motors.of(t, thrust, 0.0), delay, int_act)
            r = paced.fly(flyer, t, opts.episodes, opts.seed, start=flyer.start)
            s = flyer.stats
            rows[row] = {
                "latency_ms": 1000 * delay / t.physics_hz,
                "success": float(np.mean(r.success)),
                "steps": s.steps,
                "policy_calls": s.policy_calls,
                "steps_differing_from_integer_model": s.differing,
                **{k: v - before[k] for k, v in vars(twin.stats).items()},
            }
            log(
                f"{row}: {opts.episodes} episodes, {s.steps} control steps through the board, "
                f"{100 * rows[row]['success']:.0f}% success, differing from the host app: "
                f"forces {rows[row]['forces_differing']}, actions "
                f"{rows[row]['actions_differing']}"
            )
        costs = twin.board.costs.summary()
        safety = safety_checks(twin)
    wall = time.monotonic() - start
    sizes = linked_sizes(elf.with_name("quadpilot.map"))
    differing = sum(
        r[k]
        for r in rows.values()
        for k in (
            "forces_differing",
            "actions_differing",
            "observations_differing",
            "states_differing",
            "steps_differing_from_integer_model",
        )
    )
    report = {
        "model_hash": b.model_hash,
        "data_hash": b.data_hash("int"),
        "thrust_max_n": thrust,
        "episodes": opts.episodes,
        "seed": opts.seed,
        "build_id": info.build_id,
        "rows": rows,
        "cycles": costs,
        "safety": safety,
        "app_objects": sizes,
        "image": elf_sizes(elf),
        "wall_s": wall,
        "differing": differing,
        "passed": differing == 0
        and all(s["passed"] for s in safety.values())
        and costs["policy"]["ticks"] > 0
        and costs["policy"]["median_ticks"] > 0,
    }
    opts.reports.mkdir(parents=True, exist_ok=True)
    text = report_json.dumps(report, indent=1) + "\n"
    atomic_write(opts.reports / REPORT, lambda tmp: tmp.write_text(text))
    return report


def table(report: dict) -> str:
    lines = [
        "| row | latency ms | episodes | control steps | success | forces / actions / "
        "observations / states differing from the host app | actions differing from the "
        "integer model |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in report["rows"].items():
        lines.append(
            f"| {name} | {r['latency_ms']:g} | {report['episodes']} | {r['steps']} "
            f"| {100 * r['success']:.0f}% | {r['forces_differing']} / {r['actions_differing']} "
            f"/ {r['observations_differing']} / {r['states_differing']} "
            f"| {r['steps_differing_from_integer_model']} |"
        )
    c = report["cycles"]
    p, i = c["policy"], c["idle"]
    lines += [
        "",
        "| stabiliser tick | ticks measured | instructions, median | instructions, max "
        "| share of 168,000 cycles (1 kHz at 168 MHz), max |",
        "|---|---|---|---|---|",
        f"| running the policy | {p['ticks']} | {p['median_instructions']:,.0f} "
        f"| {p['max_instructions']:,.0f} | {100 * p['max_instructions'] / BUDGET:.2f}% |",
        f"| idle: forces held (median of each request's mean) | {i['ticks']} "
        f"| {i['median_instructions']:,.0f} "
        f"| {i['max_instructions']:,.0f} | {100 * i['max_instructions'] / BUDGET:.2f}% |",
        "",
        f"Every tick, mean: {c['mean_instructions_per_tick']:,.0f} instructions "
        f"({100 * c['mean_instructions_per_tick'] / BUDGET:.2f}% of the budget).",
        "",
        "| app object (linked) | flash bytes | static RAM bytes |",
        "|---|---|---|",
    ]
    objects = report["app_objects"]
    for name, s in objects.items():
        lines.append(f"| `{name}` | {s['flash']:,} | {s['ram']:,} |")
    flash = sum(s["flash"] for s in objects.values())
    ram = sum(s["ram"] for s in objects.values())
    image = report["image"]
    lines.append(f"| the app | {flash:,} | {ram:,} |")
    lines.append(f"| the whole flight image | {image['flash']:,} | {image['ram']:,} |")
    safety = ", ".join(
        f"{k} {'ok' if v['passed'] else 'FAILED'}" for k, v in report["safety"].items()
    )
    verdict = "passed" if report["passed"] else "FAILED"
    lines.append(f"\nsafety on the board: {safety}. {verdict}")
    return "\n".join(lines)
