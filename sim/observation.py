"""The observation contract: every block a policy may observe, declared once.

Each block has a name, a size, a unit, a frame, what it means, which task fields add
noise to it, how many copies a task observes, and its source:

- ``estimate``: the flight controller's state estimator (position, attitude, velocity);
- ``sensor``: the IMU or motor telemetry, read directly (gyro, rotor speeds);
- ``board``: kept by the flight controller itself from what it observed and commanded.

Everything else is derived from ``BLOCKS``: a task's layout (``layout``), the env's
observation space and the compiled step's offsets (``offsets``), the robustness suite's
noise fields (``NOISE_FIELDS``), the policy spec, the ONNX metadata, both C headers'
``QP_OBS_LAYOUT`` and board-state constants, what a v4 STEP carries (``wire_blocks``),
the HIL and docs/sim.md's table (``markdown_table``). Adding a block is a row here plus
the code that computes it (sim/batch.py for estimates and sensors; for a board block
also export/kernel/qp_state.h, its C twin).

The board's blocks, every control step, in this order (the sim's step and qp_state.h
do exactly this, in float32):

1. take the newest estimates and sensor readings (the ``estimate`` and ``sensor``
   blocks of this step's observation);
2. update: ``position_integral[k] = clip(position_integral[k] + position_error[k] * dt,
   -integral_limit, +integral_limit)`` with ``dt = 1 / control_hz``, both as float32,
   using this step's (noisy) position error: the policy sees an integral that already
   includes the error it is looking at;
3. observe: the blocks in layout order, ``past_actions`` holding the commands of the
   previous steps (newest first);
4. act, then shift ``past_actions`` by one row and put the command just issued,
   clipped to [-1, 1], in row 0.

After a reset (an episode's start, or the controller's activation) the integral is zero
and every past action holds the task's ``initial_action`` (the command of the initial
rotor speed); the first step then runs 1-4 as every other does. Until the first command
reaches the motors (latency), the motors hold the initial rotor speed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

ESTIMATE, SENSOR, BOARD = "estimate", "sensor", "board"
SOURCES = (ESTIMATE, SENSOR, BOARD)


def _always(task) -> int:
    return 1


@dataclass(frozen=True)
class Block:
    name: str
    size: int  # numbers per copy
    unit: str
    frame: str
    source: str  # ESTIMATE, SENSOR or BOARD
    meaning: str
    copies: Callable = _always  # copies the task observes (0: the block is absent)
    noise: tuple[str, ...] = ()  # TaskConfig fields that perturb it in randomised worlds
    when: str = "always"  # the TaskConfig field that turns it on (docs)


BLOCKS: tuple[Block, ...] = (
    Block(
        "position_error",
        3,
        "m",
        "world (x forward, y left, z up)",
        ESTIMATE,
        "estimated position minus target",
        noise=("noise_position",),
    ),
    Block(
        "rotation_matrix",
        9,
        "1",
        "body to world, row-major",
        ESTIMATE,
        "estimated attitude as a rotation matrix",
        noise=("noise_attitude",),
    ),
    Block(
        "velocity",
        3,
        "m/s",
        "world",
        ESTIMATE,
        "estimated linear velocity",
        noise=("noise_velocity",),
    ),
    Block(
        "body_rates",
        3,
        "rad/s",
        "body (p, q, r)",
        SENSOR,
        "gyro: angular velocity with the episode's bias and white noise",
        noise=("noise_gyro", "gyro_bias"),
    ),
    Block(
        "rotor_speeds",
        4,
        "1",
        "rotors 1-4 (sim numbering)",
        SENSOR,
        "measured rotor speeds mapped linearly from [min, max] to [-1, 1]",
        copies=lambda task: int(task.observe_rotor_speeds),
        when="observe_rotor_speeds",
    ),
    Block(
        "position_integral",
        3,
        "m s",
        "world",
        BOARD,
        "sum of position_error x control period since reset, each axis clipped to "
        "+-integral_limit after every step (anti-windup)",
        copies=lambda task: int(task.observe_integral),
        when="observe_integral",
    ),
    Block(
        "past_actions",
        4,
        "1",
        "rotors 1-4 (sim numbering)",
        BOARD,
        "the policy's own last commands, newest first, 4 per step; after a reset every "
        "entry holds the initial action",
        copies=lambda task: int(task.action_history),
        when="action_history",
    ),
)

BY_NAME = {b.name: b for b in BLOCKS}

# The compiled step's offset array: slot 0 holds the past-action rows observed, slot
# 1 + i where BLOCKS[i] starts in the observation (-1 when absent). Appending a block
# moves no existing slot.
O_NPAST = 0


def _slot(name: str) -> int:
    return 1 + [b.name for b in BLOCKS].index(name)


O_POS = _slot("position_error")
O_ROT = _slot("rotation_matrix")
O_VEL = _slot("velocity")
O_RATES = _slot("body_rates")
O_ROTORS = _slot("rotor_speeds")
O_INTEGRAL = _slot("position_integral")
O_PAST = _slot("past_actions")

# Every noise field the estimate and sensor blocks name (the robustness suite's rows).
NOISE_FIELDS: tuple[str, ...] = tuple(f for b in BLOCKS for f in b.noise)


def block(name: str) -> Block:
    """The block called ``name``; a ValueError naming the known ones otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(
            f"observation block {name!r} is unknown; known: {', '.join(BY_NAME)}"
        ) from None


def layout(task) -> tuple[tuple[str, int, str], ...]:
    """(name, size, meaning) of each block ``task`` observes, in observation order."""
    out = []
    for b in BLOCKS:
        n = b.copies(task)
        if n:
            out.append((b.name, b.size * n, b.meaning))
    return tuple(out)


def offsets(task) -> list[int]:
    """The compiled step's offset slots for ``task`` (see O_NPAST)."""
    out = [-1] * (1 + len(BLOCKS))
    out[O_NPAST] = task.action_history
    at = 0
    for name, size, _ in layout(task):
        out[_slot(name)] = at
        at += size
    return out


def sources(obs_layout) -> list[str]:
    """The source of each block of a layout ((name, size, ...) entries)."""
    return [block(name).source for name, *_ in obs_layout]


def wire_blocks(obs_layout) -> list[tuple[str, int]]:
    """(name, size) of the blocks a board is sent each step (estimates and sensors),
    in observation order: a v4 STEP's numbers."""
    return [(name, size) for name, size, *_ in obs_layout if block(name).source != BOARD]


def board_blocks(obs_layout) -> list[tuple[str, int]]:
    """(name, size) of the blocks the board keeps itself, in observation order."""
    return [(name, size) for name, size, *_ in obs_layout if block(name).source == BOARD]


def wire_dim(obs_layout) -> int:
    return sum(size for _, size in wire_blocks(obs_layout))


def describe(obs_layout) -> list[dict]:
    """Every block of a layout with its offset, size and the table's facts (the bundle)."""
    out, at = [], 0
    for name, size, *_ in obs_layout:
        b = block(name)
        out.append(
            {
                "name": name,
                "offset": at,
                "size": int(size),
                "source": b.source,
                "unit": b.unit,
                "frame": b.frame,
                "meaning": b.meaning,
            }
        )
        at += size
    return out


def markdown_table() -> str:
    """docs/sim.md's table of the blocks (a test keeps the doc equal to it)."""
    rows = [
        "| block | size | unit | frame | source | when | meaning |",
        "|---|---|---|---|---|---|---|",
    ]
    for b in BLOCKS:
        size = f"{b.size} x `{b.when}`" if b.when == "action_history" else str(b.size)
        when = b.when if b.when == "always" else f"`{b.when}`"
        rows.append(
            f"| {b.name} | {size} | {b.unit} | {b.frame} | {b.source} | {when} | {b.meaning} |"
        )
    return "\n".join(rows)


def board_constants(task) -> dict:
    """The numbers the board's blocks need beyond the layout, as the float32 values the
    sim's step and the C module use (the data headers and the bundle carry them)."""
    return {
        "integral_limit": float(np.float32(task.integral_limit)),
        "integral_dt": float(np.float32(1.0 / task.control_hz)),
        "initial_action": float(np.float32(task.initial_action())),
        "history": int(task.action_history),
    }


def wire_columns(obs_layout) -> np.ndarray:
    """Indices of an observation's estimate and sensor numbers: what a v4 STEP sends."""
    cols = [
        np.arange(d["offset"], d["offset"] + d["size"])
        for d in describe(obs_layout)
        if d["source"] != BOARD
    ]
    return np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
