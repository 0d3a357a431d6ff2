"""Link behaviour that needs control over the wire: corrupt and stale replies (through a
relay in front of the host firmware), timeouts, unopenable ports, and the CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from board_twin import FixtureBoard
from firmware_support import FIRMWARE, IN_DIM, ROOT, fixture_hash, make, stop
from toolchain import require_tool

from firmware_bridge import codec
from firmware_bridge.link import Link, LinkError, LinkTimeout

HOST_EXE = FIRMWARE / "build" / "host" / "policy_fixture" / "qp_host"


class CorruptingRelay:
    """TCP server in front of ``qp_host --stdio`` that can damage or hold back replies.

    ``corrupt`` is how many of the next device->host frames get one bit flipped;
    ``swallow`` is how many are dropped entirely.
    """

    def __init__(self):
        self.proc = subprocess.Popen(
            [str(HOST_EXE), "--stdio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(10)
        self.port = self.server.getsockname()[1]
        self.corrupt = self.swallow = 0
        self.client: socket.socket | None = None
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        try:
            self.client, _ = self.server.accept()
        except OSError:
            return
        threading.Thread(target=self._to_device, daemon=True).start()
        frame = bytearray()
        while data := os.read(self.proc.stdout.fileno(), 4096):
            for b in data:
                frame.append(b)
                if b == 0:
                    self._forward(frame)
                    frame = bytearray()

    def _forward(self, frame: bytearray):
        if self.swallow > 0:
            self.swallow -= 1
            return
        if self.corrupt > 0:
            self.corrupt -= 1
            frame[len(frame) // 2] ^= 0x10 if frame[len(frame) // 2] != 0x10 else 0x01
        try:
            self.client.sendall(frame)
        except OSError:
            pass

    def _to_device(self):
        try:
            while data := self.client.recv(4096):
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
        except (OSError, ValueError):
            pass

    def close(self):
        for s in (self.client, self.server):
            if s is not None:
                s.close()
        if self.proc.stdin:
            self.proc.stdin.close()
        stop(self.proc)


@pytest.fixture(scope="module")
def relay_link():
    require_tool("cc")
    make("BOARD=host")
    relay = CorruptingRelay()
    try:
        with Link(f"socket://127.0.0.1:{relay.port}", timeout=0.5, retries=2) as link:
            link.handshake(fixture_hash())
            yield relay, link
    finally:
        relay.close()


@pytest.fixture
def board(relay_link):
    """The device RESET and its numpy twin reset: a good STEP answers ``board.act``."""
    relay_link[1].reset()
    twin = FixtureBoard()
    twin.reset()
    return twin


def test_corrupt_reply_is_retried_once_never_returned(relay_link, board):
    relay, link = relay_link
    inputs = np.linspace(-1, 1, IN_DIM, dtype=np.float32)
    before = link.stats.corrupt_replies
    relay.corrupt = 1
    result = link.step(inputs)
    assert result.attempts == 2
    assert link.stats.corrupt_replies == before + 1
    # The retry repeats the seq: the board answers from its cache, stepping once.
    np.testing.assert_array_equal(result.action, board.act(inputs))
    np.testing.assert_array_equal(link.step(inputs).action, board.act(inputs))


def test_every_reply_corrupt_raises_after_bounded_retries(relay_link, board):
    relay, link = relay_link
    relay.corrupt = 3  # retries=2: all three attempts damaged
    start = time.monotonic()
    with pytest.raises(LinkTimeout, match="after 3 attempts"):
        link.step(np.zeros(IN_DIM, dtype=np.float32))
    assert time.monotonic() - start < 3 * 0.5 + 10.0  # bounded, with room for a busy machine
    assert link.step(np.zeros(IN_DIM, dtype=np.float32)).attempts == 1  # link recovered


def test_lost_reply_times_out_and_is_retried(relay_link, board):
    relay, link = relay_link
    relay.swallow = 1
    start = time.monotonic()
    inputs = np.ones(IN_DIM, dtype=np.float32)
    result = link.step(inputs)
    assert result.attempts == 2
    np.testing.assert_array_equal(result.action, board.act(inputs))  # stepped once
    assert time.monotonic() - start >= 0.5  # waited out the first attempt


def test_stale_reply_is_skipped(relay_link, board):
    _, link = relay_link
    link.send_raw(codec.encode(codec.Step((9.0,) * IN_DIM), link.next_seq()))
    board.act(np.full(IN_DIM, 9.0, dtype=np.float32))  # the board stepped on it too
    time.sleep(0.05)  # its ACTION is now waiting unread
    before = link.stats.stale_replies
    inputs = np.full(IN_DIM, -0.5, dtype=np.float32)
    result = link.step(inputs)
    np.testing.assert_array_equal(result.action, board.act(inputs))
    assert link.stats.stale_replies == before + 1


def test_loopback_without_device_times_out():
    # loop:// echoes our own requests back: they are never mistaken for replies.
    with Link("loop://", timeout=0.1, retries=1) as link:
        start = time.monotonic()
        with pytest.raises(LinkTimeout):
            link.ping(b"x")
        with pytest.raises(LinkTimeout, match="no INFO"):
            link.handshake(deadline=0.3)
        assert time.monotonic() - start < 10.0  # bounded, with room for a busy machine


def test_missing_port_is_a_clear_error():
    with pytest.raises(LinkError, match="cannot open /dev/ttyNOPE0"):
        Link("/dev/ttyNOPE0")


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "firmware_bridge", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_cli_help():
    run = cli("--help")
    assert run.returncode == 0 and "emulate" in run.stdout
    run = cli("emulate", "--help")
    assert run.returncode == 0 and "--model" in run.stdout


def test_cli_bad_model_is_an_error_message_not_a_traceback():
    require_tool("qemu-system-arm")
    run = cli("emulate", "--model", "/nonexistent/policy.h")
    assert run.returncode == 2
    assert run.stderr.startswith("error:") and "Traceback" not in run.stderr
