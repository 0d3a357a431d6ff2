"""A request/response link to the firmware over any pyserial URL.

``/dev/ttyACM0``, ``/dev/pts/N``, ``socket://127.0.0.1:PORT`` (QEMU) and ``loop://``
all work. Every read has a deadline; a request is resent a bounded number of times;
a corrupt or mismatched reply is never turned into an action.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import serial

from . import codec
from .protocol import INTEGRITY_ERRORS, PROTOCOL_VERSION, ErrorCode, MsgType, SelfTest


class LinkError(RuntimeError):
    """The link could not be opened or gave no usable answer."""


class LinkTimeout(LinkError):
    """No valid reply before the deadline, after every retry."""


class HandshakeError(LinkError):
    """The device answered but is not the firmware we expect."""


class DeviceError(LinkError):
    """The device rejected an intact request (resending it would not help)."""

    def __init__(self, error: codec.Error):
        super().__init__(f"device rejected the request: {error.describe()}")
        self.code, self.detail = error.code, error.detail


@dataclass
class StepResult:
    action: np.ndarray  # float32 [act_dim]
    infer_ticks: int
    tick_hz: int
    rtt_s: float  # host-side round trip of the successful attempt
    attempts: int
    state_ticks: int = 0  # the board building its observation and keeping the command

    @property
    def infer_s(self) -> float:
        return self.infer_ticks / self.tick_hz


@dataclass
class LinkStats:
    requests: int = 0
    retries: int = 0
    timeouts: int = 0
    corrupt_replies: int = 0  # replies that failed COBS/CRC/length checks
    rejected: int = 0  # integrity ERRORs from the device (our frame arrived damaged)
    stale_replies: int = 0  # valid replies to an earlier seq, discarded
    rtt_s: list[float] = field(default_factory=list)


class Link:
    """One device on one serial URL. Use as a context manager or call close()."""

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 921600,
        timeout: float = 0.5,
        retries: int = 2,
    ):
        """``timeout`` bounds each attempt's wait for a reply; ``retries`` is how many
        times a request is resent after a timeout or a corrupt reply."""
        self.url, self.timeout, self.retries = url, timeout, retries
        self.stats = LinkStats()
        self.info: codec.Info | None = None
        self._seq = 0
        self._reader = codec.FrameReader()
        self._pending: list[bytes | codec.FrameError] = []
        try:
            # A short port timeout: reads return as soon as data arrives, and the
            # loop in _read_frame enforces the real deadline.
            self._port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.02)
        except (serial.SerialException, ValueError, OSError) as e:
            raise LinkError(f"cannot open {url}: {e}") from None

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self._port.close()

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ raw I/O

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (used to inject faults)."""
        try:
            self._port.write(data)
            self._port.flush()
        except (serial.SerialException, OSError) as e:
            raise LinkError(f"write to {self.url} failed: {e}") from None

    def read_frame(self, timeout: float) -> bytes | codec.FrameError | None:
        """The next frame body (or an OVERSIZE FrameError), or None at the deadline."""
        deadline = time.monotonic() + timeout
        while not self._pending:
            if time.monotonic() >= deadline:
                return None
            try:
                # in_waiting is exact on ttys; on socket:// it is only 0 or 1.
                data = self._port.read(max(1, self._port.in_waiting))
            except (serial.SerialException, OSError) as e:
                raise LinkError(f"read from {self.url} failed: {e}") from None
            self._pending.extend(self._reader.feed(data))
        return self._pending.pop(0)

    def drain(self, quiet: float = 0.05, limit: float = 2.0) -> int:
        """Discard input until the line has been quiet for ``quiet`` seconds (at most
        ``limit`` seconds in all, in case the device never stops talking)."""
        dropped = len(self._pending)
        self._pending.clear()
        end = time.monotonic() + limit
        while time.monotonic() < end and self.read_frame(quiet) is not None:
            dropped += 1
        self._pending.clear()
        return dropped

    def next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF
        return self._seq

    # ------------------------------------------------------------ requests

    def request(
        self, msg: codec.Message, expect: MsgType, *, same_seq: bool = False
    ) -> tuple[codec.Message, float, int]:
        """Send ``msg`` and return (reply, round-trip seconds, attempts).

        Each attempt uses a fresh seq, so a late reply to an earlier attempt is
        recognised and dropped; with ``same_seq`` (STEP) every attempt repeats the
        first one's seq, so a board that already stepped answers the repeat from its
        cache instead of stepping twice. Timeouts, corrupt replies and integrity ERRORs
        (the device saw our frame damaged) are retried; any other ERROR raises
        DeviceError.
        """
        self.stats.requests += 1
        seq = None
        for attempt in range(1, self.retries + 2):
            if attempt > 1:
                self.stats.retries += 1
            seq = seq if same_seq and seq is not None else self.next_seq()
            sent = time.monotonic()
            self.send_raw(codec.encode(msg, seq))
            reply = self._await_reply(seq, expect, sent + self.timeout)
            if reply is not None:
                rtt = time.monotonic() - sent
                self.stats.rtt_s.append(rtt)
                return reply, rtt, attempt
        raise LinkTimeout(
            f"no valid {expect.name} from {self.url} after {self.retries + 1} attempts "
            f"of {self.timeout:.2f} s"
        )

    def _await_reply(self, seq: int, expect: MsgType, deadline: float) -> codec.Message | None:
        """The reply to ``seq``, or None when this attempt should be retried."""
        while True:
            frame = self.read_frame(max(0.0, deadline - time.monotonic()))
            if frame is None:
                self.stats.timeouts += 1
                return None
            try:
                if isinstance(frame, codec.FrameError):
                    raise frame
                reply_seq, reply = codec.decode(frame)
            except codec.FrameError:
                self.stats.corrupt_replies += 1
                return None
            if isinstance(reply, codec.Error) and reply.code in INTEGRITY_ERRORS:
                # Our frame (or garbage before it) arrived damaged. The reply's seq
                # is 0 by design, so it cannot be matched: resend.
                self.stats.rejected += 1
                return None
            if reply_seq != seq:
                self.stats.stale_replies += 1
                continue
            if isinstance(reply, codec.Error):
                raise DeviceError(reply)
            if reply.TYPE != expect:
                self.stats.corrupt_replies += 1
                return None
            return reply

    # ------------------------------------------------------------ protocol

    def handshake(
        self,
        expected_hash: str | None = None,
        *,
        deadline: float = 5.0,
        allow_echo: bool = False,
        expected_data_hash: str | None = None,
    ) -> codec.Info:
        """Send HELLO (every 0.25 s at most) until INFO arrives, because bytes sent
        before the firmware enables its UART are lost, then check the INFO.
        ``expected_hash``: hex sha256 of the model, or a prefix of at least 16 hex
        digits; ``expected_data_hash`` likewise for what the board runs (the exported
        data: a stale header of the same checkpoint differs here). Raises
        HandshakeError on a mismatch."""
        end = time.monotonic() + deadline
        self.send_raw(b"\x00")  # terminate any partial frame in the device's receiver
        self.drain()
        info = None
        while info is None:
            if time.monotonic() >= end:
                raise LinkTimeout(f"no INFO from {self.url} within {deadline:.1f} s")
            seq = self.next_seq()
            self.send_raw(codec.encode(codec.Hello(), seq))
            # Resend often: until the firmware enables its UART, HELLOs vanish silently.
            attempt_end = min(end, time.monotonic() + min(self.timeout, 0.25))
            reply = self._await_reply(seq, MsgType.INFO, attempt_end)
            info = reply if isinstance(reply, codec.Info) else None
        self._check_info(info, expected_hash, allow_echo, expected_data_hash)
        self.info = info
        return info

    def _check_info(
        self,
        info: codec.Info,
        expected_hash: str | None,
        allow_echo: bool,
        expected_data_hash: str | None = None,
    ):
        if info.protocol_version != PROTOCOL_VERSION:
            raise HandshakeError(
                f"device speaks protocol v{info.protocol_version}, host v{PROTOCOL_VERSION}: "
                "build and flash the firmware of this version (make flash), or use the "
                "host of the board's version"
            )
        for what, want, have in (
            ("model", expected_hash, info.model_hash_hex),
            ("data", expected_data_hash, info.data_hash_hex),
        ):
            if want is None:
                continue
            want = want.strip().lower()
            if len(want) < 16:
                raise ValueError(f"expected {what} hash needs at least 16 hex digits")
            if not have.startswith(want):
                raise HandshakeError(
                    f"{what} hash mismatch: device runs {have[:16]}..., expected "
                    f"{want[:16]}... (flash the firmware built from this export)"
                )
        if info.echo and not allow_echo:
            raise HandshakeError("device runs the ECHO build (no policy); pass allow_echo")
        if info.selftest_failed:
            try:
                result = SelfTest(info.selftest).name.lower().replace("_", " ")
            except ValueError:
                result = f"result {info.selftest}"
            raise HandshakeError(
                f"device's policy self-test {result}: the firmware built for model "
                f"{info.model_hash_hex[:16]}... computes other actions than export did for "
                "the header's self-test states (a kernel, compiler or flag that changes "
                "the arithmetic); refusing it - rebuild it from the exported policy.h "
                "and the qp_kernel.h beside it"
            )

    def reset(self) -> float:
        """RESET: the board's kept blocks to their start (an episode begins); round-trip
        seconds."""
        _, rtt, _ = self.request(codec.Reset(), MsgType.READY)
        return rtt

    def step(self, inputs: Sequence[float] | np.ndarray) -> StepResult:
        """The newest estimates and sensor readings in (the layout's estimate and sensor
        blocks), the board's command out, with its on-board times. A retry repeats the
        seq, so the board never steps its kept blocks twice for one request."""
        reply, rtt, attempts = self.request(
            codec.Step(tuple(float(v) for v in np.asarray(inputs, dtype=np.float32).ravel())),
            MsgType.ACTION,
            same_seq=True,
        )
        assert isinstance(reply, codec.Action)
        if self.info is not None and len(reply.action) != self.info.act_dim:
            raise LinkError(f"ACTION has {len(reply.action)} values, INFO said {self.info.act_dim}")
        action = np.asarray(reply.action, dtype=np.float32)
        return StepResult(
            action, reply.infer_ticks, reply.tick_hz, rtt, attempts, reply.state_ticks
        )

    def ping(self, data: bytes = b"") -> float:
        """Round-trip seconds of a PING carrying ``data``; checks the echo."""
        reply, rtt, _ = self.request(codec.Ping(data), MsgType.PONG)
        if reply != codec.Pong(data):
            raise LinkError("PONG payload differs from the PING payload")
        return rtt


__all__ = [
    "DeviceError",
    "ErrorCode",
    "HandshakeError",
    "Link",
    "LinkError",
    "LinkStats",
    "LinkTimeout",
    "StepResult",
]
