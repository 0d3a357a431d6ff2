"""Frame codec: COBS, CRC-16, packets and typed messages (see docs/protocol.md).

A frame on the wire is ``COBS(packet) 0x00``; a packet is
``type u8 | seq u16 LE | payload | crc16 u16 LE`` with the CRC over type, seq and
payload. Decoding failures raise :class:`FrameError` carrying the protocol error code
that the firmware would answer with, so both sides classify garbage the same way.
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .protocol import (
    ACTION_HEADER,
    BOARD_BLOCKS_SIZE,
    BUILD_ID_SIZE,
    CRC16_INIT,
    CRC_SIZE,
    FLIGHT_FORCES_HEADER,
    FLIGHT_NAME_MAX,
    FLIGHT_STATE_FLOATS,
    FLIGHT_TICKS_HEADER,
    FLIGHT_TICKS_SIZE,
    FLIGHT_VALUE_SIZE,
    FRAME_DELIMITER,
    HASH_SIZE,
    HEADER_SIZE,
    INFO_FLAG_ECHO,
    INFO_FLAG_FLIGHT,
    INFO_SIZE,
    INFO_V1_SIZE,
    INFO_V2_SIZE,
    INFO_V3_SIZE,
    MAX_ENCODED,
    MAX_PACKET,
    MAX_PAYLOAD,
    MIN_PACKET,
    PROTOCOL_VERSION,
    STEP_HEADER,
    ErrorCode,
    MsgType,
    ResetCause,
    Scheme,
    SelfTest,
    TickSource,
)


class FrameError(ValueError):
    """A frame or packet the protocol rejects; ``code`` is the matching ErrorCode."""

    def __init__(self, code: ErrorCode, message: str, seq: int = 0):
        super().__init__(f"{code.name}: {message}")
        self.code, self.seq = code, seq


# ---------------------------------------------------------------- CRC and COBS


# binascii.crc_hqx is CRC-16 with polynomial 0x1021, unreflected and without a final xor:
# CRC-16/IBM-3740 once started at 0xFFFF (the check value and the shared vectors, which
# the firmware's C also passes, pin this down in tests/test_protocol_codec.py).


def crc16(data: bytes) -> int:
    """CRC-16/IBM-3740: poly 0x1021, init 0xFFFF, no reflection, xorout 0."""
    return binascii.crc_hqx(data, CRC16_INIT)


def cobs_encode(data: bytes) -> bytes:
    """COBS without the trailing delimiter; a final full block gets no extra code byte."""
    out = bytearray()
    block = bytearray()
    for i, b in enumerate(data):
        if b == 0:
            out += bytes([len(block) + 1]) + block
            block.clear()
            continue
        block.append(b)
        if len(block) == 254:
            out += b"\xff" + block
            block.clear()
            if i + 1 == len(data):
                return bytes(out)
    out += bytes([len(block) + 1]) + block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Inverse of cobs_encode; raises FrameError(BAD_FRAME) on invalid input."""
    out = bytearray()
    i = 0
    while i < len(data):
        code = data[i]
        i += 1
        if code == 0 or i + code - 1 > len(data):
            raise FrameError(ErrorCode.BAD_FRAME, f"COBS code byte 0x{code:02x} at {i - 1}")
        block = data[i : i + code - 1]
        if 0 in block:
            raise FrameError(ErrorCode.BAD_FRAME, "0x00 inside a COBS frame")
        out += block
        i += code - 1
        if code != 0xFF and i < len(data):
            out.append(0)
    return bytes(out)


# ---------------------------------------------------------------- packets


@dataclass(frozen=True)
class Packet:
    type: int
    seq: int
    payload: bytes


def encode_packet(msg_type: int, seq: int, payload: bytes = b"") -> bytes:
    """A complete frame: COBS-encoded packet plus the 0x00 delimiter."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    body = struct.pack("<BH", msg_type, seq & 0xFFFF) + payload
    body += struct.pack("<H", crc16(body))
    return cobs_encode(body) + bytes([FRAME_DELIMITER])


def decode_frame(frame: bytes) -> Packet:
    """Check one frame (without its delimiter) the way the firmware does."""
    if len(frame) > MAX_ENCODED:
        raise FrameError(ErrorCode.OVERSIZE, f"{len(frame)} encoded bytes > {MAX_ENCODED}")
    packet = cobs_decode(frame)
    if len(packet) < MIN_PACKET:
        raise FrameError(ErrorCode.BAD_FRAME, f"{len(packet)}-byte packet < {MIN_PACKET}")
    if len(packet) > MAX_PACKET:
        raise FrameError(ErrorCode.OVERSIZE, f"{len(packet)}-byte packet > {MAX_PACKET}")
    (crc,) = struct.unpack_from("<H", packet, len(packet) - CRC_SIZE)
    if crc16(packet[:-CRC_SIZE]) != crc:
        raise FrameError(ErrorCode.BAD_CRC, f"CRC 0x{crc:04x} != 0x{crc16(packet[:-2]):04x}")
    msg_type, seq = struct.unpack_from("<BH", packet)
    return Packet(msg_type, seq, bytes(packet[HEADER_SIZE:-CRC_SIZE]))


class FrameReader:
    """Splits a byte stream at 0x00 delimiters; bounded memory like the firmware."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._overflow = False

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        """Complete frames (bodies without delimiter) or FrameError(OVERSIZE), in order."""
        out: list[bytes | FrameError] = []
        for b in data:
            if b != FRAME_DELIMITER:
                if len(self._buf) < MAX_ENCODED:
                    self._buf.append(b)
                else:
                    self._overflow = True
                continue
            if self._overflow:
                out.append(FrameError(ErrorCode.OVERSIZE, f"frame > {MAX_ENCODED} bytes"))
            elif self._buf:
                out.append(bytes(self._buf))
            self._buf.clear()
            self._overflow = False
        return out


# ---------------------------------------------------------------- messages


def _f32(values: Iterable[float]) -> bytes:
    with np.errstate(over="ignore"):
        return np.asarray(list(values), dtype="<f4").tobytes()


def _floats(data: bytes) -> tuple[float, ...]:
    return tuple(float(v) for v in np.frombuffer(data, dtype="<f4"))


@dataclass(frozen=True)
class Hello:
    TYPE = MsgType.HELLO

    def payload(self) -> bytes:
        return b""


@dataclass(frozen=True)
class Ping:
    data: bytes = b""
    TYPE = MsgType.PING

    def payload(self) -> bytes:
        return self.data


@dataclass(frozen=True)
class Pong:
    data: bytes = b""
    TYPE = MsgType.PONG

    def payload(self) -> bytes:
        return self.data


@dataclass(frozen=True)
class Step:
    """The newest estimates and sensor readings (the layout's estimate and sensor blocks,
    in order); the board adds the blocks it keeps and answers with its command."""

    inputs: tuple[float, ...]
    TYPE = MsgType.STEP

    def payload(self) -> bytes:
        return bytes([len(self.inputs)]) + _f32(self.inputs)


@dataclass(frozen=True)
class Reset:
    """Starts an episode: the board's integral to zero, its past actions to the
    initial action."""

    TYPE = MsgType.RESET

    def payload(self) -> bytes:
        return b""


@dataclass(frozen=True)
class Ready:
    """The answer to RESET: the board's blocks are at their start."""

    TYPE = MsgType.READY

    def payload(self) -> bytes:
        return b""


@dataclass(frozen=True)
class Action:
    action: tuple[float, ...]
    infer_ticks: int  # the policy call alone
    tick_hz: int
    state_ticks: int = 0  # building the observation and keeping the command
    TYPE = MsgType.ACTION

    @property
    def infer_seconds(self) -> float:
        return self.infer_ticks / self.tick_hz if self.tick_hz else float("nan")

    def payload(self) -> bytes:
        head = struct.pack(
            "<IIIB", self.infer_ticks, self.tick_hz, self.state_ticks, len(self.action)
        )
        return head + _f32(self.action)


@dataclass(frozen=True)
class Error:
    code: int
    detail: int = 0
    TYPE = MsgType.ERROR

    def payload(self) -> bytes:
        return bytes([self.code, self.detail])

    def describe(self) -> str:
        try:
            name = ErrorCode(self.code).name
        except ValueError:
            name = f"code {self.code}"
        return f"{name} (detail {self.detail})"


@dataclass(frozen=True)
class Info:
    protocol_version: int
    scheme: int
    obs_dim: int
    act_dim: int
    flags: int
    tick_source: int
    max_payload: int
    macs: int
    tick_hz: int
    model_hash: bytes = field(repr=False)
    build_id: str
    # Version 2 (zero when decoded from a version-1 INFO):
    reset_cause: int = ResetCause.UNKNOWN
    reset_flags: int = 0  # STM32: RCC_CSR bits 31:24 at boot
    watchdog_ms: int = 0  # nominal watchdog timeout, 0 = none
    rx_dropped: int = 0  # bytes lost to a full receive ring since reset
    rx_overruns: int = 0  # UART overruns (at least one byte lost each) since reset
    # Version 3 (NOT_RUN and 0 when decoded from an older INFO):
    selftest: int = SelfTest.NOT_RUN  # the policy self-test at boot
    kernel_version: int = 0  # QP_KERNEL_VERSION the model header was generated for
    # Version 4 (empty when decoded from an older INFO):
    data_hash: bytes = field(default=b"", repr=False)  # QP_DATA_HASH: what the board runs
    in_dim: int = 0  # numbers a STEP carries (the estimate and sensor blocks)
    board_blocks: str = ""  # "name:size,..." of the blocks the board keeps
    TYPE = MsgType.INFO
    _FORMAT = "<BBBBBBHII"  # the 16 fixed bytes before the hash
    _FORMAT_V2 = "<BBHII"  # the 12 bytes after the build id
    _FORMAT_V3 = "<BB"  # the 2 bytes after those

    @property
    def model_hash_hex(self) -> str:
        return self.model_hash.hex()

    @property
    def data_hash_hex(self) -> str:
        return self.data_hash.hex()

    @property
    def echo(self) -> bool:
        return bool(self.flags & INFO_FLAG_ECHO)

    @property
    def flight(self) -> bool:
        """The flight build: the Crazyflie app on the board, the FLIGHT_* messages."""
        return bool(self.flags & INFO_FLAG_FLIGHT)

    @property
    def selftest_failed(self) -> bool:
        return self.selftest != SelfTest.PASSED and not (
            self.echo and self.selftest == SelfTest.NOT_RUN
        )

    def payload(self) -> bytes:
        head = struct.pack(
            self._FORMAT,
            self.protocol_version,
            self.scheme,
            self.obs_dim,
            self.act_dim,
            self.flags,
            self.tick_source,
            self.max_payload,
            self.macs,
            self.tick_hz,
        )
        build = self.build_id.encode("ascii")[:BUILD_ID_SIZE].ljust(BUILD_ID_SIZE, b"\0")
        tail = struct.pack(
            self._FORMAT_V2,
            self.reset_cause,
            self.reset_flags,
            self.watchdog_ms,
            self.rx_dropped,
            self.rx_overruns,
        )
        tail += struct.pack(self._FORMAT_V3, self.selftest, self.kernel_version)
        blocks = self.board_blocks.encode("ascii")
        if len(blocks) > BOARD_BLOCKS_SIZE:
            raise ValueError(f"board blocks {self.board_blocks!r} exceed {BOARD_BLOCKS_SIZE} bytes")
        tail += self.data_hash.ljust(HASH_SIZE, b"\0") + bytes([self.in_dim])
        tail += blocks.ljust(BOARD_BLOCKS_SIZE, b"\0")
        return head + self.model_hash + build + tail

    def describe(self) -> str:
        def name(enum, value):
            try:
                return enum(value).name.lower()
            except ValueError:
                return str(value)

        return (
            f"protocol v{self.protocol_version}, build {self.build_id!r}, "
            f"model {self.model_hash_hex[:16]}... ({name(Scheme, self.scheme)}, "
            f"obs {self.obs_dim}, act {self.act_dim}, {self.macs} MACs), "
            f"ticks {name(TickSource, self.tick_source)} at {self.tick_hz} Hz, "
            f"reset {name(ResetCause, self.reset_cause)} (flags 0x{self.reset_flags:02x}), "
            + (f"watchdog {self.watchdog_ms} ms" if self.watchdog_ms else "no watchdog")
            + f", rx dropped {self.rx_dropped}, overruns {self.rx_overruns}"
            + f", self-test {name(SelfTest, self.selftest)}, kernel v{self.kernel_version}"
            + f", data {self.data_hash_hex[:16]}..., in {self.in_dim}"
            + f", keeps {self.board_blocks or 'nothing'}"
            + (", ECHO build (no policy)" if self.echo else "")
            + (", flight build (the Crazyflie app)" if self.flight else "")
        )


# ---------------------------------------------------------------- the flight build


@dataclass(frozen=True)
class FlightStart:
    """controllerOutOfTreeInit, then controllerOutOfTreeTest: the app's start-up."""

    TYPE = MsgType.FLIGHT_START

    def payload(self) -> bytes:
        return b""


@dataclass(frozen=True)
class FlightStarted:
    selftest: int  # SelfTest.PASSED or FAILED: controllerOutOfTreeTest's answer
    TYPE = MsgType.FLIGHT_STARTED

    def payload(self) -> bytes:
        return bytes([self.selftest])


@dataclass(frozen=True)
class FlightTicks:
    """``ticks`` stabiliser ticks of the app with this state in the Crazyflie's units:
    position (m), velocity (m/s), quaternion (w, x, y, z), gyro (deg/s), target (m)."""

    ticks: int
    z_mode: int  # the setpoint's mode for x, y, z: 0 disable, 1 absolute
    age_ms: int  # how old the setpoint is
    state: tuple[float, ...]  # FLIGHT_STATE_FLOATS numbers
    TYPE = MsgType.FLIGHT_TICKS

    def payload(self) -> bytes:
        if len(self.state) != FLIGHT_STATE_FLOATS:
            raise ValueError(f"FLIGHT_TICKS carries {FLIGHT_STATE_FLOATS} state numbers")
        return struct.pack("<BBI", self.ticks, self.z_mode, self.age_ms) + _f32(self.state)


@dataclass(frozen=True)
class FlightForces:
    """The app after the ticks, and what they cost in the board's ticks (SysTick or
    cycles, at INFO's tick_hz) inside controllerOutOfTree: the ticks that ran the
    policy and the idle ones apart."""

    control_mode: int
    mode: int  # qp_flight.h: 0 off, 1 spin-up, 2 active, 3 fault
    fault: int
    policy_ticks: int
    idle_ticks: int
    policy_calls: int
    policy_sum: int
    policy_max: int
    idle_sum: int
    idle_max: int
    forces: tuple[float, ...]
    action: tuple[float, ...]
    observation: tuple[float, ...] = field(repr=False)
    TYPE = MsgType.FLIGHT_FORCES
    _FORMAT = "<BBBBBIIIII"  # before the forces

    def payload(self) -> bytes:
        head = struct.pack(
            self._FORMAT,
            self.control_mode,
            self.mode,
            self.fault,
            self.policy_ticks,
            self.idle_ticks,
            self.policy_calls,
            self.policy_sum,
            self.policy_max,
            self.idle_sum,
            self.idle_max,
        )
        tail = bytes([len(self.observation)]) + _f32(self.observation)
        return head + _f32(self.forces) + _f32(self.action) + tail


def _name(group_name: str) -> bytes:
    name = group_name.encode("ascii")
    if not 1 <= len(name) <= FLIGHT_NAME_MAX:
        raise ValueError(f"a log or param name is 1 to {FLIGHT_NAME_MAX} ASCII bytes")
    return name


@dataclass(frozen=True)
class FlightParam:
    """Set the app's parameter "group.name"; the answer says what it holds then."""

    name: str
    value: float
    TYPE = MsgType.FLIGHT_PARAM

    def payload(self) -> bytes:
        return struct.pack("<d", self.value) + _name(self.name)


@dataclass(frozen=True)
class FlightLog:
    """Read the app's log variable "group.name"."""

    name: str
    TYPE = MsgType.FLIGHT_LOG

    def payload(self) -> bytes:
        return _name(self.name)


@dataclass(frozen=True)
class FlightParamValue:
    found: bool
    value: float
    TYPE = MsgType.FLIGHT_PARAM_VALUE

    def payload(self) -> bytes:
        return struct.pack("<Bd", self.found, self.value)


@dataclass(frozen=True)
class FlightLogValue:
    found: bool
    value: float
    TYPE = MsgType.FLIGHT_LOG_VALUE

    def payload(self) -> bytes:
        return struct.pack("<Bd", self.found, self.value)


Message = (
    Hello
    | Ping
    | Pong
    | Step
    | Reset
    | Ready
    | Action
    | Error
    | Info
    | FlightStart
    | FlightStarted
    | FlightTicks
    | FlightForces
    | FlightParam
    | FlightLog
    | FlightParamValue
    | FlightLogValue
)


def encode(msg: Message, seq: int) -> bytes:
    return encode_packet(msg.TYPE, seq, msg.payload())


def _length_error(packet: Packet, why: str) -> FrameError:
    return FrameError(ErrorCode.BAD_LENGTH, why, packet.seq)


def parse(packet: Packet) -> Message:
    """Typed message from a CRC-checked packet; raises FrameError on a bad payload."""
    p, t = packet.payload, packet.type
    if t == MsgType.HELLO:
        if p:
            raise _length_error(packet, "HELLO carries no payload")
        return Hello()
    if t == MsgType.PING:
        return Ping(p)
    if t == MsgType.PONG:
        return Pong(p)
    if t == MsgType.STEP:
        if len(p) < STEP_HEADER or len(p) != STEP_HEADER + 4 * p[0]:
            raise _length_error(packet, f"STEP payload of {len(p)} bytes")
        return Step(_floats(p[STEP_HEADER:]))
    if t in (MsgType.RESET, MsgType.READY):
        if p:
            raise _length_error(packet, f"{MsgType(t).name} carries no payload")
        return Reset() if t == MsgType.RESET else Ready()
    if t == MsgType.ACTION:
        if len(p) < ACTION_HEADER or len(p) != ACTION_HEADER + 4 * p[ACTION_HEADER - 1]:
            raise _length_error(packet, f"ACTION payload of {len(p)} bytes")
        ticks, hz, state_ticks, _ = struct.unpack_from("<IIIB", p)
        return Action(_floats(p[ACTION_HEADER:]), ticks, hz, state_ticks)
    if t == MsgType.ERROR:
        if len(p) != 2:
            raise _length_error(packet, f"ERROR payload of {len(p)} bytes")
        return Error(p[0], p[1])
    if t == MsgType.INFO:
        # Another version's INFO is decoded as far as version 1's layout goes, so that
        # the handshake can refuse the device by its version instead of timing out.
        other = len(p) >= INFO_V1_SIZE and p[0] != PROTOCOL_VERSION
        if len(p) != INFO_SIZE and not other:
            raise _length_error(packet, f"INFO payload of {len(p)} bytes")
        fixed = struct.unpack_from(Info._FORMAT, p)
        model_hash = bytes(p[16 : 16 + HASH_SIZE])
        build_bytes = bytes(p[16 + HASH_SIZE : INFO_V1_SIZE])
        build = build_bytes.split(b"\0", 1)[0].decode("ascii", "replace")
        tail = ()
        if not other:
            tail = struct.unpack_from(Info._FORMAT_V2, p, INFO_V1_SIZE)
            tail += struct.unpack_from(Info._FORMAT_V3, p, INFO_V2_SIZE)
            at = INFO_V3_SIZE
            blocks = bytes(p[at + HASH_SIZE + 1 : at + HASH_SIZE + 1 + BOARD_BLOCKS_SIZE])
            tail += (
                bytes(p[at : at + HASH_SIZE]),
                p[at + HASH_SIZE],
                blocks.split(b"\0", 1)[0].decode("ascii", "replace"),
            )
        return Info(*fixed, model_hash, build, *tail)
    if t in _FLIGHT:
        return _FLIGHT[t](packet)
    raise FrameError(ErrorCode.UNKNOWN_TYPE, f"type 0x{t:02x}", packet.seq)


def _flight_start(packet: Packet) -> FlightStart:
    if packet.payload:
        raise _length_error(packet, "FLIGHT_START carries no payload")
    return FlightStart()


def _flight_started(packet: Packet) -> FlightStarted:
    if len(packet.payload) != 1:
        raise _length_error(packet, f"FLIGHT_STARTED payload of {len(packet.payload)} bytes")
    return FlightStarted(packet.payload[0])


def _flight_ticks(packet: Packet) -> FlightTicks:
    p = packet.payload
    if len(p) != FLIGHT_TICKS_SIZE:
        raise _length_error(packet, f"FLIGHT_TICKS payload of {len(p)} bytes")
    ticks, z_mode, age = struct.unpack_from("<BBI", p)
    return FlightTicks(ticks, z_mode, age, _floats(p[FLIGHT_TICKS_HEADER:]))


def _flight_forces(packet: Packet) -> FlightForces:
    p = packet.payload
    h = FLIGHT_FORCES_HEADER
    if len(p) < h or len(p) != h + 4 * p[h - 1]:
        raise _length_error(packet, f"FLIGHT_FORCES payload of {len(p)} bytes")
    fixed = struct.unpack_from(FlightForces._FORMAT, p)
    at = struct.calcsize(FlightForces._FORMAT)
    forces, action = _floats(p[at : at + 16]), _floats(p[at + 16 : at + 32])
    return FlightForces(*fixed, forces, action, _floats(p[h:]))


def _flight_var(packet: Packet) -> FlightParam | FlightLog:
    p, head = packet.payload, 8 if packet.type == MsgType.FLIGHT_PARAM else 0
    if not head < len(p) <= head + FLIGHT_NAME_MAX:
        raise _length_error(packet, f"{MsgType(packet.type).name} payload of {len(p)} bytes")
    name = p[head:].decode("ascii", "replace")
    if packet.type == MsgType.FLIGHT_LOG:
        return FlightLog(name)
    return FlightParam(name, struct.unpack_from("<d", p)[0])


def _flight_value(packet: Packet) -> FlightParamValue | FlightLogValue:
    n = len(packet.payload)
    if n != FLIGHT_VALUE_SIZE:
        raise _length_error(packet, f"{MsgType(packet.type).name} payload of {n} bytes")
    found, value = struct.unpack("<Bd", packet.payload)
    kind = FlightParamValue if packet.type == MsgType.FLIGHT_PARAM_VALUE else FlightLogValue
    return kind(bool(found), value)


_FLIGHT = {
    MsgType.FLIGHT_START: _flight_start,
    MsgType.FLIGHT_STARTED: _flight_started,
    MsgType.FLIGHT_TICKS: _flight_ticks,
    MsgType.FLIGHT_FORCES: _flight_forces,
    MsgType.FLIGHT_PARAM: _flight_var,
    MsgType.FLIGHT_LOG: _flight_var,
    MsgType.FLIGHT_PARAM_VALUE: _flight_value,
    MsgType.FLIGHT_LOG_VALUE: _flight_value,
}


def decode(frame: bytes) -> tuple[int, Message]:
    """(seq, message) from one frame body; raises FrameError."""
    packet = decode_frame(frame)
    return packet.seq, parse(packet)
