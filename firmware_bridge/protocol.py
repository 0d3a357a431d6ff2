"""Wire protocol constants: the one place they live in Python.

They mirror firmware/core/qp_protocol.h (tests/test_protocol_constants.py checks that
the two agree) and are explained byte by byte in docs/protocol.md.
"""

from __future__ import annotations

from enum import IntEnum

# 2: INFO gained reset cause, watchdog and receive counters; 3: the policy self-test's
# result and the kernel version; 4: the board keeps its own blocks of the observation
# (RESET/READY, STEP carries only estimates and sensors, ACTION the state-update time,
# INFO the data hash, the input size and the blocks the board keeps).
PROTOCOL_VERSION = 4

HEADER_SIZE = 3  # type u8, seq u16 LE
CRC_SIZE = 2
MAX_PAYLOAD = 512
MIN_PACKET = HEADER_SIZE + CRC_SIZE
MAX_PACKET = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE
MAX_ENCODED = MAX_PACKET + (MAX_PACKET + 253) // 254  # COBS: one code byte per 254
MAX_FRAME = MAX_ENCODED + 1
FRAME_DELIMITER = 0

# CRC-16/IBM-3740 (alias CRC-16/CCITT-FALSE): no reflection, MSB first.
CRC16_POLY = 0x1021
CRC16_INIT = 0xFFFF
CRC16_XOROUT = 0x0000
CRC16_CHECK = 0x29B1  # CRC of b"123456789"

HASH_SIZE = 32
BUILD_ID_SIZE = 24
INFO_V1_SIZE = 16 + HASH_SIZE + BUILD_ID_SIZE  # version 1's INFO; version 2 appends 12
INFO_V2_SIZE = INFO_V1_SIZE + 12  # version 3 appends 2
INFO_V3_SIZE = INFO_V2_SIZE + 2  # version 4 appends the data hash, in_dim, board blocks
BOARD_BLOCKS_SIZE = 64  # INFO v4: "name:size,..." of the board's own blocks, 0-padded
INFO_SIZE = INFO_V3_SIZE + HASH_SIZE + 1 + BOARD_BLOCKS_SIZE
INFO_FLAG_ECHO = 0x01
INFO_FLAG_FLIGHT = 0x02  # the flight build: answers the FLIGHT_* messages

STEP_HEADER = 1
ACTION_HEADER = 13
MAX_OBS = (MAX_PAYLOAD - STEP_HEADER) // 4

# The flight build's messages (docs/protocol.md section 12): the Crazyflie app on the board.
FLIGHT_STATE_FLOATS = 16  # position 3, velocity 3, quaternion w x y z, gyro deg/s 3, target 3
FLIGHT_TICKS_HEADER = 6  # ticks u8, z_mode u8, age_ms u32
FLIGHT_TICKS_SIZE = FLIGHT_TICKS_HEADER + 4 * FLIGHT_STATE_FLOATS
FLIGHT_FORCES_HEADER = 58
FLIGHT_MAX_OBS = (MAX_PAYLOAD - FLIGHT_FORCES_HEADER) // 4
FLIGHT_NAME_MAX = 48  # "group.name"
FLIGHT_VALUE_SIZE = 9  # found u8, value f64


class MsgType(IntEnum):
    HELLO = 0x01
    PING = 0x02
    STEP = 0x03
    RESET = 0x04
    FLIGHT_START = 0x05
    FLIGHT_TICKS = 0x06
    FLIGHT_PARAM = 0x07
    FLIGHT_LOG = 0x08
    INFO = 0x81
    PONG = 0x82
    ACTION = 0x83
    READY = 0x84
    FLIGHT_STARTED = 0x85
    FLIGHT_FORCES = 0x86
    FLIGHT_PARAM_VALUE = 0x87
    FLIGHT_LOG_VALUE = 0x88
    ERROR = 0xFF


class ErrorCode(IntEnum):
    BAD_FRAME = 1
    BAD_CRC = 2
    OVERSIZE = 3
    UNKNOWN_TYPE = 4
    BAD_LENGTH = 5
    WRONG_DIMS = 6
    NONFINITE = 7
    POLICY = 8
    NOT_RESET = 9  # STEP before the first RESET: the board's blocks have no start
    NOT_STARTED = 10  # FLIGHT_TICKS before a FLIGHT_START whose self-test passed


# Errors raised before the CRC verified: the reply's seq is 0, the request may be resent.
INTEGRITY_ERRORS = frozenset({ErrorCode.BAD_FRAME, ErrorCode.BAD_CRC, ErrorCode.OVERSIZE})


class ResetCause(IntEnum):
    """Why the device last reset (INFO byte 72; the STM32F405 reads RCC_CSR)."""

    UNKNOWN = 0  # no flag: host build, or QEMU's stub RCC
    POWER_ON = 1
    PIN = 2
    SOFTWARE = 3
    WATCHDOG = 4  # the independent watchdog expired
    WINDOW_WATCHDOG = 5
    LOW_POWER = 6
    BROWN_OUT = 7


class Scheme(IntEnum):
    NONE = 0
    INT = 1  # policy.h: the integer header (12-bit weights, int16 activations)
    FLOAT32 = 2


class SelfTest(IntEnum):
    """The policy self-test the firmware ran at boot (INFO byte 84)."""

    PASSED = 0  # every self-test action equals the exporter's
    FAILED = 1  # the board computes other actions than the exporter did: do not fly it
    NOT_RUN = 2  # ECHO build: no policy


class TickSource(IntEnum):
    HOST_CLOCK = 0
    SYSTICK = 1
    DWT_CYCCNT = 2


# Name in qp_protocol.h -> value here, for the cross-language check.
C_NAMES: dict[str, int] = {
    "QP_PROTOCOL_VERSION": PROTOCOL_VERSION,
    "QP_HEADER_SIZE": HEADER_SIZE,
    "QP_CRC_SIZE": CRC_SIZE,
    "QP_MAX_PAYLOAD": MAX_PAYLOAD,
    "QP_MIN_PACKET": MIN_PACKET,
    "QP_MAX_PACKET": MAX_PACKET,
    "QP_MAX_ENCODED": MAX_ENCODED,
    "QP_MAX_FRAME": MAX_FRAME,
    "QP_FRAME_DELIMITER": FRAME_DELIMITER,
    "QP_CRC16_POLY": CRC16_POLY,
    "QP_CRC16_INIT": CRC16_INIT,
    "QP_CRC16_XOROUT": CRC16_XOROUT,
    "QP_CRC16_CHECK": CRC16_CHECK,
    "QP_HASH_SIZE": HASH_SIZE,
    "QP_BUILD_ID_SIZE": BUILD_ID_SIZE,
    "QP_INFO_V1_SIZE": INFO_V1_SIZE,
    "QP_INFO_V2_SIZE": INFO_V2_SIZE,
    "QP_INFO_V3_SIZE": INFO_V3_SIZE,
    "QP_BOARD_BLOCKS_SIZE": BOARD_BLOCKS_SIZE,
    "QP_INFO_SIZE": INFO_SIZE,
    "QP_INFO_FLAG_ECHO": INFO_FLAG_ECHO,
    "QP_INFO_FLAG_FLIGHT": INFO_FLAG_FLIGHT,
    "QP_STEP_HEADER": STEP_HEADER,
    "QP_ACTION_HEADER": ACTION_HEADER,
    "QP_MAX_OBS": MAX_OBS,
    "QP_FLIGHT_STATE_FLOATS": FLIGHT_STATE_FLOATS,
    "QP_FLIGHT_TICKS_HEADER": FLIGHT_TICKS_HEADER,
    "QP_FLIGHT_TICKS_SIZE": FLIGHT_TICKS_SIZE,
    "QP_FLIGHT_FORCES_HEADER": FLIGHT_FORCES_HEADER,
    "QP_FLIGHT_MAX_OBS": FLIGHT_MAX_OBS,
    "QP_FLIGHT_NAME_MAX": FLIGHT_NAME_MAX,
    "QP_FLIGHT_VALUE_SIZE": FLIGHT_VALUE_SIZE,
    **{f"QP_MSG_{m.name}": m.value for m in MsgType},
    **{f"QP_ERROR_{e.name}": e.value for e in ErrorCode},
    **{f"QP_SCHEME_{s.name}": s.value for s in Scheme},
    **{f"QP_RESET_{r.name}": r.value for r in ResetCause},
    **{f"QP_SELFTEST_{t.name}": t.value for t in SelfTest},
    "QP_TICK_HOST_CLOCK": TickSource.HOST_CLOCK,
    "QP_TICK_SYSTICK": TickSource.SYSTICK,
    "QP_TICK_DWT_CYCCNT": TickSource.DWT_CYCCNT,
}
