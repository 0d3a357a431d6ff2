"""Write the firmware image to a flight controller's flash, and check what was written.

Two ways in, both at the F405's flash base 0x08000000 (RM0090 section 3.3):
- ``stlink``: an ST-LINK programmer on the board's SWD pins, through ``st-flash``
  (Debian ``stlink-tools``), which reads the flash back after writing and compares it.
- ``dfu``: USB alone, through the ROM bootloader's DFU mode (hold BOOT0, the "boot"
  button, while plugging USB in; ST AN2606), with ``dfu-util`` (Debian ``dfu-util``);
  the image is read back with a DFU upload and compared here.

Each failure a user meets at the bench (no programmer, a board not in DFU mode, a missing
image or tool) is one line saying what to do.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
import tempfile
from pathlib import Path

FLASH_BASE = 0x08000000
TOOLS = {"stlink": ("st-flash", "stlink-tools"), "dfu": ("dfu-util", "dfu-util")}
DFU_ALT = "0"  # the ROM bootloader's internal-flash alternate setting


class FlashError(Exception):
    """The image could not be written or verified; the message says what to do."""


def flash(image: str | Path, method: str = "stlink", timeout: float = 120.0) -> str:
    """Write ``image``; returns a one-line account of what was written and verified."""
    if method not in TOOLS:
        raise FlashError(f"method must be one of {', '.join(TOOLS)}, not {method!r}")
    image = Path(image)
    if not image.is_file() or image.stat().st_size == 0:
        raise FlashError(
            f"{image}: no firmware image; build it with `make firmware REAL_CLOCK=1` "
            f"(needs artifacts/policy.h from `make export`)"
        )
    tool, package = TOOLS[method]
    if shutil.which(tool) is None:
        raise FlashError(
            f"{tool} is not installed: run `make deps` or `apt-get install -y {package}`"
        )
    return (_stlink if method == "stlink" else _dfu)(image, timeout)


def _run(cmd: list[str], timeout: float) -> tuple[int, str]:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FlashError(f"{cmd[0]} gave no answer within {timeout:.0f} s") from None
    return p.returncode, p.stdout + p.stderr


def _last_line(out: str) -> str:
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _stlink(image: Path, timeout: float) -> str:
    code, out = _run(["st-flash", "--reset", "write", str(image), hex(FLASH_BASE)], timeout)
    if "Couldn't find any ST-Link" in out or "No ST-LINK" in out:
        raise FlashError(
            "no ST-LINK programmer found: plug it in over USB and wire it to the board's "
            "SWD pins (SWDIO, SWCLK, GND), or flash over USB with `make flash-dfu`"
        )
    if "verified" not in out.lower() or code != 0:
        raise FlashError(f"st-flash could not write {image.name}: {_last_line(out)}")
    return f"wrote and verified {image.stat().st_size:,} bytes at {FLASH_BASE:#010x} (ST-LINK)"


def _dfu(image: Path, timeout: float) -> str:
    where = f"{FLASH_BASE:#010x}"
    code, out = _run(["dfu-util", "-a", DFU_ALT, "-s", where, "-D", str(image)], timeout)
    if "No DFU capable USB device" in out:
        running = sorted(glob.glob("/dev/ttyACM*"))
        hint = (
            f" (found {', '.join(running)}: the board is running its firmware, not the bootloader)"
            if running
            else ""
        )
        raise FlashError(
            f"no board in DFU mode{hint}: hold the BOOT button while plugging USB in, "
            f"then run the command again"
        )
    if code != 0:
        raise FlashError(f"dfu-util could not write {image.name}: {_last_line(out)}")
    size = image.stat().st_size
    with tempfile.TemporaryDirectory(prefix="qp-dfu-") as tmp:
        back = Path(tmp) / "readback.bin"
        code, out = _run(
            ["dfu-util", "-a", DFU_ALT, "-s", f"{where}:{size}", "-U", str(back)], timeout
        )
        if code != 0 or not back.is_file():
            raise FlashError(f"dfu-util could not read the flash back: {_last_line(out)}")
        if back.read_bytes()[:size] != image.read_bytes():
            raise FlashError(
                f"the flash read back differs from {image.name}: the write failed; "
                f"run the command again"
            )
    return (
        f"wrote and verified {size:,} bytes at {where} (USB DFU); press reset or replug "
        f"without BOOT to start it"
    )
