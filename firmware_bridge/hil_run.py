"""One HIL run from start to end: the board, the measurements of hil.py, the report of
hil_report.py (which needs hil's types, so the run that needs both lives apart)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from sim import observation

from . import hil_report
from .hil import (
    EPISODES_SEED_OFFSET,
    HANDSHAKE_TIMEOUTS,
    STATES_SEED_OFFSET,
    HilError,
    HilOptions,
    board,
    bytes_per_step,
    closed_loop,
    closed_loop_task,
    hil_rows,
    load_inputs,
    open_loop,
    recorded_episodes,
)
from .protocol import Scheme


def run_hil(opts: HilOptions, log: Callable[[str], None] = print) -> dict:
    """The whole HIL run (hil.py's steps in turn); returns the report (see
    hil_report.build) after writing it."""
    inputs = load_inputs(opts)
    log(f"checkpoint: {inputs.policy.origin}")
    closed_loop_task(inputs.policy.spec.task_config(), "nominal", opts.latency_ms)  # early
    # The board first: a wrong port or an unplugged board fails before any heavy work.
    with board(opts, inputs.header) as (link, emulated):
        info = link.info
        log(f"board: {info.describe()}")
        if Scheme(info.scheme).name.lower() != opts.scheme:
            raise HilError(f"the board runs the {Scheme(info.scheme).name} scheme")
        spec = inputs.policy.spec
        log(
            f"open loop: whole episodes flown by the reference, at least {opts.states} "
            f"observations (seed {opts.seed}); RESET, then the estimates and sensors of each"
        )
        episodes = recorded_episodes(
            inputs.reference.act, spec, opts.states, opts.seed + STATES_SEED_OFFSET
        )
        states = np.concatenate(episodes)
        ol = open_loop(link, episodes, spec)
        paced_run = (not emulated) if opts.paced is None else opts.paced
        log(
            f"closed loop: {opts.episodes} episodes per row "
            f"({len(hil_rows(spec.task_config(), opts.rows))} rows: {opts.rows}) with the "
            + (
                "board in the loop, in real time at the control rate"
                if paced_run
                else f"board in the loop, lockstep, nominal row {opts.latency_ms:g} ms late"
            )
        )
        cl = closed_loop(link, inputs, opts, paced_run, opts.seed + EPISODES_SEED_OFFSET)
        stats = link.stats
        # INFO again: the board's receive counters after every request of the run.
        after = link.handshake(inputs.header.model_hash, deadline=HANDSHAKE_TIMEOUTS * link.timeout)
    report = hil_report.build(
        opts=opts,
        inputs=inputs,
        info=info,
        info_after=after,
        emulated=emulated,
        states=states,
        open_loop=ol,
        closed_loop=cl,
        link_stats=stats,
        wire=bytes_per_step(states[0][observation.wire_columns(spec.obs_layout)], info.act_dim),
    )
    hil_report.write(report, ol, cl, inputs, states, Path(opts.reports))
    if opts.video:
        log(f"video: {opts.episodes} episodes per row, board beside reference")
        written = hil_report.write_video(Path(opts.video), cl, inputs, emulated, log)
        report = {**report, "video": None if written is None else str(written)}
    return report
