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
a tick counter advancing 7 per read at 1 MHz (the board reads it around each part of a
step, so every ACTION reports infer_ticks 7 and state_ticks 14),
tick source 0 (host clock), reset cause WATCHDOG with flags 0x24, a 250 ms watchdog,
and receive counters of 258 dropped bytes and 3 overruns (preset, to pin their byte
order). Each exchange starts from a freshly booted device: no RESET yet, so its kept
blocks have no start. Expected replies come from the Python codec, the numpy twin of the
board's blocks (tests/board_twin.py) and the numpy fixture policy; the C tests check
that the firmware core produces the same bytes.
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

from board_twin import (  # noqa: E402
    ACT_DIM,
    BOARD_BLOCKS,
    DATA_HASH,
    IN_DIM,
    OBS_DIM,
    FixtureBoard,
)
from firmware_support import VECTORS, fixture, fixture_hash  # noqa: E402

from firmware_bridge import codec  # noqa: E402
from firmware_bridge.protocol import (  # noqa: E402
    MAX_PACKET,
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    ErrorCode,
    MsgType,
    ResetCause,
    SelfTest,
    TickSource,
)

BUILD_ID, TICK_HZ, TICKS_PER_CALL = "vectors", 1_000_000, 7
STATE_TICKS = 2 * TICKS_PER_CALL  # observe (one interval) + commit (another)
RESET_FLAGS, WATCHDOG_MS, RX_DROPPED, RX_OVERRUNS = 0x24, 250, 258, 3  # IWDGRSTF | PINRSTF


# ---------------------------------------------------------------- reference device


class Device:
    """A freshly booted board: what it must answer to each frame, in order."""

    def __init__(self) -> None:
        self.board = FixtureBoard()
        self.last: tuple[int, bytes] | None = None  # seq and ACTION frame of the last step

    def reply(self, frame: bytes | codec.FrameError) -> bytes:
        """The answer to one received frame body (oversize as error)."""
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
        if t == MsgType.RESET:
            if p:
                return codec.encode(codec.Error(ErrorCode.BAD_LENGTH, t), seq)
            self.board.reset()
            self.last = None
            return codec.encode(codec.Ready(), seq)
        if t == MsgType.STEP:
            return self.step(seq, p)
        return codec.encode(codec.Error(ErrorCode.UNKNOWN_TYPE, t), seq)

    def step(self, seq: int, p: bytes) -> bytes:
        if self.last is not None and self.last[0] == seq:
            return self.last[1]  # the host's retry: the same bytes, no second step
        if not p or len(p) != 1 + 4 * p[0]:
            return codec.encode(codec.Error(ErrorCode.BAD_LENGTH, MsgType.STEP), seq)
        if p[0] != IN_DIM:
            return codec.encode(codec.Error(ErrorCode.WRONG_DIMS, IN_DIM), seq)
        if not self.board.ready:
            return codec.encode(codec.Error(ErrorCode.NOT_RESET, 0), seq)
        inputs = struct.unpack(f"<{IN_DIM}f", p[1:])
        for i, v in enumerate(inputs):
            if not math.isfinite(v):
                return codec.encode(codec.Error(ErrorCode.NONFINITE, i), seq)
        action = tuple(float(a) for a in self.board.act(inputs))
        reply = codec.encode(codec.Action(action, TICKS_PER_CALL, TICK_HZ, STATE_TICKS), seq)
        self.last = (seq, reply)
        return reply


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
        data_hash=bytes.fromhex(DATA_HASH),
        in_dim=IN_DIM,
        board_blocks=BOARD_BLOCKS,
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
        d["inputs"] = [number(v) for v in msg.inputs]
    elif isinstance(msg, codec.Ping | codec.Pong):
        d["data"] = msg.data.hex()
    elif isinstance(msg, codec.Action):
        d |= {
            "action": [number(v) for v in msg.action],
            "infer_ticks": msg.infer_ticks,
            "tick_hz": msg.tick_hz,
            "state_ticks": msg.state_ticks,
        }
    elif isinstance(msg, codec.Error):
        d |= {"code": ErrorCode(msg.code).name, "detail": msg.detail}
    elif isinstance(msg, codec.Info):
        d |= {k: v for k, v in vars(msg).items() if k not in ("model_hash", "data_hash")}
        d["model_hash"] = msg.model_hash_hex
        d["data_hash"] = msg.data_hash_hex
    return d


def exchange(name: str, note: str, data: bytes) -> dict:
    frames = codec.FrameReader().feed(data)
    device = Device()
    output = b"".join(device.reply(f) for f in frames)
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


def step_frame(seq: int, inputs) -> bytes:
    return codec.encode(codec.Step(tuple(inputs)), seq)


def reset_frame(seq: int) -> bytes:
    return codec.encode(codec.Reset(), seq)


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

    in_a = [(j - 8) / 4 for j in range(IN_DIM)]
    in_big = [3.0 * (-1) ** j for j in range(IN_DIM)]  # saturates some outputs at +-1
    good = step_frame(7, in_a)
    reset = reset_frame(6)
    rng = random.Random(2024)
    garbage = bytes(rng.randrange(1, 256) for _ in range(40))
    # An episode: a position error of 20 m adds 0.2 m s a step, so the integral reaches
    # its limit on the third step; the other inputs wander, so the past command changes.
    episode = [
        [20.0 - k, -3.0 * k, 0.5] + [0.1 * ((j + k) % 7 - 3) for j in range(IN_DIM - 3)]
        for k in range(6)
    ]

    ex = [
        (
            "hello",
            "HELLO -> INFO (version 4: data hash, input size, board blocks)",
            codec.encode(codec.Hello(), 1),
        ),
        ("ping empty", "PING -> PONG", codec.encode(codec.Ping(), 2)),
        ("ping data", "PONG echoes the payload", codec.encode(codec.Ping(b"quadpilot"), 3)),
        (
            "ping max payload",
            "256-byte payload, the largest allowed",
            codec.encode(codec.Ping(bytes(range(1, 256)) + b"\x01"), 4),
        ),
        ("reset", "RESET -> READY: integral 0, past actions the initial action", reset),
        (
            "reset with payload",
            "RESET must be empty -> BAD_LENGTH, detail = type",
            codec.encode_packet(MsgType.RESET, 5, b"\x00"),
        ),
        (
            "step before reset",
            "a board that has not been reset since boot -> NOT_RESET, no action",
            good,
        ),
        ("step", "RESET, then STEP -> ACTION from the fixture policy", reset + good),
        (
            "episode",
            "RESET, six STEPs: the integral grows to its limit, the past command follows",
            reset + b"".join(step_frame(20 + k, x) for k, x in enumerate(episode)),
        ),
        (
            "step clamped",
            "outputs clamped to [-1, 1]",
            reset + step_frame(0xBEEF, in_big) + step_frame(0xBEF0, in_big),
        ),
        (
            "step zeros",
            "zero inputs: the bias, seen through the initial action",
            reset + step_frame(0xFFFF, [0.0] * IN_DIM),
        ),
        (
            "repeat",
            "a STEP with the last stepped seq is a retry: the same ACTION bytes, not "
            "stepped again (the next STEP answers from one step's state)",
            reset
            + step_frame(30, episode[0])
            + step_frame(30, episode[0])
            + step_frame(31, episode[1]),
        ),
        (
            "reset mid-exchange",
            "RESET forgets the blocks and the cached seq: the same inputs after it give "
            "the first step's action again, and seq 41 is stepped anew",
            reset
            + step_frame(40, episode[0])
            + step_frame(41, episode[1])
            + reset_frame(8)
            + step_frame(41, episode[0]),
        ),
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
            f"{len(codec.cobs_encode(oversize_packet(MAX_PAYLOAD + 1)))} encoded bytes"
            " before the delimiter -> ERROR OVERSIZE",
            codec.cobs_encode(oversize_packet(MAX_PAYLOAD + 1)) + b"\x00",
        ),
        (
            "oversize packet",
            f"{len(codec.cobs_encode(oversize_packet_with_zeros()))} encoded bytes decoding to"
            f" {MAX_PACKET + 1} > {MAX_PACKET} -> ERROR OVERSIZE",
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
            reset
            + codec.encode_packet(
                MsgType.STEP, 12, bytes([IN_DIM]) + struct.pack("<17f", *in_a[:17])
            ),
        ),
        (
            "step empty",
            "STEP without payload -> BAD_LENGTH",
            reset + codec.encode_packet(MsgType.STEP, 13),
        ),
        (
            "wrong dims",
            "17 inputs -> WRONG_DIMS, detail = 18; then 25, the whole observation, the same",
            reset + step_frame(14, in_a[:17]) + step_frame(15, in_a + [0.0] * 7),
        ),
        (
            "nan",
            "NaN at index 3 -> NONFINITE, detail 3; the next STEP answers as if it never "
            "came (the kept blocks unchanged)",
            reset
            + step_frame(15, episode[0])
            + step_frame(16, episode[1][:3] + [math.nan] + episode[1][4:])
            + step_frame(17, episode[1]),
        ),
        (
            "inf",
            "-Inf at index 17 -> NONFINITE, detail 17",
            reset + step_frame(16, in_a[:17] + [-math.inf]),
        ),
        (
            "garbage then good",
            "garbage, delimiter, then a good frame: error then action",
            reset + b"hello world\r\n\x00" + good,
        ),
        (
            "garbage glued to frame",
            "garbage without delimiter merges with the next frame: "
            "one error; the host's retry then succeeds",
            reset + garbage + good + good,
        ),
        (
            "empty frames",
            "0x00 0x00 is ignored; the frame after it is answered",
            reset + b"\x00\x00\x00" + good,
        ),
        (
            "truncated",
            "first half of a frame, then the whole frame",
            reset + good[: len(good) // 2] + b"\x00" + good,
        ),
        (
            "oversize then good",
            "a 600-byte run is rejected once; the next frame is answered",
            reset + b"\x55" * 600 + b"\x00" + good,
        ),
    ]
    v += [exchange(*e) for e in ex]
    return v


def oversize_packet(payload_len: int) -> bytes:
    body = struct.pack("<BH", MsgType.PING, 5) + bytes([0x5A]) * payload_len
    return body + struct.pack("<H", codec.crc16(body))


def oversize_packet_with_zeros() -> bytes:
    """A packet one byte too long with a zero every 100 bytes: its encoding fits a frame."""
    body = bytearray(struct.pack("<BH", MsgType.PING, 6) + bytes([0x5A]) * (MAX_PAYLOAD + 1))
    for i in range(100, len(body), 100):
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


CORPUS = Path(__file__).resolve().parents[1] / "fuzz" / "corpus"
DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
DOC_BEGIN = "<!-- vectors:examples (tests/vectors/generate.py writes this block) -->"
DOC_END = "<!-- /vectors:examples -->"
# The exchanges docs/protocol.md section 7 shows, in this order.
DOC_EXCHANGES = (
    "hello",
    "reset",
    "step before reset",
    "step zeros",
    "episode",
    "repeat",
    "nan",
    "bad crc",
)


def _meaning(d: dict) -> str:
    """One line for a decoded frame of the vectors' "expect"."""
    if "rejected" in d:
        return f"(rejected by the device: {d['rejected']})"
    head = f"{d['type']} seq {d['seq']}"

    def floats(key: str) -> str:
        return "[" + ", ".join(f"{v:.9g}" if isinstance(v, float) else v for v in d[key]) + "]"

    if d["type"] == "STEP":
        return f"{head}, {len(d['inputs'])} inputs {floats('inputs')}"
    if d["type"] == "ACTION":
        return (
            f"{head}: infer_ticks {d['infer_ticks']}, tick_hz {d['tick_hz']}, "
            f"state_ticks {d['state_ticks']}, action {floats('action')}"
        )
    if d["type"] == "ERROR":
        return f"{head}: {d['code']}, detail {d['detail']}"
    if d["type"] == "INFO":
        return (
            f"{head}: version {d['protocol_version']}, obs_dim {d['obs_dim']}, "
            f"in_dim {d['in_dim']}, act_dim {d['act_dim']}, macs {d['macs']}, "
            f"model_hash {d['model_hash'][:16]}.., data_hash {d['data_hash'][:16]}.., "
            f"board_blocks {d['board_blocks']!r}"
        )
    return head


def _wrap(frame: bytes, per_line: int = 24) -> list[str]:
    return ["   " + frame[i : i + per_line].hex(" ") for i in range(0, len(frame), per_line)]


def doc_examples(vecs: list[dict]) -> str:
    """docs/protocol.md's worked examples: the named exchanges, frame by frame, as the
    wire carries them (hex) and what they mean; a test keeps the doc equal to this."""
    by_name = {v["name"]: v for v in vecs if v["kind"] == "exchange"}
    out = [DOC_BEGIN]
    for name in DOC_EXCHANGES:
        vec = by_name[name]
        requests = codec.FrameReader().feed(bytes.fromhex(vec["input"]))
        replies = codec.FrameReader().feed(bytes.fromhex(vec["output"]))
        out += ["", f"### {name}: {vec['note']}", "", "```"]
        for req, rep, expect in zip(requests, replies, vec["expect"], strict=True):
            for arrow, frame, d in (("->", req, expect["request"]), ("<-", rep, expect["reply"])):
                out.append(f"{arrow} {_meaning(d)}")
                wire = frame if isinstance(frame, bytes) else b""
                out += _wrap(wire + b"\x00")
        out.append("```")
    out += ["", DOC_END]
    return "\n".join(out)


def render_doc(text: str) -> str:
    """``text`` (docs/protocol.md) with its examples block rewritten."""
    start, end = text.index(DOC_BEGIN), text.index(DOC_END) + len(DOC_END)
    return text[:start] + doc_examples(vectors()) + text[end:]


def write_seeds() -> None:
    """Each exchange's input as a named seed of the fuzzer's corpus (bench/fuzz.py), so
    it starts from sessions that reach every reply, RESET and the kept blocks included."""
    for vec in vectors():
        if vec["kind"] == "exchange":
            name = vec["name"].replace(" ", "-")
            (CORPUS / f"{name}.bin").write_bytes(bytes.fromhex(vec["input"]))


def main() -> int:
    text = render()
    doc = render_doc(DOC.read_text())
    if "--check" in sys.argv:
        stale = [p for p, t in ((VECTORS, text), (DOC, doc)) if p.read_text() != t]
        for path in stale:
            print(f"{path} is out of date: run {Path(__file__).name}")
        return 1 if stale else 0
    VECTORS.write_text(text)
    DOC.write_text(doc)
    print(f"wrote {VECTORS} ({text.count(chr(10))} vectors)")
    write_seeds()
    return 0


if __name__ == "__main__":
    sys.exit(main())
