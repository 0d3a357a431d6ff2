"""The firmware over real links: the host build on a pseudo-terminal and the ARM ELF in
QEMU on a TCP socket. The same tests run against both, including fault injection:
every corrupted frame is rejected and never answered with an action, the next good
frame is answered, and the host recovers with at most one retry."""

from __future__ import annotations

import math
import random
import subprocess
import threading

import numpy as np
import pytest
from board_twin import BOARD_BLOCKS, DATA_HASH, FixtureBoard
from firmware_support import (
    FIRMWARE,
    IN_DIM,
    OBS_DIM,
    fixture,
    fixture_hash,
    make,
    read_line,
    stop,
)
from toolchain import require_tool

from firmware_bridge import codec
from firmware_bridge.emulator import Emulator
from firmware_bridge.link import DeviceError, HandshakeError, Link
from firmware_bridge.protocol import (
    INTEGRITY_ERRORS,
    MAX_FRAME,
    MAX_OBS,
    MAX_PAYLOAD,
    ErrorCode,
    MsgType,
    ResetCause,
    SelfTest,
    TickSource,
)

HOST_EXE = FIRMWARE / "build" / "host" / "policy_fixture" / "qp_host"
# A reply comes in milliseconds; the wait only runs out when a frame is lost on purpose.
# Generous, so that a machine loaded well beyond its cores does not look like a loss.
LINK_TIMEOUT = 10.0


@pytest.fixture(scope="module", params=["host-pty", "qemu"])
def device(request):
    """(kind, Link) with the handshake done; the device process stops at teardown."""
    if request.param == "host-pty":
        require_tool("cc")
        make("BOARD=host")
        proc = subprocess.Popen([str(HOST_EXE), "--pty"], stdout=subprocess.PIPE)
        try:
            line = read_line(proc, timeout=10)
            assert line.startswith("PTY /dev/"), line
            with Link(line.split()[1], timeout=LINK_TIMEOUT) as link:
                link.handshake(fixture_hash())
                yield request.param, link
        finally:
            stop(proc)
    else:
        require_tool("arm-none-eabi-gcc")
        require_tool("qemu-system-arm")
        with Emulator(expected_hash=fixture_hash(), link_timeout=LINK_TIMEOUT) as emu:
            yield request.param, emu.link


@pytest.fixture
def link(device):
    kind, link = device
    link.send_raw(b"\x00")  # end any partial frame a previous test left behind
    link.drain()
    link.stats.retries = 0
    return link


@pytest.fixture
def board(link):
    """The device freshly RESET, and the numpy twin of its kept blocks, reset too: each
    good STEP's action is ``board.act(inputs)``."""
    link.reset()
    twin = FixtureBoard()
    twin.reset()
    return twin


def frames_until_pong(link: Link, data: bytes) -> list[tuple[int, codec.Message]]:
    """Send ``data`` as is, then a PING; return every frame received before its PONG.

    If the corruption swallowed our PING (e.g. no delimiter after garbage), the PING is
    resent once, after a short wait; the second wait is long, and a late PONG to the first
    PING counts too (a loaded machine can be slow). Undecodable frames fail the test: the
    device must only send good ones.
    """
    link.send_raw(data)
    received, pings = [], set()
    for wait in (2.0, 30.0):
        seq = link.next_seq()
        pings.add(seq)
        link.send_raw(codec.encode(codec.Ping(b"sync"), seq))
        while (frame := link.read_frame(timeout=wait)) is not None:
            assert not isinstance(frame, codec.FrameError), frame
            reply_seq, msg = codec.decode(frame)
            if msg == codec.Pong(b"sync") and reply_seq in pings:
                return received
            received.append((reply_seq, msg))
    raise AssertionError(f"device did not answer PING after the fault; got {received}")


def assert_all_rejected(received, expected_codes=None):
    assert received, "the corrupted frame got no reply at all"
    for _, msg in received:
        assert isinstance(msg, codec.Error), f"corrupted frame answered with {msg}"
        if expected_codes is not None:
            assert msg.code in expected_codes, msg.describe()


def assert_step_ok(
    link: Link, board: FixtureBoard, rng: np.random.Generator, max_attempts: int = 1
):
    """A good STEP is answered with the twin's action: after a refused request this also
    shows the refusal left the board's blocks as they were."""
    inputs = rng.normal(0, 2, IN_DIM).astype(np.float32)
    result = link.step(inputs)
    np.testing.assert_array_equal(result.action, board.act(inputs))
    assert result.attempts <= max_attempts
    return result


# ------------------------------------------------------------------ normal operation


def test_handshake_info(device):
    kind, link = device
    info = link.handshake(fixture_hash())
    assert info.model_hash_hex == fixture_hash()
    assert (info.obs_dim, info.act_dim, info.scheme, info.macs) == (25, 4, 1, fixture().macs)
    assert (info.in_dim, info.board_blocks, info.data_hash_hex) == (18, BOARD_BLOCKS, DATA_HASH)
    assert info.obs_dim == OBS_DIM
    assert not info.echo and info.max_payload == MAX_PAYLOAD
    # The fixture's self-test ran at boot (host: portable C; QEMU: the Thumb-2 kernel).
    assert info.selftest == SelfTest.PASSED and info.kernel_version == fixture().kernel_version
    # QEMU's RCC is a stub (RCC_CSR reads 0) and the host has no reset register.
    assert info.reset_cause == ResetCause.UNKNOWN and info.reset_flags == 0
    assert info.rx_dropped == 0 and info.rx_overruns == 0
    if kind == "qemu":
        assert info.tick_source == TickSource.SYSTICK and info.tick_hz == 168_000_000
        assert info.build_id.startswith("stm32f405-")
        assert info.watchdog_ms == 250
    else:
        assert info.tick_source == TickSource.HOST_CLOCK and info.tick_hz == 1_000_000_000
        assert info.watchdog_ms == 0


def test_handshake_refuses_another_model(device):
    _, link = device
    with pytest.raises(HandshakeError, match="model hash mismatch"):
        link.handshake("00" * 32)


def test_steps_equal_the_fixture_policy(device, board):
    """An episode: the board's integral and last command evolve as the twin's (the
    integral reaches its limit at scale 10), every action bit for bit."""
    kind, link = device
    rng = np.random.default_rng(1)
    for scale in (0.1, 1.0, 10.0, 1e6):  # 1e6 saturates every output at +-1
        for _ in range(5):
            inputs = (rng.normal(size=IN_DIM) * scale).astype(np.float32)
            r = link.step(inputs)
            np.testing.assert_array_equal(r.action, board.act(inputs))
            assert r.attempts == 1 and r.rtt_s > 0
            assert 0 < r.infer_ticks < r.tick_hz // 100  # well under 10 ms
            assert 0 < r.state_ticks < r.tick_hz // 100
    assert np.abs(board.integral).max() == np.float32(0.5)  # the clip was reached
    if kind == "qemu":
        # 232 MACs plus the call take a few thousand instructions: ~6 per tick.
        assert 30 < r.infer_ticks < 2000
        assert r.state_ticks < r.infer_ticks  # the blocks cost less than the policy


def test_a_repeated_step_is_answered_from_the_cache(link, board):
    """The same STEP frame twice (a retry whose first reply was lost): the same ACTION
    bytes, and the board stepped once (the next STEP matches the twin stepped once)."""
    rng = np.random.default_rng(12)
    inputs = rng.normal(0, 2, IN_DIM).astype(np.float32)
    frame = codec.encode(codec.Step(tuple(float(v) for v in inputs)), link.next_seq())
    link.send_raw(frame + frame)
    first, second = link.read_frame(timeout=10.0), link.read_frame(timeout=10.0)
    assert first == second and isinstance(codec.decode(first)[1], codec.Action)
    np.testing.assert_array_equal(codec.decode(first)[1].action, board.act(inputs))
    assert_step_ok(link, board, rng)


def test_ping_payload_sizes(device):
    _, link = device
    for n in (0, 1, 100, MAX_PAYLOAD):
        assert link.ping(bytes(random.Random(n).randrange(256) for _ in range(n))) > 0


def test_pipelined_frames_are_all_answered_in_order(link, board):
    """Every request is written before any reply is read, so the frames arrive back to
    back and queue in the device's receive ring (1,024 bytes: about 12 of these STEPs)
    while it answers the earlier ones. Each must get its own correct reply, in order.
    (QEMU's UART never overruns, so this checks the ring's bookkeeping, not silicon
    timing.)"""
    rng = np.random.default_rng(11)
    expected, wire = [], bytearray()
    for i in range(300):
        seq = link.next_seq()
        if i % 3 == 0:
            inputs = rng.normal(0, 2, IN_DIM).astype(np.float32)
            msg = codec.Step(tuple(float(v) for v in inputs))
            expected.append((seq, "step", board.act(inputs)))
        elif i % 3 == 1:
            data = rng.integers(0, 256, int(rng.integers(0, 65)), dtype=np.uint8).tobytes()
            msg = codec.Ping(data)
            expected.append((seq, "pong", data))
        else:
            msg = codec.Hello()
            expected.append((seq, "info", None))
        wire += codec.encode(msg, seq)
    # The replies are read as they come, by a thread, while the requests go out back to
    # back: a reader that waited for the last write could deadlock with a device blocked
    # writing replies into a full pty (it happened: the pty's buffers are not a promise).
    frames: list = []

    def read_replies():
        for _ in expected:
            frames.append(link.read_frame(timeout=10.0))
            if frames[-1] is None:
                return

    reader = threading.Thread(target=read_replies, daemon=True)
    reader.start()
    link.send_raw(bytes(wire))
    reader.join(timeout=10.0 * len(expected))
    assert not reader.is_alive(), "the replies stopped coming"
    padded = frames + [None] * (len(expected) - len(frames))
    for (seq, kind, want), frame in zip(expected, padded, strict=True):
        assert frame is not None, f"no reply for seq {seq} ({kind})"
        assert not isinstance(frame, codec.FrameError), frame
        reply_seq, msg = codec.decode(frame)
        assert reply_seq == seq, (reply_seq, seq, msg)
        if kind == "step":
            assert isinstance(msg, codec.Action), msg
            np.testing.assert_array_equal(np.asarray(msg.action, dtype=np.float32), want)
        elif kind == "pong":
            assert msg == codec.Pong(want)
        else:
            assert isinstance(msg, codec.Info) and msg.model_hash_hex == fixture_hash()
            assert msg.rx_dropped == 0 and msg.rx_overruns == 0
    assert link.read_frame(timeout=0.2) is None  # nothing more: one reply per frame


# ------------------------------------------------------------------ fault injection


def test_garbage_bytes_are_rejected(link, board):
    rng = random.Random(7)
    garbage = bytes(rng.randrange(1, 256) for _ in range(120))
    assert_all_rejected(frames_until_pong(link, garbage + b"\x00"), INTEGRITY_ERRORS)
    assert_step_ok(link, board, np.random.default_rng(2))


def test_garbage_glued_to_a_request_costs_one_retry(link, board):
    link.send_raw(bytes(random.Random(8).randrange(1, 256) for _ in range(50)))
    assert_step_ok(link, board, np.random.default_rng(3), max_attempts=2)
    assert link.stats.retries == 1


def test_flipped_bits_are_rejected(link, board):
    rng = random.Random(9)
    inputs = tuple(float(x) for x in np.random.default_rng(4).normal(size=IN_DIM))
    frame = codec.encode(codec.Step(inputs), link.next_seq())
    for _ in range(25):
        bad = bytearray(frame)
        i = rng.randrange(len(frame) - 1)  # anywhere but the delimiter
        bad[i] ^= 1 << rng.randrange(8)
        assert_all_rejected(frames_until_pong(link, bytes(bad)))
    assert_step_ok(link, board, np.random.default_rng(5))


def test_truncated_frames_are_rejected(link, board):
    frame = codec.encode(codec.Step((0.5,) * IN_DIM), link.next_seq())
    for cut in (1, 3, 5, len(frame) // 2, len(frame) - 2):
        assert_all_rejected(frames_until_pong(link, frame[:cut] + b"\x00"), INTEGRITY_ERRORS)
    assert_step_ok(link, board, np.random.default_rng(6))


def test_oversized_frames_are_rejected(link, board):
    for n in (MAX_FRAME, 1200, 2000):
        received = frames_until_pong(link, b"\x5a" * n + b"\x00")
        assert_all_rejected(received, {ErrorCode.OVERSIZE})
        assert len(received) == 1
    assert_step_ok(link, board, np.random.default_rng(7))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_input_is_refused(link, board, bad):
    inputs = [0.5] * IN_DIM
    inputs[5] = bad
    with pytest.raises(DeviceError) as e:
        link.step(inputs)
    assert (e.value.code, e.value.detail) == (ErrorCode.NONFINITE, 5)
    assert_step_ok(link, board, np.random.default_rng(8))


@pytest.mark.parametrize("n", [0, 1, 17, 19, 25, MAX_OBS])  # 25: the whole observation
def test_wrong_dimensions_are_refused(link, board, n):
    with pytest.raises(DeviceError) as e:
        link.step([0.25] * n)
    assert (e.value.code, e.value.detail) == (ErrorCode.WRONG_DIMS, IN_DIM)
    assert_step_ok(link, board, np.random.default_rng(9))


def test_bad_length_and_unknown_type_echo_the_seq(link, board):
    seq = link.next_seq()
    received = frames_until_pong(link, codec.encode_packet(MsgType.STEP, seq, b"\x12\x00"))
    assert received == [(seq, codec.Error(ErrorCode.BAD_LENGTH, MsgType.STEP))]
    seq = link.next_seq()
    received = frames_until_pong(link, codec.encode_packet(0x42, seq))
    assert received == [(seq, codec.Error(ErrorCode.UNKNOWN_TYPE, 0x42))]
