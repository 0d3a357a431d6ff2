"""What a data header tells export/kernel/qp_state.h, the C module that keeps the
board's blocks of the observation: derived from the policy spec and sim/observation.py.

``state_values`` gives the numbers (export/header.py writes them as ``#define`` lines);
``state_kinds`` the block kinds, refusing a
board block the C module has no code for (a block added to sim/observation.py with the
source ``board`` needs its C twin in qp_state.h first).
"""

from __future__ import annotations

from pathlib import Path

from export.model import ExportError
from sim import observation
from sim.contract.spec import PolicySpec

STATE_NAME = "qp_state.h"
STATE_SOURCE = Path(__file__).parent / "kernel" / STATE_NAME
# qp_state.h's QP_BLOCK_* codes for the blocks it keeps; every estimate or sensor block
# is QP_BLOCK_INPUT (0), copied from the step's input.
BOARD_KINDS = {"position_integral": 1, "past_actions": 2}
INPUT_KIND = 0


def state_kinds(spec: PolicySpec) -> list[tuple[int, int]]:
    """(kind, size) per block of the spec's layout, in order."""
    out = []
    for name, size, _ in spec.obs_layout:
        try:
            source = observation.block(name).source
        except ValueError as e:
            raise ExportError(f"policy spec: {e}") from None
        if source != observation.BOARD:
            out.append((INPUT_KIND, size))
        elif name in BOARD_KINDS:
            out.append((BOARD_KINDS[name], size))
        else:
            raise ExportError(
                f"observation block {name!r} is kept by the board, but {STATE_NAME} has no "
                f"code for it (it keeps {', '.join(BOARD_KINDS)})"
            )
    return out


def state_values(spec: PolicySpec) -> dict:
    """The numbers a data header gives qp_state.h (export/header.py writes them)."""
    kinds = state_kinds(spec)
    at, in_pos = 0, -1
    for name, size in observation.wire_blocks(spec.obs_layout):
        if name == "position_error":
            in_pos = at
        at += size
    try:
        consts = observation.board_constants(spec.task_config())
    except ValueError as e:
        raise ExportError(f"policy spec: {e}") from None
    return {"in_dim": at, "blocks": kinds, "in_position_error": in_pos, **consts}
