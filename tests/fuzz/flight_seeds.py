"""Write the named seeds of tests/fuzz/corpus_flight, the flight build's fuzzing corpus
(bench/fuzz.py --flight), from the Python codec, so every frame in them is well formed.

    .venv/bin/python tests/fuzz/flight_seeds.py          # (re)write the seeds
    .venv/bin/python tests/fuzz/flight_seeds.py --check  # exit 1 if one is missing or stale

Each seed is a session from boot (the harness boots the device and the app per input)
that reaches one of docs/protocol.md section 12's replies or refusals: the fuzzer starts
from sessions that tick the app through spin-up into its policy, its faults and its
parameters instead of having to find a 77-byte frame with a good CRC on its own. The
corpus also holds what fuzzing runs added (files named by their SHA-1).
"""

from __future__ import annotations

import math
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # repository root

from firmware_bridge import codec  # noqa: E402
from firmware_bridge.protocol import MsgType  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "corpus_flight"

LEVEL = (1.0, 0.0, 0.0, 0.0)
HOVER = (0.0, 0.0, 1.0)
TILTED = (math.cos(math.radians(45)), math.sin(math.radians(45)), 0.0, 0.0)  # 90 degrees


def ticks(n=10, position=HOVER, velocity=(0.0, 0.0, 0.0), quat=LEVEL, gyro=(0.0, 0.0, 0.0),
          target=HOVER, z_mode=1, age_ms=0) -> codec.FlightTicks:  # fmt: skip
    return codec.FlightTicks(n, z_mode, age_ms, (*position, *velocity, *quat, *gyro, *target))


def session(*messages) -> bytes:
    """The messages as frames, seq 1, 2, ...; a raw (type, payload) pair for a request
    the codec would refuse to build (a wrong length)."""
    out = b""
    for seq, m in enumerate(messages, start=1):
        if isinstance(m, tuple):
            out += codec.encode_packet(m[0], seq, m[1])
        else:
            out += codec.encode(m, seq)
    return out


START = codec.FlightStart()
NO_SPINUP = codec.FlightParam("qpilot.spinupMs", 0.0)


def seeds() -> dict[str, bytes]:
    nan = float("nan")
    flying = (START, NO_SPINUP, ticks(), ticks(), ticks())
    return {
        "start": session(START),
        "hello-start": session(codec.Hello(), START, codec.Hello()),
        "ticks-before-start": session(
            (MsgType.FLIGHT_TICKS, ticks().payload()[:-1]),  # BAD_LENGTH comes first
            ticks(),
            START,
            ticks(),
        ),
        "spin-up": session(
            START, ticks(255), ticks(255), ticks(10), codec.FlightLog("qpilot.calls")
        ),
        "hover": session(*flying, ticks(0), codec.FlightLog("qpilot.f1")),
        "repeat": codec.encode(START, 1)
        + codec.encode(NO_SPINUP, 2)
        + codec.encode(ticks(), 3)
        + codec.encode(ticks(), 3)  # the retry: the same bytes back, nothing ticked
        + codec.encode(ticks(), 4),
        "restart": codec.encode(START, 1)
        + codec.encode(NO_SPINUP, 2)
        + codec.encode(ticks(), 3)
        + codec.encode(START, 4)
        + codec.encode(ticks(5), 3),  # FLIGHT_START forgot seq 3: this one ticks
        "nan-state": session(
            *flying,
            ticks(position=(nan, 0.0, 1.0)),
            ticks(),  # the fault holds
            ticks(z_mode=0),  # disabled: off
            ticks(),  # enabled again: spin-up (0 ms), then the policy
            codec.FlightLog("qpilot.nNonfin"),
        ),
        "inf-gyro": session(*flying, ticks(gyro=(math.inf, 0.0, 0.0))),
        "nan-target": session(*flying, ticks(target=(nan, nan, nan))),  # ignored, not a fault
        "bad-quaternion": session(*flying, ticks(quat=(2.0, 0.0, 0.0, 0.0))),
        "tilt": session(*flying, ticks(quat=TILTED), codec.FlightLog("qpilot.nTilt")),
        "stale-setpoint": session(*flying, ticks(age_ms=600), codec.FlightLog("qpilot.nStale")),
        "param-target": session(
            START,
            NO_SPINUP,
            codec.FlightParam("qpilot.useTarget", 1.0),
            codec.FlightParam("qpilot.tz", 1.5),
            ticks(),
            ticks(),
        ),
        "params": session(
            codec.FlightParam("qpilot.enable", 0.0),
            codec.FlightParam("qpilot.tiltMax", 30.0),
            codec.FlightParam("qpilot.spinupMs", 250.0),
            codec.FlightParam("qpilot.nothing", 1.0),
            codec.FlightParam("nodot", 1.0),
            START,
            ticks(),
        ),
        # Regression: values no integer parameter holds were converted out of range (C's
        # undefined behaviour, UBSan's float-cast-overflow); now saturated, NaN as 0.
        "param-out-of-range": session(
            codec.FlightParam("qpilot.spinupMs", 70000.0),
            codec.FlightParam("qpilot.enable", -3.0),
            codec.FlightParam("qpilot.enable", nan),
            codec.FlightParam("qpilot.useTarget", 1e300),
            codec.FlightParam("qpilot.enable", math.inf),
            START,
            ticks(),
        ),
        "logs": session(
            codec.FlightLog("qpilot.mode"),
            codec.FlightLog("qpilot.ix"),
            codec.FlightLog("qpilot.stepUs"),
            codec.FlightLog("qpilot.selftest"),
            codec.FlightLog("other.mode"),
            codec.FlightLog("x" * 48),
        ),
        "bad-lengths": session(
            (MsgType.FLIGHT_START, b"\x00"),
            START,
            (MsgType.FLIGHT_TICKS, ticks().payload()[:-1]),
            (MsgType.FLIGHT_PARAM, struct.pack("<d", 1.0)),
            (MsgType.FLIGHT_LOG, b""),
            (MsgType.FLIGHT_LOG, b"q" * 49),
        ),
    }


def main(argv: list[str]) -> int:
    want = seeds()
    if "--check" in argv:
        stale = [n for n, data in want.items() if not _current(CORPUS / f"{n}.bin", data)]
        for name in stale:
            print(f"{CORPUS / name}.bin is missing or out of date: run {Path(__file__).name}")
        return 1 if stale else 0
    CORPUS.mkdir(exist_ok=True)
    for name, data in want.items():
        (CORPUS / f"{name}.bin").write_bytes(data)
    print(f"wrote {len(want)} seeds to {CORPUS}")
    return 0


def _current(path: Path, data: bytes) -> bool:
    return path.is_file() and path.read_bytes() == data


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
