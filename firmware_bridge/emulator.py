"""Run the STM32F405 firmware in QEMU (netduinoplus2) with USART1 on a loopback port.

    with Emulator(model="artifacts/policy.h") as emu:
        print(emu.info.describe())
        emu.link.step(obs)

The context manager always stops QEMU: on normal exit, exceptions, KeyboardInterrupt
and failed tests. QEMU is also asked to die with its parent (Linux PR_SET_PDEATHSIG),
so a killed Python process leaves no emulator behind.
"""

from __future__ import annotations

import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from . import codec
from .link import Link, LinkError

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE_DIR = ROOT / "firmware"
DEFAULT_MODEL = FIRMWARE_DIR / "test" / "policy_fixture.h"
QEMU = "qemu-system-arm"


class EmulatorError(RuntimeError):
    """QEMU or the firmware build could not be started."""


@dataclass(frozen=True)
class FlightApp:
    """The flight build's app: the Crazyflie app `make crazyflie` wrote (its own
    src/policy.h is the model) and the THRUST_MAX it is built with (None: the app's)."""

    path: Path
    thrust_max: float | None = None

    @property
    def model(self) -> Path:
        return Path(self.path).resolve() / "src" / "policy.h"

    def make_args(self) -> list[str]:
        args = [f"CRAZYFLIE_APP={Path(self.path).resolve()}"]
        return args + ([f"THRUST_MAX={self.thrust_max!r}"] if self.thrust_max else [])

    def variant(self) -> str:
        return "-crazyflie" + (f"-thrust{self.thrust_max!r}" if self.thrust_max else "")


def firmware_dir(
    board: str, model: Path, *, echo: bool = False, flight: FlightApp | None = None
) -> Path:
    """Where ``make -C firmware`` puts a build (mirrors the Makefile's VARIANT)."""
    if flight is not None:
        return FIRMWARE_DIR / "build" / board / (flight.model.stem + flight.variant())
    return FIRMWARE_DIR / "build" / board / (model.stem + ("-echo" if echo else ""))


def build_firmware(
    board: str = "stm32f405",
    model: Path | str | None = None,
    *,
    echo: bool = False,
    flight: FlightApp | None = None,
    timeout: float = 300.0,
) -> Path:
    """Run make (a no-op when up to date); returns the ELF or host executable. With
    ``flight`` the flight build of that app (its own policy.h; ``model`` is not used)."""
    model = flight.model if flight is not None else Path(model or DEFAULT_MODEL).resolve()
    if not model.is_file():
        raise EmulatorError(f"model header {model} does not exist")
    cmd = ["make", "-C", str(FIRMWARE_DIR), f"BOARD={board}"]
    cmd += flight.make_args() if flight is not None else [f"MODEL={model}"]
    if echo:
        cmd.append("ECHO=1")
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise EmulatorError("make is not installed") from None
    except subprocess.TimeoutExpired:
        raise EmulatorError(f"firmware build exceeded {timeout:.0f} s") from None
    if run.returncode != 0:
        raise EmulatorError(f"firmware build failed:\n{run.stdout[-2000:]}{run.stderr[-4000:]}")
    name = "quadpilot.elf" if board == "stm32f405" else "qp_host"
    return firmware_dir(board, model, echo=echo, flight=flight) / name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stop_process(proc: subprocess.Popen) -> None:
    """Terminate, then kill after 3 s: a child never outlives its owner."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=3)


class Emulator:
    """QEMU running the firmware; ``link`` is a handshaken Link to its USART1."""

    def __init__(
        self,
        model: Path | str | None = None,
        *,
        elf: Path | str | None = None,
        echo: bool = False,
        flight: FlightApp | None = None,
        expected_hash: str | None = None,
        boot_timeout: float = 60.0,
        link_timeout: float = 10.0,
        retries: int = 2,
    ):
        """``elf`` skips the build; otherwise the firmware is built for ``model``
        (default: the fixture policy), or ``flight``'s app. ``expected_hash`` is checked
        at the handshake. The timeouts are generous: QEMU loses no byte, so a late reply
        is a host busy with other work (a CI machine loaded beyond its cores), not a
        fault."""
        self.model, self.elf, self.echo, self.flight = model, elf, echo, flight
        self.expected_hash = expected_hash
        self.boot_timeout, self.link_timeout, self.retries = boot_timeout, link_timeout, retries
        self.elf_path: Path | None = None  # the ELF it runs, once started
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.link: Link | None = None
        self.info: codec.Info | None = None

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def command(self, elf: Path, port: int) -> list[str]:
        return [
            QEMU,
            "-M",
            "netduinoplus2",
            "-nographic",
            "-monitor",
            "none",
            "-icount",
            "shift=0",
            "-serial",
            f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on",
            "-kernel",
            str(elf),
        ]

    def start(self) -> Emulator:
        if shutil.which(QEMU) is None:
            raise EmulatorError(f"{QEMU} not found (Debian: apt-get install qemu-system-arm)")
        if self.elf:
            elf = Path(self.elf)
        else:
            elf = build_firmware("stm32f405", self.model, echo=self.echo, flight=self.flight)
        if not elf.is_file():
            raise EmulatorError(f"firmware {elf} does not exist")
        self.elf_path = elf
        try:
            self._launch(elf)
            self.link = self._connect()
            self.info = self.link.handshake(
                self.expected_hash, deadline=self.boot_timeout, allow_echo=self.echo
            )
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, elf: Path) -> None:
        # The port is free when chosen but could be taken before QEMU binds it: retry.
        for _ in range(3):
            self.port = free_port()
            self.proc = subprocess.Popen(
                self.command(elf, self.port),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
            self._finalizer = weakref.finalize(self, stop_process, self.proc)
            if self._wait_listening():
                return
            stop_process(self.proc)
        raise EmulatorError(f"QEMU did not start: {self._stderr()}")

    def _wait_listening(self) -> bool:
        """QEMU listens before it runs (wait=on); poll until then or until it exits."""
        deadline = time.monotonic() + self.boot_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            with socket.socket() as s:
                s.settimeout(0.2)
                # Probing with a connection would consume QEMU's one-client slot, so
                # test whether the port is bound instead.
                try:
                    s.bind(("127.0.0.1", self.port))
                except OSError:
                    return True
            time.sleep(0.02)
        return False

    def _connect(self) -> Link:
        deadline = time.monotonic() + self.boot_timeout
        while True:
            try:
                return Link(self.url, timeout=self.link_timeout, retries=self.retries)
            except LinkError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise EmulatorError(f"cannot connect to QEMU: {self._stderr()}") from None
                time.sleep(0.05)

    def _stderr(self) -> str:
        if self.proc is None or self.proc.poll() is None:
            return "(still running)"
        return (self.proc.stderr.read() or b"").decode(errors="replace").strip() or "no output"

    def stop(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None
        if self.proc is not None:
            stop_process(self.proc)
            if self.proc.stderr:
                self.proc.stderr.close()
            self._finalizer.detach()
            self.proc = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
