"""The Crazyflie app on the project's STM32F405 firmware: the bench HIL of the glue.

The flight build (``make -C firmware BOARD=stm32f405 CRAZYFLIE_APP=../artifacts/crazyflie``)
compiles the app's own C files unchanged with the shim's stabiliser
(firmware/crazyflie_shim/shim_app.c, which the host library runs too) and serves it over
the protocol's FLIGHT_* messages (docs/protocol.md section 12). ``BoardApp`` drives it
with the interface of crazyflie_loop.HostApp - start, ticks, observation, action, the
log and the params - so the same flyer flies either; ``TwinApp`` ticks the board and the
host library side by side with the same inputs and counts every difference. Each
FLIGHT_FORCES reply also carries the board's ticks inside controllerOutOfTree, the
ticks that ran the policy apart from the idle ones: ``CostLog`` turns them into the
controller's instructions per stabiliser tick (QEMU, -icount shift=0).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import codec
from .crazyflie_loop import MODE_ABS, CrazyflieLoopError
from .hil_report import instructions_from_ticks
from .link import Link
from .protocol import FLIGHT_STATE_FLOATS, MsgType, SelfTest

MAX_TICKS = 255  # a FLIGHT_TICKS request's tick count is a u8
CORE_HZ = 168_000_000  # the STM32F405's core clock (and QEMU's SysTick)
STABILIZER_HZ = 1000
BUDGET = CORE_HZ // STABILIZER_HZ  # cycles per stabiliser tick at 168 MHz
# The app's own objects in the flight build (firmware/Makefile puts them in app/, beside
# the shim's stabiliser, which is not part of the app on a Crazyflie).
APP_OBJECTS = ("quadpilot_controller.o", "qp_flight.o", "qp_policy.o")


class FlightBoardError(CrazyflieLoopError):
    """The board cannot run the Crazyflie app (one line saying why)."""


def check_flight(info: codec.Info) -> None:
    """Refuses a board whose firmware was built without the app, in one line."""
    if not info.flight:
        raise FlightBoardError(
            f"the board runs build {info.build_id!r} without the Crazyflie app (INFO flags "
            f"0x{info.flags:02x}): build the flight firmware with `make -C firmware "
            "BOARD=stm32f405 CRAZYFLIE_APP=../artifacts/crazyflie` (python -m "
            "firmware_bridge crazyflie --emulator builds and runs it in QEMU)"
        )


@dataclass
class CostLog:
    """The board's ticks inside controllerOutOfTree, per FLIGHT_FORCES reply."""

    tick_hz: int
    policy: list[float] = field(default_factory=list)  # one entry per tick that ran it
    policy_max: int = 0
    idle: list[float] = field(default_factory=list)  # mean of each reply's idle ticks
    idle_max: int = 0
    idle_ticks: int = 0
    total: int = 0  # every tick's ticks, and how many ticks
    count: int = 0

    def add(self, r: codec.FlightForces) -> None:
        self.total += r.policy_sum + r.idle_sum
        self.count += r.policy_ticks + r.idle_ticks
        if r.policy_ticks:
            # One policy tick per control period, so the sum is that tick's cost.
            self.policy += [r.policy_sum / r.policy_ticks] * r.policy_ticks
            self.policy_max = max(self.policy_max, r.policy_max)
        if r.idle_ticks:
            self.idle.append(r.idle_sum / r.idle_ticks)
            self.idle_ticks += r.idle_ticks
            self.idle_max = max(self.idle_max, r.idle_max)

    def summary(self) -> dict:
        """Ticks and instructions per stabiliser tick, median and max, of the policy ticks
        and the idle ones (the median of each request's mean: a reply sums its idle
        ticks), and the policy tick's share of the 1 kHz budget at 168 MHz (instructions
        at one per cycle: a lower bound on silicon)."""
        out = {"tick_hz": self.tick_hz, "budget_cycles_per_tick": BUDGET}
        for name, values, peak, count in (
            ("policy", self.policy, self.policy_max, len(self.policy)),
            ("idle", self.idle, self.idle_max, self.idle_ticks),
        ):
            median = statistics.median(values) if values else 0.0
            out[name] = {
                "ticks": count,
                "median_ticks": median,
                "max_ticks": peak,
                "median_instructions": instructions_from_ticks(median, self.tick_hz),
                "max_instructions": instructions_from_ticks(peak, self.tick_hz),
            }
        out["policy_budget_share"] = out["policy"]["max_instructions"] / BUDGET
        mean = self.total / self.count if self.count else 0.0
        out["mean_instructions_per_tick"] = instructions_from_ticks(mean, self.tick_hz)
        return out


class BoardApp:
    """The app on the board behind ``link`` (a handshaken Link to the flight build), with
    crazyflie_loop.HostApp's interface. Every answer comes with the request that ticked:
    the observation, the action and the counters are the last reply's."""

    def __init__(self, link: Link):
        if link.info is None:
            raise FlightBoardError("the link has not been handshaken")
        check_flight(link.info)
        self.link = link
        self.obs_dim = link.info.obs_dim
        self.forces = np.zeros(4, np.float32)
        self.costs = CostLog(link.info.tick_hz)
        self.last: codec.FlightForces | None = None

    def start(self) -> bool:
        """controllerOutOfTreeInit, then controllerOutOfTreeTest's answer."""
        reply, _, _ = self.link.request(codec.FlightStart(), MsgType.FLIGHT_STARTED)
        self.last = None
        self.forces[:] = 0.0
        return reply.selftest == SelfTest.PASSED

    def ticks(
        self, n, position, velocity, quat_wxyz, gyro_dps, target, z_mode=MODE_ABS, age_ms=0
    ) -> int:
        """n stabiliser ticks with this state (the Crazyflie's units); the controlMode.
        More than 255 ticks go as several requests."""
        parts = (position, velocity, quat_wxyz, gyro_dps, target)
        state = np.concatenate([np.asarray(v, np.float32).ravel() for v in parts])
        if state.size != FLIGHT_STATE_FLOATS:
            raise ValueError(f"the state is {FLIGHT_STATE_FLOATS} numbers, not {state.size}")
        values = tuple(float(v) for v in state)
        left = int(n)
        while True:
            k = min(left, MAX_TICKS)
            msg = codec.FlightTicks(k, int(z_mode), int(age_ms), values)
            # A retry repeats the seq: the board answers it from its copy, never ticking
            # twice for one request (as STEP).
            reply, _, _ = self.link.request(msg, MsgType.FLIGHT_FORCES, same_seq=True)
            self.costs.add(reply)
            self.last = reply
            left -= k
            if left <= 0:
                break
        self.forces = np.asarray(reply.forces, np.float32)
        return reply.control_mode

    def _last(self) -> codec.FlightForces:
        if self.last is None:
            raise FlightBoardError("the app has not ticked since it started")
        return self.last

    def observation(self) -> np.ndarray:
        return np.asarray(self._last().observation, np.float32)

    def action(self) -> np.ndarray:
        return np.asarray(self._last().action, np.float32)

    @property
    def policy_calls(self) -> int:
        return 0 if self.last is None else self.last.policy_calls

    @property
    def mode(self) -> int:
        return 0 if self.last is None else self.last.mode

    @property
    def fault(self) -> int:
        return 0 if self.last is None else self.last.fault

    def log(self, group: str, name: str) -> float:
        reply, _, _ = self.link.request(
            codec.FlightLog(f"{group}.{name}"), MsgType.FLIGHT_LOG_VALUE
        )
        if not reply.found:
            raise KeyError(f"the app logs no {group}.{name}")
        return reply.value

    def set_param(self, group: str, name: str, value: float) -> float:
        """Sets it; returns what it holds now (an integer parameter keeps its type's)."""
        reply, _, _ = self.link.request(
            codec.FlightParam(f"{group}.{name}", float(value)), MsgType.FLIGHT_PARAM_VALUE
        )
        if not reply.found:
            raise KeyError(f"the app has no parameter {group}.{name}")
        return reply.value


def _bits(x) -> np.ndarray:
    return np.ascontiguousarray(x, np.float32).view(np.uint32)


@dataclass
class TwinStats:
    requests: int = 0
    forces_differing: int = 0  # bit for bit, NaN included
    actions_differing: int = 0
    observations_differing: int = 0
    states_differing: int = 0  # controlMode, mode, fault or policy calls


class TwinApp:
    """The board's app and the host library's, ticked with the same inputs: the board's
    answers are the ones that fly (HostApp's interface), the host's are compared with
    them bit for bit on every request."""

    def __init__(self, board: BoardApp, host):
        self.board, self.host = board, host
        self.stats = TwinStats()

    def start(self) -> bool:
        board, host = self.board.start(), self.host.start()
        return board and host

    def set_param(self, group: str, name: str, value: float) -> float:
        self.host.set_param(group, name, value)
        return self.board.set_param(group, name, value)

    def ticks(self, n, *args, **kwargs) -> int:
        mode = self.board.ticks(n, *args, **kwargs)
        host_mode = self.host.ticks(n, *args, **kwargs)
        b, h, s = self.board, self.host, self.stats
        s.requests += 1
        s.forces_differing += int(not np.array_equal(_bits(b.forces), _bits(h.forces)))
        s.actions_differing += int(not np.array_equal(_bits(b.action()), _bits(h.action())))
        s.observations_differing += int(
            not np.array_equal(_bits(b.observation()), _bits(h.observation()))
        )
        same = (mode, b.mode, b.fault, b.policy_calls) == (
            host_mode,
            h.mode,
            h.fault,
            h.policy_calls,
        )
        s.states_differing += int(not same)
        return mode

    def observation(self) -> np.ndarray:
        return self.board.observation()

    def action(self) -> np.ndarray:
        return self.board.action()

    @property
    def forces(self) -> np.ndarray:
        return self.board.forces

    @property
    def policy_calls(self) -> int:
        return self.board.policy_calls

    @property
    def mode(self) -> int:
        return self.board.mode

    @property
    def fault(self) -> int:
        return self.board.fault

    def log(self, group: str, name: str) -> float:
        return self.board.log(group, name)


_INPUT = re.compile(r"^ ([.\w]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+\.o)$", re.M)


def linked_sizes(map_file: Path, objects: Sequence[str] = APP_OBJECTS) -> dict:
    """What each object adds to the linked image, from the linker's map (so sections
    --gc-sections dropped do not count): flash (code, constants, the tables, .data's
    initial values) and static RAM (.data and .bss), in bytes."""
    text = Path(map_file).read_text()
    text = text[text.find("Linker script and memory map") :]
    sizes = {name: {"flash": 0, "ram": 0} for name in objects}
    for section, _, size, obj in _INPUT.findall(text):
        name = Path(obj).name
        if name not in sizes:
            continue
        n = int(size, 16)
        if section.startswith((".bss", "COMMON")):
            sizes[name]["ram"] += n
        elif section.startswith(".data"):
            sizes[name]["flash"] += n
            sizes[name]["ram"] += n
        elif section.startswith((".text", ".rodata", "qp_shim_")):
            sizes[name]["flash"] += n  # not .debug_*, .comment, .ARM.attributes
    return sizes
