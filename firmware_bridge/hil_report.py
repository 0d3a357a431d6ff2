"""reports/hil.json, reports/hil.png and the table the HIL prints.

Each figure is computed once, in ``build``; the table and the plot only show it. Both
files are written to a temporary name and renamed, so a reader never sees half of one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from export import int_reference
from export.report import TARGETS
from sim import quality, report_json
from sim.contract.files import atomic_write

from . import codec
from .link import LinkStats
from .protocol import ResetCause, SelfTest, TickSource

if TYPE_CHECKING:
    from .hil import HilOptions, Inputs

BITS_PER_BYTE = 10  # 8N1: start bit, 8 data bits, stop bit
# QEMU runs with `-icount shift=0` (emulator.py): each instruction advances virtual time
# by 2^0 ns, and the firmware's SysTick counts that virtual time at tick_hz.
NS_PER_INSTRUCTION = 1.0


def instructions_from_ticks(ticks: float, tick_hz: float) -> float:
    """Instructions executed in ``ticks`` of an emulated SysTick (see NS_PER_INSTRUCTION)."""
    return ticks / tick_hz * 1e9 / NS_PER_INSTRUCTION


def line_rate_bound(frame_bytes: int, baud: int) -> float:
    """Round trips per second a UART at ``baud`` (8N1, no gaps) allows for these bytes."""
    return baud / BITS_PER_BYTE / frame_bytes


def _errors(a: np.ndarray, b: np.ndarray) -> dict:
    err = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return {
        "max": float(err.max()),
        "mean": float(err.mean()),
        "p99": float(np.quantile(err, 0.99)),
    }


def _check(value, target, ok: bool) -> list:
    return [value, target, bool(ok)]


def _name(enum, code: int) -> str:
    try:
        return enum(code).name.lower()
    except ValueError:
        return f"code {code}"  # a newer board's value this host does not name


def build(
    *,
    opts: HilOptions,
    inputs: Inputs,
    info: codec.Info,
    info_after: codec.Info,
    emulated: bool,
    states: np.ndarray,
    open_loop: dict,
    closed_loop: dict,
    link_stats: LinkStats,
    wire: tuple[int, int],
) -> dict:
    ref, policy = inputs.reference, inputs.policy
    board = open_loop["actions"]
    ref_actions = ref.act(states)
    float_actions = policy.act(states)
    results = open_loop["results"] + closed_loop["results"]
    rtt_ms = np.array([r.rtt_s for r in results]) * 1e3
    ticks = np.array([r.infer_ticks for r in results])
    tick_hz = info.tick_hz
    median_ticks = float(np.median(ticks))

    vs_ref = _errors(board, ref_actions)
    vs_float = _errors(board, float_actions)
    # Equal float32 bit patterns; for policy.h that is equal output codes
    # (action = code / QP_OUT_ONE, exact).
    same = (board.view(np.uint32) == ref_actions.astype(np.float32).view(np.uint32)).all(axis=1)
    codes = {}
    if ref.bit_exact:
        one = int_reference.OUT_ONE
        codes = {
            "code_mismatches": int((np.rint(board * one) != np.rint(ref_actions * one)).sum()),
        }

    runs = closed_loop["runs"]
    window = policy.spec.task_config().window_steps  # the rows change the world, not this
    rows = {name: _row_summary(row, window) for name, row in closed_loop["rows"].items()}
    success = rows["nominal"]["success_rate"]  # closed_loop["runs"] is the nominal row
    identical = rows["nominal"]["board_identical_to_reference"]
    gap_pp = max(row["success_gap_pp"] for row in rows.values())

    instructions = instructions_from_ticks(median_ticks, tick_hz) if emulated else None
    step_bytes, action_bytes = wire
    checks = {}
    if ref.bit_exact:
        frac = float(same.mean())
        checks["bit_exact_fraction"] = _check(frac, 1.0, frac == 1.0)
    checks["max_abs_error_vs_float"] = _check(
        vs_float["max"], ref.max_vs_float, vs_float["max"] <= ref.max_vs_float
    )
    if ref.mean_vs_float is not None:
        checks["mean_abs_error_vs_float"] = _check(
            vs_float["mean"], ref.mean_vs_float, vs_float["mean"] <= ref.mean_vs_float
        )
    # Every byte the host sent reached the policy: no full ring, no UART overrun.
    lost = info_after.rx_dropped + info_after.rx_overruns
    checks["receive_bytes_lost"] = _check(lost, 0, lost == 0)
    if closed_loop["paced"]:
        # In real time the board's commands arrive as late as the link makes them, the
        # reference's at the median of that: trajectories differ, so the gap is reported
        # (rows), and what is checked is that every answer met its deadline.
        misses = sum(row["deadline_misses"] for row in rows.values())
        checks["deadline_misses"] = _check(misses, 0, misses == 0)
    else:
        # A bit-exact board flies exactly the reference's episodes; a float32 one may
        # differ by rounding, so it gets export's closed-loop allowance.
        gap_target = 0.0 if ref.bit_exact else TARGETS["closed_loop_gap_pp"]
        checks["closed_loop_success_gap_pp"] = _check(gap_pp, gap_target, gap_pp <= gap_target)
        if ref.bit_exact:
            # Every closed-loop command equal to the reference's on the sim's own
            # observation: the board's kept blocks evolved exactly as the sim's.
            differing = sum(row["steps_differing_from_reference"] for row in rows.values())
            checks["closed_loop_steps_differing"] = _check(differing, 0, differing == 0)

    return {
        "checkpoint": str(policy.source),
        "artifacts": str(opts.artifacts),
        "header": str(inputs.header.path),
        "scheme": opts.scheme,
        "header_scheme": inputs.header.scheme,
        "model_hash": inputs.header.model_hash,
        "data_hash": inputs.header.data_hash,
        "board": {
            "port": opts.port,
            "emulated": emulated,
            "build_id": info.build_id,
            "tick_source": TickSource(info.tick_source).name.lower(),
            "tick_hz": tick_hz,
            "reset_cause": _name(ResetCause, info.reset_cause),
            "watchdog_ms": info.watchdog_ms,
            "selftest": _name(SelfTest, info.selftest),
            "kernel_version": info.kernel_version,
            "rx_dropped_after_run": info_after.rx_dropped,
            "rx_overruns_after_run": info_after.rx_overruns,
        },
        "open_loop": {
            "states": int(len(states)),
            "seed": opts.seed,
            "reference": ref.name,
            "bit_exact_fraction": float(same.mean()) if ref.bit_exact else None,
            **codes,
            "vs_reference": vs_ref,
            "vs_float": vs_float,
            "tolerance_vs_float": {"max": ref.max_vs_float, "mean": ref.mean_vs_float},
        },
        "closed_loop": {
            "task": closed_loop["task"],
            "episodes": opts.episodes,
            "success_rate": success,
            "mean_final_error_m": {k: float(np.mean(r.final_error)) for k, r in runs.items()},
            "mean_length_steps": {k: float(np.mean(r.lengths)) for k, r in runs.items()},
            "board_identical_to_reference": identical,
            "board_steps": len(closed_loop["results"]),
            "paced": closed_loop["paced"],
            "rows": rows,
        },
        "link": {
            "steps": len(results),
            "rtt_ms": {
                "p50": float(np.percentile(rtt_ms, 50)),
                "p99": float(np.percentile(rtt_ms, 99)),
                "max": float(rtt_ms.max()),
            },
            "round_trips_per_s": len(open_loop["results"]) / open_loop["wall_s"],
            "retries": link_stats.retries,
            "timeouts": link_stats.timeouts,
            "corrupt_replies": link_stats.corrupt_replies,
            "bytes_per_step": {
                "step": step_bytes,
                "action": action_bytes,
                "total": step_bytes + action_bytes,
            },
            "line_rate_bound_per_s": {
                str(opts.baudrate): line_rate_bound(step_bytes + action_bytes, opts.baudrate)
            },
        },
        "inference": {
            "macs": info.macs,
            "ticks": {"median": median_ticks, "min": int(ticks.min()), "max": int(ticks.max())},
            "us": median_ticks / tick_hz * 1e6,
            "instructions_estimate": instructions,
            "instructions_per_mac": instructions / info.macs if instructions else None,
            # Building the observation and keeping the command (qp_state.h), apart.
            "state_ticks_median": float(np.median([r.state_ticks for r in results])),
            "state_instructions_estimate": instructions_from_ticks(
                float(np.median([r.state_ticks for r in results])), tick_hz
            )
            if emulated
            else None,
        },
        "checks": checks,
        "passed": all(ok for _, _, ok in checks.values()),
    }


def closed_loop_quality(runs: dict, window_steps: int) -> dict:
    """Hover quality (sim/quality.py) of each flyer's rollout, as {figure: {flyer:
    value}} like the other per-flyer figures of a row. The board's are those of the
    commands that reached the motors: in paced runs a missed deadline holds the last."""
    q = {who: quality.hover_quality(r, window_steps) for who, r in runs.items()}
    return {k: {who: q[who][k] for who in runs} for k in quality.METRICS}


def _row_summary(row: dict, window_steps: int) -> dict:
    """One closed-loop row of hil.json: success, final error, hover quality and latency
    per flyer."""
    runs = row["runs"]
    success = {k: r.success_rate for k, r in runs.items()}
    return {
        "success_rate": success,
        "mean_final_error_m": {k: float(np.mean(r.final_error)) for k, r in runs.items()},
        **closed_loop_quality(runs, window_steps),
        "board_identical_to_reference": bool(
            np.array_equal(runs["board"].positions, runs["reference"].positions, equal_nan=True)
        ),
        "success_gap_pp": abs(success["board"] - success["reference"]) * 100,
        **{k: v for k, v in row.items() if k != "runs"},
    }


def table(rep: dict) -> str:
    ol, cl, link, inf = rep["open_loop"], rep["closed_loop"], rep["link"], rep["inference"]
    b = rep["board"]
    where = "QEMU netduinoplus2" if b["emulated"] else b["port"]
    sr = cl["success_rate"]
    lines = [
        f"HIL {rep['scheme']} ({rep['header_scheme']}) on {where} (build {b['build_id']}), "
        f"model {rep['model_hash'][:16]}",
        "",
        f"  {'open loop':24s}{ol['states']} rollout states",
        f"  {'  vs reference':24s}max {ol['vs_reference']['max']:.3g}  mean "
        f"{ol['vs_reference']['mean']:.3g}  ({ol['reference']})",
        f"  {'  vs float policy':24s}max {ol['vs_float']['max']:.3g}  mean "
        f"{ol['vs_float']['mean']:.3g}  p99 {ol['vs_float']['p99']:.3g}",
        f"  {'closed loop':24s}{cl['episodes']} {cl['task']} episodes, {cl['board_steps']} "
        "board steps",
        f"  {'  success rate':24s}board {sr['board']:.1%}  reference {sr['reference']:.1%}  "
        f"float {sr['float']:.1%}",
        f"  {'  board == reference':24s}{'identical trajectories' if cl['board_identical_to_reference'] else 'trajectories differ'}",  # noqa: E501
        *(
            f"  {'  ' + name:24s} board {r['success_rate']['board']:.0%}  reference "
            f"{r['success_rate']['reference']:.0%}  float {r['success_rate']['float']:.0%}"
            + (
                f"  (link latency median {r['latency_ms_median']:g} ms, "
                f"{r['deadline_misses']} deadline misses)"
                if cl["paced"]
                else f"  ({r['latency_ms']:g} ms latency, lockstep)"
            )
            + f"; board {_flyer_quality(r, 'board', brief=True)}"
            for name, r in cl["rows"].items()
        ),
        *(
            f"  {'  hover quality' if who == 'board' else '':24s}{who} (nominal): "
            + _flyer_quality(cl["rows"]["nominal"], who)
            for who in ("board", "reference")
        ),
        f"  {'round trip':24s}p50 {link['rtt_ms']['p50']:.2f} ms  p99 {link['rtt_ms']['p99']:.2f}"
        f" ms  {link['round_trips_per_s']:.0f} STEP/s  ({link['retries']} retries)",
        f"  {'bytes per STEP':24s}{link['bytes_per_step']['step']} + "
        f"{link['bytes_per_step']['action']}; line-rate bound "
        + ", ".join(f"{v:.0f}/s at {k} baud" for k, v in link["line_rate_bound_per_s"].items()),
        f"  {'on-board inference':24s}{inf['ticks']['median']:.0f} ticks = {inf['us']:.1f} us "
        f"at {b['tick_hz'] / 1e6:.0f} MHz ({b['tick_source']})"
        + (
            f"; {inf['instructions_estimate']:.0f} instructions, "
            f"{inf['instructions_per_mac']:.2f} per MAC"
            if inf["instructions_estimate"]
            else ""
        ),
        f"  {'board state':24s}{inf['state_ticks_median']:.0f} ticks per step (observation "
        "built and command kept, apart from the inference)",
        "",
    ]
    for name, (value, target, ok) in rep["checks"].items():
        lines.append(f"  {name:28s}{value:>12.4g}  target {target:<8g} {'ok' if ok else 'FAILED'}")
    lines.append("")
    lines.append("  HIL passed" if rep["passed"] else "  HIL FAILED")
    return "\n".join(lines)


def _flyer_quality(row: dict, who: str, brief: bool = False) -> str:
    """One flyer's hover quality out of a row of hil.json, in one line."""
    return quality.describe({k: row[k][who] for k in quality.METRICS}, brief)


def write(rep: dict, open_loop: dict, closed_loop: dict, inputs, states, reports: Path) -> None:
    reports = Path(reports)
    text = report_json.dumps(rep, indent=2) + "\n"
    atomic_write(reports / "hil.json", lambda tmp: tmp.write_text(text))
    fig = plot(rep, open_loop, closed_loop, inputs, states)
    try:
        atomic_write(reports / "hil.png", lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def write_video(path: Path, closed_loop: dict, inputs, emulated: bool, log) -> Path | None:
    """Every closed-loop episode, row after row: the board's flight beside the
    reference's from the same start, replayed from the trajectories the HIL recorded."""
    from sim.video import Shot, write_rollout_video

    task = inputs.policy.spec.task_config()
    who = {
        "board": "board (QEMU)" if emulated else "board",
        "reference": "reference: " + inputs.reference.name.split(" (")[0],
    }
    clips = []
    for row, data in closed_loop["rows"].items():
        runs = data["runs"]
        for e in range(runs["board"].success.size):
            clips.append(
                [
                    Shot(
                        runs[name],
                        e,
                        task,
                        f"{label}\n{row}: episode {e + 1} "
                        f"({'success' if runs[name].success[e] else 'failure'})",
                    )
                    for name, label in who.items()
                ]
            )
    return write_rollout_video(path, clips, log)


def plot(rep: dict, open_loop: dict, closed_loop: dict, inputs, states):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    board = open_loop["actions"]
    float_actions = inputs.policy.act(states)
    err = np.abs(board.astype(np.float64) - float_actions)
    tol = rep["open_loop"]["tolerance_vs_float"]["max"]
    fig, ax = plt.subplots(2, 2, figsize=(12, 8.5))
    fig.suptitle(
        f"HIL {rep['scheme']}: model {rep['model_hash'][:12]}, "
        f"{'QEMU' if rep['board']['emulated'] else rep['board']['port']}; "
        f"{'PASSED' if rep['passed'] else 'FAILED'}"
    )

    a = ax[0, 0]
    a.hist(err.ravel(), bins=60, color="tab:blue", log=True)
    a.axvline(tol, color="tab:red", ls="--", label=f"export tolerance {tol:g}")
    frac = rep["open_loop"]["bit_exact_fraction"]
    exact = "" if frac is None else f"\nbit-exact with the reference on {frac:.1%} of states"
    a.set(
        title=f"|board - float policy| on {len(states)} states{exact}",
        xlabel="absolute action error",
        ylabel="count",
    )
    a.legend()

    a = ax[0, 1]
    for k in range(board.shape[1]):
        a.scatter(float_actions[:, k], board[:, k], s=4, alpha=0.5, label=f"action {k}")
    a.plot([-1, 1], [-1, 1], color="grey", lw=0.8)
    a.set(title="board vs float policy", xlabel="float policy action", ylabel="board action")
    a.legend(markerscale=3, fontsize=8)

    a = ax[1, 0]
    rtt = np.array([r.rtt_s for r in open_loop["results"] + closed_loop["results"]]) * 1e3
    a.hist(rtt, bins=60, color="tab:green")
    for q, ls in (("p50", "-"), ("p99", "--")):
        v = rep["link"]["rtt_ms"][q]
        a.axvline(v, color="black", ls=ls, label=f"{q} {v:.2f} ms")
    inf = rep["inference"]
    a.set(
        title=f"STEP round trip ({rep['link']['steps']} steps); on-board inference "
        f"{inf['us']:.1f} us",
        xlabel="ms",
        ylabel="count",
    )
    a.legend()

    a = ax[1, 1]
    runs = closed_loop["runs"]
    styles = {"board": ("tab:blue", "-", 2.0), "reference": ("tab:orange", "--", 1.2)}
    styles["float"] = ("grey", ":", 1.2)
    for name, (color, ls, lw) in styles.items():
        r = runs[name]
        t = np.arange(r.positions.shape[0]) / r.control_hz
        dist = np.linalg.norm(r.positions - r.target, axis=2)
        for e in range(dist.shape[1]):
            sr = rep["closed_loop"]["success_rate"][name]
            label = f"{name} (success {sr:.0%})" if e == 0 else None
            a.plot(t, dist[:, e], color=color, ls=ls, lw=lw, label=label)
    nominal = rep["closed_loop"]["rows"].get("nominal", {})
    late = (
        f"board latency median {nominal.get('latency_ms_median', 0):g} ms, real time"
        if rep["closed_loop"]["paced"]
        else f"{nominal.get('latency_ms', 0):g} ms late, lockstep"
    )
    a.set(
        title=f"closed loop: {rep['closed_loop']['task']}, nominal row ({late}), same starts",
        xlabel="s",
        ylabel="distance to target, m",
    )
    a.legend(fontsize=8)
    fig.tight_layout()
    return fig
