"""The firmware over real links: the host build on a pseudo-terminal and the ARM ELF in
QEMU on a TCP socket. The same tests run against both, including fault injection:
every corrupted frame is rejected and never answered with an action, the next good
frame is answered, and the host recovers with at most one retry."""

from __future__ import annotations

import math
import random
import subprocess

import numpy as np
import pytest
from firmware_support import (
    FIRMWARE,
    OBS_DIM,
    fixture,
    fixture_hash,
    fixture_policy,
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


def assert_step_ok(link: Link, rng: np.random.Generator, max_attempts: int = 1):
    obs = rng.normal(0, 2, OBS_DIM).astype(np.float32)
    result = link.step(obs)
    np.testing.assert_array_equal(result.action, fixture_policy(obs))
    assert result.attempts <= max_attempts
    return result


# ------------------------------------------------------------------ normal operation


def test_handshake_info(device):
    kind, link = device
    info = link.handshake(fixture_hash())
    assert info.model_hash_hex == fixture_hash()
    assert (info.obs_dim, info.act_dim, info.scheme, info.macs) == (18, 4, 1, fixture().macs)
    assert not info.echo and info.max_payload == 256
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


def test_steps_equal_the_fixture_policy(device):
    kind, link = device
    rng = np.random.default_rng(1)
    for scale in (0.1, 1.0, 10.0, 1e6):  # 1e6 saturates every output at +-1
        for _ in range(5):
            obs = (rng.normal(size=OBS_DIM) * scale).astype(np.float32)
            r = link.step(obs)
            np.testing.assert_array_equal(r.action, fixture_policy(obs))
            assert r.attempts == 1 and r.rtt_s > 0
            assert 0 < r.infer_ticks < r.tick_hz // 100  # well under 10 ms
    if kind == "qemu":
        # 72 MACs plus the call take a few hundred instructions: ~6 per tick.
        assert 30 < r.infer_ticks < 1000


def test_ping_payload_sizes(device):
    _, link = device
    for n in (0, 1, 100, 256):
        assert link.ping(bytes(random.Random(n).randrange(256) for _ in range(n))) > 0


def test_pipelined_frames_are_all_answered_in_order(link):
    """Every request is written before any reply is read, so the frames arrive back to
    back and queue in the device's receive ring (1,024 bytes: about 12 of these STEPs)
    while it answers the earlier ones. Each must get its own correct reply, in order.
    (QEMU's UART never overruns, so this checks the ring's bookkeeping, not silicon
    timing; the replies, ~25 KB, fit the pty's and the socket's buffers.)"""
    rng = np.random.default_rng(11)
    expected, wire = [], bytearray()
    for i in range(300):
        seq = link.next_seq()
        if i % 3 == 0:
            obs = rng.normal(0, 2, OBS_DIM).astype(np.float32)
            msg = codec.Step(tuple(float(v) for v in obs))
            expected.append((seq, "step", fixture_policy(obs)))
        elif i % 3 == 1:
            data = rng.integers(0, 256, int(rng.integers(0, 65)), dtype=np.uint8).tobytes()
            msg = codec.Ping(data)
            expected.append((seq, "pong", data))
        else:
            msg = codec.Hello()
            expected.append((seq, "info", None))
        wire += codec.encode(msg, seq)
    link.send_raw(bytes(wire))
    for seq, kind, want in expected:
        frame = link.read_frame(timeout=10.0)
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


def test_garbage_bytes_are_rejected(link):
    rng = random.Random(7)
    garbage = bytes(rng.randrange(1, 256) for _ in range(120))
    assert_all_rejected(frames_until_pong(link, garbage + b"\x00"), INTEGRITY_ERRORS)
    assert_step_ok(link, np.random.default_rng(2))


def test_garbage_glued_to_a_request_costs_one_retry(link):
    link.send_raw(bytes(random.Random(8).randrange(1, 256) for _ in range(50)))
    assert_step_ok(link, np.random.default_rng(3), max_attempts=2)
    assert link.stats.retries == 1


def test_flipped_bits_are_rejected(link):
    rng = random.Random(9)
    obs = tuple(float(x) for x in np.random.default_rng(4).normal(size=OBS_DIM))
    frame = codec.encode(codec.Step(obs), link.next_seq())
    for _ in range(25):
        bad = bytearray(frame)
        i = rng.randrange(len(frame) - 1)  # anywhere but the delimiter
        bad[i] ^= 1 << rng.randrange(8)
        assert_all_rejected(frames_until_pong(link, bytes(bad)))
    assert_step_ok(link, np.random.default_rng(5))


def test_truncated_frames_are_rejected(link):
    frame = codec.encode(codec.Step((0.5,) * OBS_DIM), link.next_seq())
    for cut in (1, 3, 5, len(frame) // 2, len(frame) - 2):
        assert_all_rejected(frames_until_pong(link, frame[:cut] + b"\x00"), INTEGRITY_ERRORS)
    assert_step_ok(link, np.random.default_rng(6))


def test_oversized_frames_are_rejected(link):
    for n in (264, 600, 2000):
        received = frames_until_pong(link, b"\x5a" * n + b"\x00")
        assert_all_rejected(received, {ErrorCode.OVERSIZE})
        assert len(received) == 1
    assert_step_ok(link, np.random.default_rng(7))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_observation_is_refused(link, bad):
    obs = [0.5] * OBS_DIM
    obs[5] = bad
    with pytest.raises(DeviceError) as e:
        link.step(obs)
    assert (e.value.code, e.value.detail) == (ErrorCode.NONFINITE, 5)
    assert_step_ok(link, np.random.default_rng(8))


@pytest.mark.parametrize("n", [0, 1, 17, 19, 63])
def test_wrong_dimensions_are_refused(link, n):
    with pytest.raises(DeviceError) as e:
        link.step([0.25] * n)
    assert (e.value.code, e.value.detail) == (ErrorCode.WRONG_DIMS, OBS_DIM)
    assert_step_ok(link, np.random.default_rng(9))


def test_bad_length_and_unknown_type_echo_the_seq(link):
    seq = link.next_seq()
    received = frames_until_pong(link, codec.encode_packet(MsgType.STEP, seq, b"\x12\x00"))
    assert received == [(seq, codec.Error(ErrorCode.BAD_LENGTH, MsgType.STEP))]
    seq = link.next_seq()
    received = frames_until_pong(link, codec.encode_packet(0x42, seq))
    assert received == [(seq, codec.Error(ErrorCode.UNKNOWN_TYPE, 0x42))]
