"""The Crazyflie app's own C on the STM32F405 firmware in QEMU (the flight build): its
instructions per stabiliser tick and its flash and RAM.

    .venv/bin/python -m bench crazyflie_board [--artifacts artifacts] [--episodes 5]
        [--rows short|in-range] [--no-write]

With --artifacts holding an app (`make train export crazyflie`) it measures that policy;
without, it exports a freshly initialised 64-64 hover actor (the trained policy's shape:
the count does not depend on the weights' values) and writes its app into a temporary
directory. Runs python -m firmware_bridge crazyflie --emulator's code: the rows flown
through the board beside the host library (every request bit-identical), then the
controller's ticks inside controllerOutOfTree - the ticks that ran the policy and the
idle ones - as instructions (QEMU -icount shift=0), the app objects' linked flash and RAM,
and the flight image against the plain firmware of the same policy.h. Writes the
"crazyflie_board" section of docs/benchmarks.md unless --no-write.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine, write_section  # noqa: E402
from bench.firmware_speed import export_fixture  # noqa: E402
from firmware_bridge.crazyflie_board import BUDGET  # noqa: E402
from firmware_bridge.crazyflie_board_run import (  # noqa: E402
    BoardOptions,
    elf_sizes,
    run_board,
    table,
)
from firmware_bridge.emulator import build_firmware  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", type=Path, help="an export with its app (default: a fixture)")
    ap.add_argument("--episodes", type=int, default=5)
    ap.add_argument("--rows", choices=["in-range", "short"], default="short")
    ap.add_argument("--no-write", action="store_true", help="do not touch docs/benchmarks.md")
    args = ap.parse_args(argv)
    load = os.getloadavg()[0]
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="qp-bench-cfb-") as tmp:
        artifacts = args.artifacts
        if artifacts is None:
            from export import crazyflie

            artifacts = export_fixture(Path(tmp))[0].parent
            crazyflie.write_app(artifacts)
        opts = BoardOptions(
            artifacts=artifacts,
            reports=Path(tmp) / "reports",
            episodes=args.episodes,
            rows=args.rows,
            build_dir=Path(tmp) / "lib",
        )
        report = run_board(opts, log=lambda line: print(line, file=sys.stderr, flush=True))
        plain = elf_sizes(build_firmware("stm32f405", artifacts / "crazyflie/src/policy.h"))
    wall = time.monotonic() - start
    text = table(report)
    image = report["image"]
    added = (
        f"The flight image against the plain firmware of the same `policy.h` (which holds the "
        f"policy too): flash {plain['flash']:,} -> {image['flash']:,} bytes "
        f"(+{image['flash'] - plain['flash']:,}), static RAM {plain['ram']:,} -> "
        f"{image['ram']:,} (+{image['ram'] - plain['ram']:,}); of 1,048,576 and 131,072."
    )
    print(text)
    print(added)
    if not args.no_write:
        c = report["cycles"]
        policy = c["policy"]["median_instructions"]
        which = (
            f"`{args.artifacts}` (model {report['model_hash'][:16]}...)"
            if args.artifacts
            else "a freshly exported 64-64 hover actor (37-64-64-4, the trained policy's "
            "shape; the counts do not depend on the weights' values, but an untrained actor "
            "tips over within a few dozen control steps, so its episodes are short)"
        )
        cmd = "python -m bench crazyflie_board" + (
            f" --artifacts {args.artifacts}" if args.artifacts else ""
        )
        write_section(
            "crazyflie_board",
            f"""## Crazyflie app on the STM32F405 in QEMU: cycles per stabiliser tick, flash, RAM

`.venv/bin/{cmd} --episodes {args.episodes} --rows {args.rows}` on {which}.
Machine: {machine()}; 1-minute load average {load:.2f} when it started (another job's
test suite ran beside it: that stretches the wall time, not the counts, which QEMU's
-icount makes deterministic); {wall:.0f} s.

The flight build (`make -C firmware BOARD=stm32f405 CRAZYFLIE_APP=... THRUST_MAX=...`):
the app's own C files, unchanged, compiled with the Crazyflie firmware's flags (`-Os`,
Cortex-M4 hard float, and `-ffp-contract=off`) into the project's firmware, ticked by the
shim's stabiliser (`firmware/crazyflie_shim/shim_app.c`) over the protocol's FLIGHT_*
messages, in `qemu-system-arm -M netduinoplus2 -icount shift=0`. Every control period of
every episode goes to the board and to the host library with the same inputs; the
differing columns count requests whose bits differ.

{text}

{added}

The ticks are the firmware's SysTick around each `controllerOutOfTree` call (minus two
back-to-back reads), in instructions = ticks x 1e9 / 168e6 as the firmware section above
explains. A policy tick costs {policy:,.0f} instructions, {100 * policy / BUDGET:.1f}% of
the {BUDGET:,} cycles a 1 kHz tick has at 168 MHz; that is one instruction per cycle, a
lower bound on silicon (multi-cycle loads, branches, flash wait states). "App object"
rows are what the linker kept of each of the app's own objects (its map file, after
`--gc-sections`); the shim's stabiliser and the protocol server are not part of the app
on a Crazyflie.""",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
