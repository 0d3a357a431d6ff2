"""``python -m firmware_bridge crazyflie``: the generated Crazyflie app flown closed-loop in
the sim through the firmware's units and rates (firmware_bridge/crazyflie_loop.py),
beside the numpy integer model and the float policy (actor.onnx) flying the same worlds
from the same starts.

Two builds of the same files: one whose THRUST_MAX is the sim airframe's full rotor
thrust, flown with no dead zone, so the force mapping loses nothing and the app must fly
as the integer model does (success within MAX_GAP_PP per row, every action bit-identical
to the model's on the app's own observation); and one with the vehicle's motors - its
THRUST_MAX (0.12 N, the 2.1+ propellers), which saturates where the Crazyflie does, and
the firmware's dead zone (nothing below THRUST_MIN, 0.0128 N) - reported, not judged:
bringing the sim's thrust in line with the vehicle is training's part.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export import bundle as bundle_mod
from export import crazyflie
from export import int_reference as ref
from export.crazyflie import APP_DIR
from sim import report_json
from sim.airframes import CRAZYFLIE_THRUST_MAX, CRAZYFLIE_THRUST_MIN
from sim.contract.files import atomic_write

from . import crazyflie_loop as cl
from . import paced
from .hil import closed_loop_task, hil_rows

MAX_GAP_PP = 2.0  # success, app vs integer model, per row (sim-thrust build)
NOMINAL_LATENCY_MS = 10.0  # the nominal row's latency, as in the HIL (hil --latency-ms)


@dataclass(frozen=True)
class CrazyflieOptions:
    artifacts: Path = Path("artifacts")
    reports: Path = Path("reports")
    episodes: int = 100
    rows: str = "in-range"
    seed: int = 0
    vehicle_thrust_max: float = CRAZYFLIE_THRUST_MAX
    build_dir: Path = Path("build/crazyflie-host")


def onnx_policy(path: Path):
    import onnxruntime as ort

    if not path.is_file():
        raise cl.CrazyflieLoopError(f"{path} is missing: run `make export` first")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda obs: sess.run(None, {"obs": np.asarray(obs, np.float32)})[0]


def _summary(run) -> dict:
    return {
        "success": float(np.mean(run.success)),
        "median_final_error_m": float(np.median(run.final_error)),
    }


def load_app(artifacts: Path) -> tuple[bundle_mod.Bundle, Path]:
    """The export's bundle and the app written from it; CrazyflieLoopError naming what to
    run when the app is missing or was written for other data."""
    app_dir = artifacts / APP_DIR
    try:
        b = bundle_mod.load(artifacts / bundle_mod.BUNDLE_NAME)
    except bundle_mod.BundleError as e:
        raise cl.CrazyflieLoopError(str(e)) from None
    if not (app_dir / "src" / "policy.h").is_file():
        raise cl.CrazyflieLoopError(
            f"{app_dir} is missing: run `make crazyflie` (python -m export --target crazyflie)"
        )
    try:
        written_for = crazyflie.app_data_hash(artifacts, b)
    except bundle_mod.BundleError as e:
        raise cl.CrazyflieLoopError(str(e)) from None
    if written_for is not None:
        raise cl.CrazyflieLoopError(
            f"{app_dir} was written for data {bundle_mod.short(written_for)}, the export "
            f"in {artifacts} is {bundle_mod.short(b.data_hash('int'))}: run `make "
            "crazyflie` again"
        )
    return b, app_dir


def run(opts: CrazyflieOptions, log=print) -> dict:
    b, app_dir = load_app(opts.artifacts)
    task = b.spec.task_config()
    params = b.int_params()

    def int_act(obs):
        return ref.act(params, obs)

    float_act = onnx_policy(opts.artifacts / "actor.onnx")
    sim_thrust = cl.thrust_of(task)
    # (THRUST_MAX, THRUST_MIN) of each build's motors: the sim's own, where nothing is lost
    # in the mapping, and the vehicle's, with the firmware's dead zone below THRUST_MIN.
    builds = {"sim": (sim_thrust, 0.0), "vehicle": (opts.vehicle_thrust_max, CRAZYFLIE_THRUST_MIN)}
    apps = {}
    for name, (thrust, _) in builds.items():
        lib = cl.build_host_library(app_dir, thrust, opts.build_dir)
        apps[name] = cl.HostApp(lib)
        if not apps[name].start():
            raise cl.CrazyflieLoopError("the app's controllerOutOfTreeTest failed (self-test)")
        apps[name].set_param("qpilot", "spinupMs", 0)  # episodes start in the air
    log(
        f"app {app_dir}: model {b.model_hash[:16]}..., thrust max sim {sim_thrust:.4f} N and "
        f"vehicle {opts.vehicle_thrust_max:g} N per motor (hover force "
        f"{cl.hover_force(task, opts.vehicle_thrust_max):.2f} of the vehicle's)"
    )
    rows = {}
    for row in hil_rows(task, opts.rows):
        start = time.monotonic()
        latency = NOMINAL_LATENCY_MS if row == "nominal" else None
        t = closed_loop_task(task, row, latency)
        delay = t.latency_steps[1]
        result = {"latency_ms": 1000 * delay / t.physics_hz}
        for name, (thrust, thrust_min) in builds.items():
            motors = cl.Motors.of(t, thrust, thrust_min)
            flyer = cl.AppFlyer(apps[name], t, motors, delay, int_act)
            r = paced.fly(flyer, t, opts.episodes, opts.seed, start=flyer.start)
            s = flyer.stats
            result[f"app_{name}"] = {
                **_summary(r),
                "thrust_max_n": thrust,
                "thrust_min_n": thrust_min,
                "steps": s.steps,
                "steps_differing_from_integer_model": s.differing,
                "max_input_difference": s.obs_diff_max,
                "saturated_share": s.saturated / max(4 * s.steps, 1),
                "periods_without_policy": s.faults,
            }
        for name, act in (("integer", int_act), ("float", float_act)):
            result[name] = _summary(
                paced.fly(paced.fixed_answer(act, delay), t, opts.episodes, opts.seed)
            )
        # From episode counts: 67% - 65% is 2 points, not 2.0000000000000018.
        gap = abs(result["app_sim"]["success"] - result["integer"]["success"])
        result["gap_pp"] = round(100 * gap * opts.episodes) / opts.episodes
        rows[row] = result
        log(
            f"{row}: app {100 * result['app_sim']['success']:.0f}% (vehicle thrust "
            f"{100 * result['app_vehicle']['success']:.0f}%), integer "
            f"{100 * result['integer']['success']:.0f}%, float "
            f"{100 * result['float']['success']:.0f}% ({time.monotonic() - start:.0f} s)"
        )
    differing = sum(r["app_sim"]["steps_differing_from_integer_model"] for r in rows.values())
    worst_gap = max(r["gap_pp"] for r in rows.values())
    report = {
        "model_hash": b.model_hash,
        "data_hash": b.data_hash("int"),
        "episodes": opts.episodes,
        "seed": opts.seed,
        "rows": rows,
        "steps_differing_from_integer_model": differing,
        "worst_gap_pp": worst_gap,
        "max_gap_pp": MAX_GAP_PP,
        "passed": differing == 0 and worst_gap <= MAX_GAP_PP,
    }
    path = opts.reports / "crazyflie.json"
    text = report_json.dumps(report, indent=1) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))
    plot(report, opts.reports / "crazyflie.png")
    return report


def table(report: dict) -> str:
    head = (
        "| row | latency ms | app (sim thrust) | app (vehicle thrust) | integer | float "
        "| median error app / integer, cm | app steps = integer model | saturated, vehicle |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for name, r in report["rows"].items():
        a, v, i, f = r["app_sim"], r["app_vehicle"], r["integer"], r["float"]
        same = a["steps"] - a["steps_differing_from_integer_model"]
        lines.append(
            f"| {name} | {r['latency_ms']:g} | {100 * a['success']:.0f}% "
            f"| {100 * v['success']:.0f}% | {100 * i['success']:.0f}% | {100 * f['success']:.0f}% "
            f"| {100 * a['median_final_error_m']:.1f} / {100 * i['median_final_error_m']:.1f} "
            f"| {same} of {a['steps']} | {100 * v['saturated_share']:.1f}% |"
        )
    verdict = "passed" if report["passed"] else "FAILED"
    lines.append(
        f"\n{report['episodes']} episodes per row; largest gap app vs integer "
        f"{report['worst_gap_pp']:.1f} pp (at most {report['max_gap_pp']:g}); actions differing "
        f"from the integer model on the app's observation: "
        f"{report['steps_differing_from_integer_model']}. {verdict}"
    )
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["rows"])
    series = {
        "app, sim thrust": [report["rows"][n]["app_sim"]["success"] for n in names],
        "app, vehicle thrust": [report["rows"][n]["app_vehicle"]["success"] for n in names],
        "integer model": [report["rows"][n]["integer"]["success"] for n in names],
        "float policy": [report["rows"][n]["float"]["success"] for n in names],
    }
    fig, ax = plt.subplots(figsize=(max(8, 0.5 * len(names) + 3), 4.5))
    width = 0.8 / len(series)
    x = np.arange(len(names))
    for k, (label, values) in enumerate(series.items()):
        ax.bar(x + (k - 1.5) * width, 100 * np.asarray(values), width, label=label)
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("success, %")
    ax.set_ylim(0, 105)
    ax.set_title(f"Crazyflie app in the sim, {report['episodes']} episodes per row")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def check_options(opts: CrazyflieOptions) -> None:
    if opts.episodes < 1:
        raise ValueError("--episodes must be >= 1")
    if not (math.isfinite(opts.vehicle_thrust_max) and opts.vehicle_thrust_max > 0):
        raise ValueError("--thrust-max must be a positive number of newtons")
