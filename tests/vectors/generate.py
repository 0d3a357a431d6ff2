"""Write tests/vectors/protocol.jsonl: protocol test vectors for the C and Python tests.

    .venv/bin/python tests/vectors/generate.py          # rewrite the file
    .venv/bin/python tests/vectors/generate.py --check  # exit 1 if it is out of date

One JSON object per line, every value the C test reads is a lowercase hex string:
  crc16         data -> crc (CRC-16/IBM-3740)
  cobs          raw <-> encoded (without the 0x00 delimiter)
  cobs_invalid  encoded: must be rejected
  exchange      input bytes sent to the device -> exact output bytes it must send back,
                with "expect": per frame, the decoded request (or the reason it is
                rejected) and the decoded reply.
The device under test in exchanges: firmware/test/policy_fixture.h (its self-test
passes), build id "vectors",
a tick counter advancing 7 per read at 1 MHz (so every ACTION reports 7 ticks),
tick source 0 (host clock), reset cause WATCHDOG with flags 0x24, a 250 ms watchdog,
and receive counters of 258 dropped bytes and 3 overruns (preset, to pin their byte
order). Expected replies come from the Python codec and the numpy
fixture policy; the C tests check that the firmware core produces the same bytes.
"""

from __future__ import annotations

import json
import math
import random
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # repository root
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/

from firmware_support import (  # noqa: E402
    ACT_DIM,
    OBS_DIM,
    VECTORS,
    fixture,
    fixture_hash,
    fixture_policy,
)

from firmware_bridge import codec  # noqa: E402
from firmware_bridge.protocol import (  # noqa: E402
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    ErrorCode,
    MsgType,
    ResetCause,
    SelfTest,
    TickSource,
)

BUILD_ID, TICK_HZ, TICKS_PER_CALL = "vectors", 1_000_000, 7
RESET_FLAGS, WATCHDOG_MS, RX_DROPPED, RX_OVERRUNS = 0x24, 250, 258, 3  # IWDGRSTF | PINRSTF


# ---------------------------------------------------------------- reference device


def device_reply(frame: bytes | codec.FrameError) -> bytes:
    """What the firmware must answer to one received frame body (oversize as error)."""
    try:
        if isinstance(frame, codec.FrameError):
            raise frame
        packet = codec.decode_frame(frame)
    except codec.FrameError as e:
        return codec.encode(codec.Error(e.code, 0), 0)
    seq, t, p = packet.seq, packet.type, packet.payload
    if t == MsgType.HELLO:
        if p:
            return codec.encode(codec.Error(ErrorCode.BAD_LENGTH, t), seq)
        return codec.encode(fixture_info(), seq)
    if t == MsgType.PING:
        return codec.encode(codec.Pong(p), seq)
    if t == MsgType.STEP:
        if not p or len(p) != 1 + 4 * p[0]:
            return codec.encode(codec.Error(ErrorCode.BAD_LENGTH, t), seq)
        if p[0] != OBS_DIM:
            return codec.encode(codec.Error(ErrorCode.WRONG_DIMS, OBS_DIM), seq)
        obs = struct.unpack(f"<{OBS_DIM}f", p[1:])
        for i, v in enumerate(obs):
            if not math.isfinite(v):
                return codec.encode(codec.Error(ErrorCode.NONFINITE, i), seq)
        action = tuple(float(a) for a in fixture_policy(obs))
        return codec.encode(codec.Action(action, TICKS_PER_CALL, TICK_HZ), seq)
    return codec.encode(codec.Error(ErrorCode.UNKNOWN_TYPE, t), seq)


def fixture_info() -> codec.Info:
    return codec.Info(
        protocol_version=PROTOCOL_VERSION,
        scheme=fixture().scheme,
        obs_dim=OBS_DIM,
        act_dim=ACT_DIM,
        flags=0,
        tick_source=TickSource.HOST_CLOCK,
        max_payload=MAX_PAYLOAD,
        macs=fixture().macs,
        tick_hz=TICK_HZ,
        model_hash=bytes.fromhex(fixture_hash()),
        build_id=BUILD_ID,
        reset_cause=ResetCause.WATCHDOG,
        reset_flags=RESET_FLAGS,
        watchdog_ms=WATCHDOG_MS,
        rx_dropped=RX_DROPPED,
        rx_overruns=RX_OVERRUNS,
        selftest=SelfTest.PASSED,
        kernel_version=fixture().kernel_version,
    )


# ---------------------------------------------------------------- descriptions


def number(v: float) -> float | str:
    return v if math.isfinite(v) else repr(v)  # JSON has no NaN/Inf: "nan", "inf"


def describe(frame: bytes | codec.FrameError) -> dict:
    """A frame's meaning as JSON-able data, or {"rejected": ERROR_NAME}."""
    try:
        if isinstance(frame, codec.FrameError):
            raise frame
        seq, msg = codec.decode(frame)
    except codec.FrameError as e:
        return {"rejected": e.code.name}
    d = {"type": msg.TYPE.name, "seq": seq}
    if isinstance(msg, codec.Step):
        d["obs"] = [number(v) for v in msg.obs]
    elif isinstance(msg, codec.Ping | codec.Pong):
        d["data"] = msg.data.hex()
    elif isinstance(msg, codec.Action):
        d |= {
            "action": [number(v) for v in msg.action],
            "infer_ticks": msg.infer_ticks,
            "tick_hz": msg.tick_hz,
        }
    elif isinstance(msg, codec.Error):
        d |= {"code": ErrorCode(msg.code).name, "detail": msg.detail}
    elif isinstance(msg, codec.Info):
        d |= {k: v for k, v in vars(msg).items() if k != "model_hash"}
        d["model_hash"] = msg.model_hash_hex
    return d


def exchange(name: str, note: str, data: bytes) -> dict:
    frames = codec.FrameReader().feed(data)
    output = b"".join(device_reply(f) for f in frames)
    replies = codec.FrameReader().feed(output)
    pairs = zip(frames, replies, strict=True)
    expect = [{"request": describe(f), "reply": describe(r)} for f, r in pairs]
    return {
        "kind": "exchange",
        "name": name,
        "note": note,
        "input": data.hex(),
        "output": output.hex(),
        "expect": expect,
    }


# ---------------------------------------------------------------- the vectors


def step_frame(seq: int, obs) -> bytes:
    return codec.encode(codec.Step(tuple(obs)), seq)


def flip(frame: bytes, index: int, bit: int) -> bytes:
    out = bytearray(frame)
    out[index] ^= 1 << bit
    assert out[index] != 0, "a flipped bit must not create a delimiter here"
    return bytes(out)


def vectors() -> list[dict]:
    v: list[dict] = []
    for name, data in [
        ("check", b"123456789"),
        ("empty", b""),
        ("zero", b"\x00"),
        ("ascii", b"quadpilot"),
        ("ones", b"\xff" * 4),
    ]:
        v.append(
            {"kind": "crc16", "name": name, "data": data.hex(), "crc": f"{codec.crc16(data):04x}"}
        )

    cobs_cases = [
        ("empty", b""),
        ("zero", b"\x00"),
        ("two zeros", b"\x00\x00"),
        ("zero inside", b"\x11\x22\x00\x33"),
        ("no zero", b"\x11\x22\x33\x44"),
        ("trailing zeros", b"\x11\x00\x00\x00"),
        ("253 nonzero", bytes(range(1, 254))),
        ("254 nonzero (full block, no trailing code)", bytes(range(1, 255))),
        ("255 nonzero", bytes(range(1, 256))),
        ("zero then 254 nonzero", b"\x00" + bytes(range(1, 255))),
        ("254 nonzero then zero", bytes(range(1, 255)) + b"\x00"),
    ]
    for name, raw in cobs_cases:
        v.append(
            {
                "kind": "cobs",
                "name": name,
                "raw": raw.hex(),
                "encoded": codec.cobs_encode(raw).hex(),
            }
        )
    for name, enc in [
        ("code past end", "051122"),
        ("zero inside block", "031100"),
        ("zero code byte", "0011"),
        ("full block cut short", "ff" + "01" * 10),
    ]:
        v.append({"kind": "cobs_invalid", "name": name, "encoded": enc})

    obs_a = [(j - 8) / 4 for j in range(OBS_DIM)]
    obs_big = [3.0 * (-1) ** j for j in range(OBS_DIM)]  # saturates some outputs at +-1
    good = step_frame(7, obs_a)
    rng = random.Random(2024)
    garbage = bytes(rng.randrange(1, 256) for _ in range(40))

    ex = [
        ("hello", "HELLO -> INFO", codec.encode(codec.Hello(), 1)),
        ("ping empty", "PING -> PONG", codec.encode(codec.Ping(), 2)),
        ("ping data", "PONG echoes the payload", codec.encode(codec.Ping(b"quadpilot"), 3)),
        (
            "ping max payload",
            "256-byte payload, the largest allowed",
            codec.encode(codec.Ping(bytes(range(1, 256)) + b"\x01"), 4),
        ),
        ("step", "STEP -> ACTION from the fixture policy", good),
        ("step clamped", "outputs clamped to [-1, 1]", step_frame(0xBEEF, obs_big)),
        ("step zeros", "zero observation gives the bias", step_frame(0xFFFF, [0.0] * OBS_DIM)),
        ("bad crc", "CRC bit flipped -> ERROR BAD_CRC, seq 0", flip(good, len(good) - 2, 0)),
        ("payload bit flip", "one payload bit flipped -> ERROR BAD_CRC", flip(good, 20, 3)),
        ("bad cobs", "code byte runs past the end -> ERROR BAD_FRAME", b"\x09\x01\x02\x00"),
        (
            "too short",
            "3-byte packet -> ERROR BAD_FRAME",
            codec.cobs_encode(b"\x01\x01\x00") + b"\x00",
        ),
        (
            "oversize frame",
            "264 encoded bytes before the delimiter -> ERROR OVERSIZE",
            codec.cobs_encode(oversize_packet(257)) + b"\x00",
        ),
        (
            "oversize packet",
            "263 encoded bytes decoding to 262 > 261 -> ERROR OVERSIZE",
            codec.cobs_encode(oversize_packet_with_zeros()) + b"\x00",
        ),
        (
            "unknown type",
            "type 0x42 -> ERROR UNKNOWN_TYPE, detail 0x42, seq echoed",
            codec.encode_packet(0x42, 9),
        ),
        (
            "reply type sent",
            "a reply type is not a request -> UNKNOWN_TYPE",
            codec.encode(codec.Pong(), 10),
        ),
        (
            "hello with payload",
            "HELLO must be empty -> BAD_LENGTH, detail = type",
            codec.encode_packet(MsgType.HELLO, 11, b"\x00"),
        ),
        (
            "step short",
            "count says 18 but 17 floats follow -> BAD_LENGTH",
            codec.encode_packet(
                MsgType.STEP, 12, bytes([OBS_DIM]) + struct.pack("<17f", *obs_a[:17])
            ),
        ),
        ("step empty", "STEP without payload -> BAD_LENGTH", codec.encode_packet(MsgType.STEP, 13)),
        ("wrong dims", "17 observations -> WRONG_DIMS, detail = 18", step_frame(14, obs_a[:17])),
        (
            "nan",
            "NaN at index 3 -> NONFINITE, detail 3",
            step_frame(15, obs_a[:3] + [math.nan] + obs_a[4:]),
        ),
        (
            "inf",
            "-Inf at index 17 -> NONFINITE, detail 17",
            step_frame(16, obs_a[:17] + [-math.inf]),
        ),
        (
            "garbage then good",
            "garbage, delimiter, then a good frame: error then action",
            b"hello world\r\n\x00" + good,
        ),
        (
            "garbage glued to frame",
            "garbage without delimiter merges with the next frame: "
            "one error; the host's retry then succeeds",
            garbage + good + good,
        ),
        (
            "empty frames",
            "0x00 0x00 is ignored; the frame after it is answered",
            b"\x00\x00\x00" + good,
        ),
        (
            "truncated",
            "first half of a frame, then the whole frame",
            good[: len(good) // 2] + b"\x00" + good,
        ),
        (
            "oversize then good",
            "a 600-byte run is rejected once; the next frame is answered",
            b"\x55" * 600 + b"\x00" + good,
        ),
    ]
    v += [exchange(*e) for e in ex]
    return v


def oversize_packet(payload_len: int) -> bytes:
    body = struct.pack("<BH", MsgType.PING, 5) + bytes([0x5A]) * payload_len
    return body + struct.pack("<H", codec.crc16(body))


def oversize_packet_with_zeros() -> bytes:
    """A 262-byte packet with zeros every 100 bytes: COBS adds just one byte (263)."""
    body = bytearray(struct.pack("<BH", MsgType.PING, 6) + bytes([0x5A]) * 257)
    for i in (100, 200):
        body[i] = 0
    body = bytes(body)
    return body + struct.pack("<H", codec.crc16(body))


def render() -> str:
    lines = []
    for vec in vectors():
        text = json.dumps(vec)
        assert '\\"' not in text, "the C reader does not handle escaped quotes"
        lines.append(text)
    return "\n".join(lines) + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if VECTORS.read_text() != text:
            print(f"{VECTORS} is out of date: run {Path(__file__).name}")
            return 1
        return 0
    VECTORS.write_text(text)
    print(f"wrote {VECTORS} ({text.count(chr(10))} vectors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
