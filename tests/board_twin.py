"""The firmware fixture's board in numpy: the blocks it keeps (export/kernel/qp_state.h,
in the same float32 arithmetic) around the fixture policy, for the tests and the protocol
vectors that predict a v4 board's answers.

The fixture's layout is the deployable one with one step of history: a STEP's 18 inputs
(position error, rotation matrix, velocity, body rates), then the position-error
integral (3) and the last command (4). The constants are the fixture header's own.
"""

from __future__ import annotations

import re

import numpy as np
from firmware_support import FIXTURE_HEADER, fixture_policy


def _define(name: str) -> str:
    m = re.search(rf"^#define {name} (.+)$", FIXTURE_HEADER.read_text(), re.M)
    assert m is not None, f"{FIXTURE_HEADER} has no {name}"
    return m[1].strip().strip('"')


def _f32(name: str) -> np.float32:
    return np.float32(float(_define(name).rstrip("f")))


IN_DIM = int(_define("QP_IN_DIM"))
OBS_DIM = int(_define("QP_OBS_DIM"))
ACT_DIM = int(_define("QP_ACT_DIM"))
HISTORY = int(_define("QP_HISTORY"))
BOARD_BLOCKS = _define("QP_BOARD_BLOCKS")
DATA_HASH = _define("QP_DATA_HASH")
POSITION_ERROR = int(_define("QP_IN_POSITION_ERROR"))
INTEGRAL_LIMIT, INTEGRAL_DT = _f32("QP_INTEGRAL_LIMIT"), _f32("QP_INTEGRAL_DT")
INITIAL_ACTION = _f32("QP_INITIAL_ACTION")
assert OBS_DIM == IN_DIM + 3 + HISTORY * ACT_DIM, "the twin knows the fixture's layout only"


class FixtureBoard:
    """A board's kept blocks: ``reset``, then ``observe`` (this step's observation, the
    state untouched) and ``commit`` (keep the integral and the command), as qp_state.h."""

    def __init__(self) -> None:
        self.ready = False
        self.integral = np.zeros(3, np.float32)
        self.past = np.zeros(HISTORY * ACT_DIM, np.float32)
        self._next = self.integral

    def reset(self) -> None:
        self.ready = True
        self.integral = np.zeros(3, np.float32)
        self.past = np.full(HISTORY * ACT_DIM, INITIAL_ACTION, np.float32)

    def observe(self, inputs) -> np.ndarray:
        assert self.ready, "observe before reset"
        x = np.asarray(inputs, np.float32)
        step = x[POSITION_ERROR : POSITION_ERROR + 3] * INTEGRAL_DT  # float32 product
        self._next = np.clip(self.integral + step, -INTEGRAL_LIMIT, INTEGRAL_LIMIT)
        return np.concatenate([x, self._next, self.past]).astype(np.float32)

    def commit(self, action) -> None:
        self.integral = self._next
        a = np.clip(np.asarray(action, np.float32), np.float32(-1), np.float32(1))
        self.past = np.concatenate([a, self.past[:-ACT_DIM]]).astype(np.float32)

    def act(self, inputs) -> np.ndarray:
        """observe, the fixture policy, commit: what the board answers a good STEP."""
        action = fixture_policy(self.observe(inputs))
        self.commit(action)
        return action
