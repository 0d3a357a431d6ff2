"""On-board inference time and link throughput of the firmware under QEMU.

    .venv/bin/python bench/firmware_speed.py [--model H ...] [--steps 300] [--no-write]

For each policy header (default: policy.h and policy_f32.h exported from a 64-64
fixture checkpoint (export.fixtures) into a temporary directory, then the firmware's
test fixture) this builds the STM32F405 firmware and its ECHO variant, runs them in QEMU
(netduinoplus2, -icount shift=0) and reports:
- inference ticks per STEP from the firmware's SysTick (168 MHz virtual clock), and
  instructions = ticks x 1e9 / 168e6, because with -icount shift=0 QEMU advances virtual
  time by 1 ns per instruction. This counts instructions, not Cortex-M4 cycles: real
  silicon needs >= 1 cycle per instruction plus flash wait states;
- the board-state module's ticks per STEP (building the observation, keeping the
  integral and the command: qp_state.h) and its flash (the qp_state_* functions in the
  ELF) and RAM (the qp_state_t the device owns);
- bytes on the wire per STEP (request + reply frames);
- the median STEP round trip over the emulated link, policy vs ECHO firmware (the
  difference would be the inference; the rest is QEMU's UART), and the UART's cost per
  byte from PING round trips of two sizes;
- the 921600-baud 8N1 line-rate bound on round trips per second for the same bytes.
Writes the "firmware_speed" section of docs/benchmarks.md unless --no-write.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine, write_section  # noqa: E402
from export.bundle import header_identity  # noqa: E402
from firmware_bridge import codec  # noqa: E402
from firmware_bridge.emulator import DEFAULT_MODEL, Emulator, build_firmware  # noqa: E402
from firmware_bridge.hil_report import instructions_from_ticks, line_rate_bound  # noqa: E402
from firmware_bridge.protocol import Scheme  # noqa: E402

BAUD = 921600


def run_steps(emu: Emulator, steps: int) -> tuple[list[int], list[int], float]:
    """Inference and board-state ticks of each STEP, and the median round trip in seconds
    (the median resists the scheduling hiccups of a shared 2-core machine). One episode:
    a RESET, then STEPs of the estimate and sensor inputs (protocol v4)."""
    rng = np.random.default_rng(0)
    inputs = rng.normal(0, 1, (steps, emu.info.in_dim)).astype(np.float32)
    emu.link.reset()
    for x in inputs[:10]:  # warm-up
        emu.link.step(x)
    results = [emu.link.step(x) for x in inputs]
    rtt = statistics.median(r.rtt_s for r in results)
    return [r.infer_ticks for r in results], [r.state_ticks for r in results], rtt


def state_flash_bytes(model: Path) -> int:
    """Flash of the board-state module: the sizes of the qp_state_* functions the
    firmware's ELF holds (those the compiler inlined count in their callers)."""
    elf = build_firmware("stm32f405", model)
    nm = shutil.which("arm-none-eabi-nm") or "arm-none-eabi-nm"
    out = subprocess.run([nm, "-S", str(elf)], check=True, capture_output=True, text=True)
    sizes = re.findall(r"^[0-9a-f]+ ([0-9a-f]+) [tT] qp_state_\w+$", out.stdout, re.M)
    return sum(int(size, 16) for size in sizes)


def state_ram_bytes(info) -> int:
    """sizeof(qp_state_t) for this header: the observation, the integral and its update,
    the past actions, the step count and the ready flag (export/kernel/qp_state.h)."""
    history = max(info.obs_dim - info.in_dim - 3, 1)
    return 4 * (info.obs_dim + 3 + 3 + history + 1 + 1)


def per_byte_cost(emu: Emulator, rounds: int = 30) -> float:
    """Seconds per byte of QEMU's emulated UART: slope of PING round trips between an
    empty payload and a 200-byte one (which moves 400 more bytes)."""
    empty = statistics.median(emu.link.ping() for _ in range(rounds))
    full = statistics.median(emu.link.ping(bytes(range(1, 201))) for _ in range(rounds))
    return (full - empty) / 400


def measure(model: Path, steps: int) -> dict:
    with Emulator(model) as emu:
        info = emu.info
        ticks, state_ticks, rtt = run_steps(emu, steps)
        byte_cost = per_byte_cost(emu)
    with Emulator(model, echo=True) as emu:
        _, _, echo_rtt = run_steps(emu, steps)
    step = codec.encode(codec.Step((0.5,) * info.in_dim), 1)
    action = codec.encode(codec.Action((0.5,) * info.act_dim, 1, 1, 1), 1)
    wire = len(step) + len(action)
    median = statistics.median(ticks)
    instructions = instructions_from_ticks(median, info.tick_hz)
    return {
        "model": label(model),
        # The header's own name for its scheme (the protocol byte says only int/float32).
        "scheme": header_identity(model).scheme or Scheme(info.scheme).name,
        "dims": f"{info.in_dim}/{info.obs_dim}/{info.act_dim}",
        "macs": info.macs,
        "ticks": f"{median:.0f} ({min(ticks)}-{max(ticks)})",
        "instructions": instructions,
        "per_mac": instructions / info.macs if info.macs else float("nan"),
        "us_168": median / info.tick_hz * 1e6,  # SysTick time: one instruction per cycle
        "state_ticks": f"{statistics.median(state_ticks):.0f}",
        "state_size": f"{state_flash_bytes(model)} / {state_ram_bytes(info)}",
        "wire": f"{len(step)} + {len(action)}",
        "rtt_ms": rtt * 1e3,
        "echo_rtt_ms": echo_rtt * 1e3,
        "byte_us": byte_cost * 1e6,
        "echo_steps_s": 1 / echo_rtt,
        "steps_s": 1 / rtt,
        "line_bound": line_rate_bound(wire, BAUD),
    }


def label(model: Path) -> str:
    if model.is_relative_to(ROOT):
        return str(model.relative_to(ROOT))
    return f"fixture 64-64 actor: {model.name}"


def export_fixture(out: Path) -> list[Path]:
    """policy.h and policy_f32.h of a freshly initialised 64-64 hover actor (the shape of
    the trained policy; speed does not depend on the weights' values)."""
    from export.__main__ import main as export_main
    from export.fixtures import make_checkpoint

    ckpt = make_checkpoint(out / "run" / "checkpoint.pt", hidden=(64, 64))
    argv = [str(ckpt), "--out", str(out / "artifacts"), "--test-states", "1000"]
    if export_main([*argv, "--episodes", "5", "--no-c-check"]) != 0:
        raise SystemExit("export of the fixture checkpoint failed")
    return [out / "artifacts" / "policy.h", out / "artifacts" / "policy_f32.h"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", type=Path, help="policy header (repeatable)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--no-write", action="store_true", help="do not touch docs/benchmarks.md")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="qp-bench-") as tmp:
        models = [m.resolve() for m in args.model] if args.model else []
        if not models:
            models = [*export_fixture(Path(tmp)), DEFAULT_MODEL]
        rows = [measure(m, args.steps) for m in models]

    header = (
        "| model | scheme | in/obs/act | MACs | inference ticks, median (min-max) "
        "| instructions | instr./MAC | us at 168 MHz, 1 instr./cycle "
        "| board-state ticks, median | board-state flash / RAM bytes | bytes STEP + ACTION "
        "| QEMU STEP round trip, median ms (policy / ECHO) | QEMU round trips/s "
        "(policy / ECHO) | QEMU us per byte | 921600-baud bound STEP/s |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [
        f"| `{r['model']}` | {r['scheme']} | {r['dims']} | {r['macs']} | {r['ticks']} "
        f"| {r['instructions']:.0f} | {r['per_mac']:.2f} | {r['us_168']:.1f} "
        f"| {r['state_ticks']} | {r['state_size']} | {r['wire']} "
        f"| {r['rtt_ms']:.2f} / {r['echo_rtt_ms']:.2f} "
        f"| {r['steps_s']:.0f} / {r['echo_steps_s']:.0f} | {r['byte_us']:.0f} "
        f"| {r['line_bound']:.0f} |"
        for r in rows
    ]
    table = header + "\n" + "\n".join(lines)
    print(table)
    if not args.no_write:
        cmd = "python bench/firmware_speed.py" + "".join(
            f" --model {m.relative_to(ROOT) if m.is_relative_to(ROOT) else m}"
            for m in (args.model or [])
        )
        write_section(
            "firmware_speed",
            f"""## Firmware under QEMU: inference and link

`.venv/bin/{cmd} --steps {args.steps}` (STM32F405 ELF in `qemu-system-arm -M
netduinoplus2 -icount shift=0`, USART1 on a loopback TCP socket). Machine: {machine()}.

{table}

Inference ticks come from the firmware's own SysTick around the policy call; with
`-icount shift=0` one instruction is 1 ns of virtual time and SysTick counts at 168 MHz,
so instructions = ticks x 1e9 / 168e6 (+-1 tick of rounding per measurement). Without
`--model`, the first two rows are a freshly exported 64-64 hover actor (the trained
policy's shape; the count does not depend on the weights' values). Target for the integer
header: <= 1.5 instructions per MAC, including input quantisation, requantisation and
the table lookups (docs/hardware.md, "Inference speed"). That is an instruction count,
not a cycle count: on silicon, multi-cycle loads (LDM of n words takes n + 1 cycles),
branches and flash wait states make the time longer; the "us at 168 MHz" column is the
one-instruction-per-cycle lower bound. The board-state columns are the protocol v4
board's own half of the observation (export/kernel/qp_state.h): its ticks per STEP,
apart from the inference, and its flash (the qp_state_* functions in the ELF) and RAM
(the qp_state_t the device owns). A STEP carries only the estimate and sensor inputs
(`in`), the board adds the rest of the observation (`obs`). Round trips over QEMU are
set by its emulated UART, which hands the guest one byte per main-loop wake-up (the
per-byte column; it grows when the host's cores are busy), not by the inference: the
ECHO firmware, which answers the same frames without calling the policy, is no faster.
The last column is what a real 921600-baud 8N1 link allows for the same bytes (10 bits
per byte, no gaps).""",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
