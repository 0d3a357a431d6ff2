"""The Python codec against the shared vectors, the CRC's published check value and
round-trip properties."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import subprocess
import sys

import pytest
from firmware_support import ROOT, VECTORS, fixture
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import codec
from firmware_bridge.link import HandshakeError, Link
from firmware_bridge.protocol import (
    ACTION_HEADER,
    BOARD_BLOCKS_SIZE,
    FLIGHT_FORCES_HEADER,
    FLIGHT_TICKS_SIZE,
    HASH_SIZE,
    INFO_FLAG_ECHO,
    INFO_FLAG_FLIGHT,
    INFO_SIZE,
    INFO_V1_SIZE,
    INFO_V2_SIZE,
    INFO_V3_SIZE,
    MAX_ENCODED,
    MAX_PAYLOAD,
    ErrorCode,
    MsgType,
    ResetCause,
    SelfTest,
)

_spec = importlib.util.spec_from_file_location(
    "protocol_vectors_generate", ROOT / "tests" / "vectors" / "generate.py"
)
generate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(generate)

ALL = [json.loads(line) for line in VECTORS.read_text().splitlines()]


def of_kind(kind):
    return [pytest.param(v, id=v["name"]) for v in ALL if v["kind"] == kind]


def test_vector_file_is_current():
    run = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "vectors" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_crc_check_value():
    # The catalogue check value of CRC-16/IBM-3740 (reveng.sourceforge.io/crc-catalogue).
    assert codec.crc16(b"123456789") == 0x29B1


@pytest.mark.parametrize("vec", of_kind("crc16"))
def test_crc16_vectors(vec):
    assert f"{codec.crc16(bytes.fromhex(vec['data'])):04x}" == vec["crc"]


@pytest.mark.parametrize("vec", of_kind("cobs"))
def test_cobs_vectors(vec):
    raw, enc = bytes.fromhex(vec["raw"]), bytes.fromhex(vec["encoded"])
    assert codec.cobs_encode(raw) == enc
    assert codec.cobs_decode(enc) == raw


@pytest.mark.parametrize("vec", of_kind("cobs_invalid"))
def test_cobs_invalid_vectors(vec):
    with pytest.raises(codec.FrameError) as e:
        codec.cobs_decode(bytes.fromhex(vec["encoded"]))
    assert e.value.code == ErrorCode.BAD_FRAME


@pytest.mark.parametrize("vec", of_kind("exchange"))
def test_exchange_vectors_decode_to_their_meaning(vec):
    requests = codec.FrameReader().feed(bytes.fromhex(vec["input"]))
    replies = codec.FrameReader().feed(bytes.fromhex(vec["output"]))
    assert len(requests) == len(replies) == len(vec["expect"])
    for request, reply, expect in zip(requests, replies, vec["expect"], strict=True):
        assert generate.describe(request) == expect["request"]
        assert generate.describe(reply) == expect["reply"]
        # A rejected request is answered by ERROR with the same code, never an action.
        if "rejected" in expect["request"] and expect["request"]["rejected"] != "UNKNOWN_TYPE":
            assert expect["reply"]["type"] == "ERROR"
            assert expect["reply"]["code"] == expect["request"]["rejected"]
        # Every reply re-encodes to exactly the bytes on the wire.
        seq, msg = codec.decode(reply)
        assert codec.encode(msg, seq)[:-1] == reply


def test_worked_example_from_the_protocol_doc():
    """docs/protocol.md walks through this HELLO byte by byte."""
    assert codec.encode(codec.Hello(), 1).hex(" ") == "03 01 01 03 9d c8 00"
    assert codec.encode(codec.Ping(b"\x00\x2a"), 0x0102).hex(" ") == "04 02 02 01 04 2a ff 0a 00"
    doc = " ".join((ROOT / "docs" / "protocol.md").read_text().split())
    assert doc.count("03 01 01 03 9d c8 00") >= 2  # the walk-through and the vectors' block


def test_protocol_doc_examples_are_the_vectors():
    """Section 7's examples are rendered from tests/vectors/protocol.jsonl: the block
    between the markers equals the rendering, and it shows every reply kind of v4."""
    doc = (ROOT / "docs" / "protocol.md").read_text()
    start, end = doc.index(generate.DOC_BEGIN), doc.index(generate.DOC_END)
    block = doc[start : end + len(generate.DOC_END)]
    assert block == generate.doc_examples(ALL), "run tests/vectors/generate.py"
    for shown in ("<- INFO", "<- READY", "<- ACTION", "NOT_RESET", "NONFINITE", "BAD_CRC"):
        assert shown in block, shown
    # Every frame shown is in the vectors' bytes.
    wire = "".join(v.get("input", "") + v.get("output", "") for v in ALL)
    for line in block.splitlines():
        if line.startswith("   "):
            assert line.replace(" ", "") in wire, line


def test_step_payload_layout():
    frame = codec.encode(codec.Step((1.0, -2.5)), 0x1234)
    packet = codec.decode_frame(frame[:-1])
    assert (packet.type, packet.seq) == (MsgType.STEP, 0x1234)
    assert packet.payload == bytes.fromhex("020000803f000020c0")


def test_action_roundtrip_and_timing():
    msg = codec.Action(
        (0.5, -1.0, 1.0, 0.0), infer_ticks=16800, tick_hz=168_000_000, state_ticks=0x0102
    )
    seq, back = codec.decode(codec.encode(msg, 9)[:-1])
    assert (seq, back) == (9, msg)
    assert back.infer_seconds == pytest.approx(1e-4)
    # infer_ticks, tick_hz, state_ticks (version 4), count, then the floats.
    head = bytes.fromhex("a0410000 007a030a 02010000 04")
    assert msg.payload()[:ACTION_HEADER] == head and ACTION_HEADER == 13


def test_reset_and_ready_carry_nothing():
    assert codec.encode(codec.Reset(), 5).hex(" ") == codec.encode_packet(0x04, 5).hex(" ")
    assert codec.decode(codec.encode(codec.Ready(), 6)[:-1]) == (6, codec.Ready())
    for t in (MsgType.RESET, MsgType.READY):
        with pytest.raises(codec.FrameError) as e:
            codec.decode(codec.encode_packet(t, 7, b"\x00")[:-1])
        assert e.value.code == ErrorCode.BAD_LENGTH


def test_flight_messages_layout_and_roundtrip():
    """The flight build's messages (docs/protocol.md section 12)."""
    state = tuple(float(v) for v in range(16))
    ticks = codec.FlightTicks(10, 1, 0x01020304, state)
    assert len(ticks.payload()) == FLIGHT_TICKS_SIZE == 70
    assert ticks.payload()[:6] == bytes.fromhex("0a01 04030201")
    forces = codec.FlightForces(
        2, 2, 0, 1, 9, 7, 1969, 1970, 720, 115, (0.5,) * 4, (-0.25,) * 4, (1.0,) * 37
    )
    assert len(forces.payload()) == FLIGHT_FORCES_HEADER + 4 * 37 == 206
    assert forces.payload()[FLIGHT_FORCES_HEADER - 1] == 37
    msgs = [
        codec.FlightStart(),
        codec.FlightStarted(0),
        ticks,
        forces,
        codec.FlightParam("qpilot.spinupMs", 0.0),
        codec.FlightLog("qpilot.nNonfin"),
        codec.FlightParamValue(True, 0.0),
        codec.FlightLogValue(False, 0.0),
    ]
    for seq, msg in enumerate(msgs):
        assert codec.decode(codec.encode(msg, seq)[:-1]) == (seq, msg)
    for t, payload in (
        (MsgType.FLIGHT_START, b"\x00"),
        (MsgType.FLIGHT_TICKS, ticks.payload()[:-1]),
        (MsgType.FLIGHT_FORCES, forces.payload()[:-1]),
        (MsgType.FLIGHT_LOG, b""),
        (MsgType.FLIGHT_LOG, b"x" * 49),
        (MsgType.FLIGHT_PARAM, bytes(8)),
        (MsgType.FLIGHT_LOG_VALUE, bytes(8)),
    ):
        with pytest.raises(codec.FrameError) as e:
            codec.decode(codec.encode_packet(t, 7, payload)[:-1])
        assert e.value.code == ErrorCode.BAD_LENGTH, t
    info = dataclasses.replace(generate.fixture_info(), flags=INFO_FLAG_FLIGHT)
    assert info.flight and "flight build" in info.describe()


def test_info_layout_of_the_version_2_3_and_4_fields():
    info = generate.fixture_info()
    payload = info.payload()
    assert len(payload) == INFO_SIZE == 183
    v2v3 = payload[INFO_V1_SIZE:INFO_V3_SIZE]
    assert v2v3 == bytes.fromhex("04 24 fa00 02010000 03000000 00 01")
    v4 = payload[INFO_V3_SIZE:]
    assert v4[:HASH_SIZE].hex() == fixture().data_hash and info.data_hash_hex == v4[:32].hex()
    assert v4[HASH_SIZE] == 18 == info.in_dim
    blocks = v4[HASH_SIZE + 1 :]
    assert blocks == b"position_integral:3,past_actions:4".ljust(BOARD_BLOCKS_SIZE, b"\0")
    assert codec.decode(codec.encode(info, 3)[:-1]) == (3, info)
    assert info.reset_cause == ResetCause.WATCHDOG and "reset watchdog" in info.describe()
    assert "self-test passed, kernel v1" in info.describe() and not info.selftest_failed


@pytest.mark.parametrize(
    "selftest,echo,refused",
    [
        (SelfTest.PASSED, False, False),
        (SelfTest.FAILED, False, True),
        (SelfTest.NOT_RUN, False, True),  # a policy build always runs it
        (SelfTest.NOT_RUN, True, False),  # the ECHO build has no policy to test
        (SelfTest.FAILED, True, True),
        (7, False, True),  # a result this host does not know
    ],
)
def test_handshake_refuses_a_failed_self_test_naming_the_model(selftest, echo, refused):
    info = dataclasses.replace(
        generate.fixture_info(), selftest=selftest, flags=INFO_FLAG_ECHO if echo else 0
    )
    with Link("loop://") as link:
        if not refused:
            link._check_info(info, info.model_hash_hex, allow_echo=True)
            return
        with pytest.raises(HandshakeError, match="self-test") as e:
            link._check_info(info, info.model_hash_hex, allow_echo=True)
    assert info.model_hash_hex[:16] in str(e.value)


def test_info_of_another_version_is_decoded_so_the_host_can_refuse_it():
    """A version-1 device sends a 72-byte INFO: the host reads its version and refuses
    it by name instead of discarding the reply as malformed and timing out."""
    v1 = bytes([1]) + generate.fixture_info().payload()[1:INFO_V1_SIZE]
    seq, old = codec.decode(codec.encode_packet(MsgType.INFO, 4, v1)[:-1])
    assert (seq, old.protocol_version, old.build_id) == (4, 1, "vectors")
    assert (old.reset_cause, old.watchdog_ms, old.rx_dropped) == (0, 0, 0)
    with Link("loop://") as link, pytest.raises(HandshakeError, match="protocol v1, host v4"):
        link._check_info(old, None, False)
    # A version-3 board (86 bytes): refused by its version, in one line.
    v3 = bytes([3]) + generate.fixture_info().payload()[1:INFO_V3_SIZE]
    _, old = codec.decode(codec.encode_packet(MsgType.INFO, 4, v3)[:-1])
    with Link("loop://") as link, pytest.raises(HandshakeError, match="protocol v3, host v4"):
        link._check_info(old, None, False)
    # A current-version INFO of the wrong length is a malformed reply.
    v4 = generate.fixture_info().payload()
    cuts = (v4[:INFO_V1_SIZE], v4[:INFO_V2_SIZE], v4[:INFO_V3_SIZE], v4[:-1], v4 + b"\x00")
    for cut in cuts:
        with pytest.raises(codec.FrameError) as e:
            codec.decode(codec.encode_packet(MsgType.INFO, 5, cut)[:-1])
        assert e.value.code == ErrorCode.BAD_LENGTH


def test_build_id_is_cut_at_24_bytes_without_a_terminator():
    info = generate.fixture_info()
    long_id = "stm32f405-0123456789abcdef+extra"
    payload = codec.Info(**{**vars(info), "build_id": long_id}).payload()
    assert payload[48:72] == long_id.encode()[:24] and 0 not in payload[48:72]
    assert (
        codec.decode(codec.encode_packet(MsgType.INFO, 1, payload)[:-1])[1].build_id
        == (long_id[:24])
    )


def test_decode_rejects_each_failure_with_its_code():
    good = codec.encode(codec.Ping(b"abc"), 5)[:-1]
    assert codec.decode(good) == (5, codec.Ping(b"abc"))
    bad_crc = bytearray(good)
    bad_crc[-1] ^= 0x01
    cases = {
        ErrorCode.BAD_CRC: bytes(bad_crc),
        ErrorCode.BAD_FRAME: b"\x09\x01",
        ErrorCode.OVERSIZE: b"\x01" * (MAX_ENCODED + 1),
        ErrorCode.UNKNOWN_TYPE: codec.encode_packet(0x42, 1)[:-1],
        ErrorCode.BAD_LENGTH: codec.encode_packet(MsgType.STEP, 1, b"\x02\x00")[:-1],
    }
    for code, frame in cases.items():
        with pytest.raises(codec.FrameError) as e:
            codec.decode(frame)
        assert e.value.code == code


def test_reader_recovers_after_oversize():
    reader = codec.FrameReader()
    good = codec.encode(codec.Hello(), 3)
    out = reader.feed(b"\x01" * 1000 + b"\x00" + good)
    assert isinstance(out[0], codec.FrameError) and out[0].code == ErrorCode.OVERSIZE
    assert codec.decode(out[1]) == (3, codec.Hello())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1200))
def test_cobs_roundtrip(data):
    enc = codec.cobs_encode(data)
    assert 0 not in enc
    assert len(enc) <= len(data) + max(1, math.ceil(len(data) / 254))
    assert codec.cobs_decode(enc) == data


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(MsgType)), st.integers(0, 0xFFFF), st.binary(max_size=MAX_PAYLOAD))
def test_packet_roundtrip(msg_type, seq, payload):
    frame = codec.encode_packet(msg_type, seq, payload)
    assert frame.endswith(b"\x00") and frame.count(0) == 1
    assert codec.decode_frame(frame[:-1]) == codec.Packet(msg_type, seq, payload)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_good_frame_survives_any_garbage_before_a_delimiter(garbage):
    """Whatever precedes a 0x00, the frame after it decodes intact (resynchronisation)."""
    good = codec.encode(codec.Step((0.25,) * 18), 77)
    frames = codec.FrameReader().feed(garbage + b"\x00" + good)
    assert codec.decode(frames[-1]) == (77, codec.Step((0.25,) * 18))
