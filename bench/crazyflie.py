"""The Crazyflie app (make crazyflie) flown closed-loop in the sim, and its size on the
Cortex-M4.

    .venv/bin/python -m bench crazyflie [--artifacts artifacts] [--episodes 100]
        [--rows in-range|short] [--no-write]

Needs `make train export crazyflie` first. Flies the app's C files on the host through the
firmware shim (python -m firmware_bridge crazyflie's code) over the HIL's rows, beside the
numpy integer model and the float policy, and compiles them for the Cortex-M4 with
arm-none-eabi-gcc (text, data and bss of each object). Writes the "crazyflie" section of
docs/benchmarks.md unless --no-write.
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
from firmware_bridge import crazyflie_loop as cl  # noqa: E402
from firmware_bridge.crazyflie_run import CrazyflieOptions, run, table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--rows", choices=["in-range", "short"], default="in-range")
    ap.add_argument("--no-write", action="store_true", help="do not touch docs/benchmarks.md")
    args = ap.parse_args(argv)
    load = os.getloadavg()[0]
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="qp-bench-cf-") as tmp:
        opts = CrazyflieOptions(
            artifacts=args.artifacts,
            reports=Path(tmp),
            episodes=args.episodes,
            rows=args.rows,
            build_dir=Path(tmp) / "build",
        )
        report = run(opts, log=lambda line: print(line, file=sys.stderr, flush=True))
        sizes = cl.build_arm_objects(args.artifacts / "crazyflie", Path(tmp) / "arm")
    wall = time.monotonic() - start
    flight = table(report)
    size_lines = [
        "| object | text (flash) | data | bss (RAM) |",
        "|---|---|---|---|",
        *(f"| `{k}` | {v['text']:,} | {v['data']} | {v['bss']} |" for k, v in sizes.items()),
        f"| total | {sum(v['text'] for v in sizes.values()):,} "
        f"| {sum(v['data'] for v in sizes.values())} | {sum(v['bss'] for v in sizes.values())} |",
    ]
    print(flight)
    print("\n".join(size_lines))
    if not args.no_write:
        write_section(
            "crazyflie",
            f"""## Crazyflie app: closed loop in the sim, size on the Cortex-M4

`.venv/bin/python -m bench crazyflie --episodes {args.episodes} --rows {args.rows}` on
`{args.artifacts.relative_to(ROOT) if args.artifacts.is_relative_to(ROOT) else args.artifacts}`
(model {report["model_hash"][:16]}...), after `make train export crazyflie`. Machine:
{machine()}; 1-minute load average {load:.2f} when it started; {wall:.0f} s.

The app's own C files, compiled for the host against `firmware/crazyflie_shim/`,
fly each row's episodes from the same starts as the numpy integer model and the float
policy (`actor.onnx`); "sim thrust" is the build whose THRUST_MAX is the sim airframe's
full rotor thrust (0.149 N: nothing lost in the force mapping), "vehicle thrust" the
build with the Crazyflie 2.1+ propellers' 0.12 N (saturates as the vehicle does).
Latency per row as in the HIL (nominal: 10 ms).

{flight}

Size on the Cortex-M4 (`arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=hard
-mfpu=fpv4-sp-d16 -Os`, against the shim's headers; the log and param tables land in the
firmware's own sections there, so `quadpilot_controller.c`'s data counts them):

{chr(10).join(size_lines)}

The controller's cycles per stabiliser tick on the Cortex-M4, its linked flash and RAM:
the next section (the app's own C in the project's STM32F405 firmware under QEMU, `python
-m bench crazyflie_board`).""",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
