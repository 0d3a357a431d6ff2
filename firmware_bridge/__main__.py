"""Command line: ``python -m firmware_bridge <command> --help``.

Each command is a (name, add_arguments, run) entry in COMMANDS; adding one is a new
entry and its two functions.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from train import sigint

if __name__ == "__main__":
    sigint.install("firmware_bridge")  # before the heavy imports below

from sim import tempfiles

from .emulator import DEFAULT_MODEL, Emulator, EmulatorError
from .flash import TOOLS, FlashError, flash
from .hil import HEADER_FILES, ROW_SETS, HilError, HilOptions
from .hil_run import run_hil
from .link import LinkError


def add_emulate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=str(DEFAULT_MODEL),
        help="policy header to build the firmware with (default: the test fixture)",
    )
    p.add_argument("--elf", help="run this ELF instead of building one")
    p.add_argument("--echo", action="store_true", help="the echo build (no policy)")
    p.add_argument("--expect-hash", help="refuse firmware whose model hash differs")
    p.add_argument(
        "--steps",
        type=int,
        default=3,
        help="STEP round trips with a zero observation to show (default 3)",
    )


def run_emulate(args: argparse.Namespace) -> int:
    with Emulator(args.model, elf=args.elf, echo=args.echo, expected_hash=args.expect_hash) as emu:
        print(f"QEMU pid {emu.proc.pid}, USART1 at {emu.url}")
        print(f"INFO: {emu.info.describe()}")
        print(f"model hash: {emu.info.model_hash_hex}")
        if args.steps and not args.echo:
            emu.link.reset()  # protocol v4: a board steps only after RESET
        for _ in range(args.steps):
            r = emu.link.step([0.0] * (emu.info.in_dim or emu.info.obs_dim))
            print(
                f"STEP zeros -> {r.action.tolist()}  infer {r.infer_ticks} ticks "
                f"({r.infer_s * 1e6:.1f} us at {r.tick_hz} Hz), rtt {r.rtt_s * 1e3:.2f} ms"
            )
        # Hand the port over: QEMU accepts a new client once this one disconnects.
        emu.link.close()
        emu.link = None
        print(f"released {emu.url} for other clients; Ctrl-C stops QEMU")
        sys.stdout.flush()
        while emu.proc.poll() is None:
            time.sleep(0.5)
        print(f"QEMU exited with {emu.proc.returncode}", file=sys.stderr)
        return 1


def add_hil_arguments(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="pyserial URL of the board: /dev/ttyUSB0, socket://...")
    where.add_argument(
        "--emulator", action="store_true", help="build the firmware and run it in QEMU"
    )
    p.add_argument("--elf", type=Path, help="with --emulator: run this ELF, do not build")
    p.add_argument("--checkpoint", default="runs/latest", help="default runs/latest")
    p.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="export output")
    p.add_argument("--reports", type=Path, default=Path("reports"), help="hil.json, hil.png")
    p.add_argument("--states", type=int, default=1000, help="open-loop rollout states (>= 1000)")
    p.add_argument("--episodes", type=int, default=5, help="closed-loop episodes (default 5)")
    p.add_argument(
        "--scheme",
        choices=list(HEADER_FILES),
        default="int",
        help="int: policy.h (12-bit weights, int16 activations; default), float32: policy_f32.h",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the HIL's own rollouts")
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds per request attempt (default 1 for a port, 10 for the emulator)",
    )
    p.add_argument("--baud", type=int, default=921600, help="real serial ports (default 921600)")
    p.add_argument(
        "--latency-ms",
        type=float,
        default=10.0,
        help="lockstep closed loop: the nominal row's command latency in whole milliseconds "
        "(default 10)",
    )
    p.add_argument(
        "--rows",
        choices=ROW_SETS,
        default="in-range",
        help="closed-loop rows: the nominal, every in-range and the combined rows of the "
        "robustness suite (in-range, the default), or only the nominal and the all-ends "
        "combined row (short)",
    )
    pace = p.add_mutually_exclusive_group()
    pace.add_argument(
        "--paced",
        dest="paced",
        action="store_true",
        default=None,
        help="closed loop in real time at the control rate, each answer applied when it "
        "arrives (default with --port)",
    )
    pace.add_argument(
        "--lockstep",
        dest="paced",
        action="store_false",
        help="closed loop in lockstep with --latency-ms (default with --emulator)",
    )
    p.add_argument(
        "--video",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="also a video of the closed-loop episodes, board beside reference: .mp4 "
        "(imageio-ffmpeg) or .gif (default: REPORTS/hil.mp4)",
    )


def run_hil_command(args: argparse.Namespace) -> int:
    if args.states < 1000:
        raise ValueError("--states must be >= 1000")
    if args.episodes < 1 or (args.timeout is not None and args.timeout <= 0):
        raise ValueError("--episodes must be >= 1 and --timeout > 0")
    if args.elf and not args.emulator:
        raise ValueError("--elf needs --emulator")
    video = None
    if args.video is not None:
        from sim.video import choose

        video = Path(args.video) if args.video else args.reports / "hil.mp4"
        choose(video, log=lambda _: None)  # a bad name is refused before any work
    # What a killed HIL left (.hil.json.<random>.tmp, ...) goes before this one writes.
    stale = ["hil.json", "hil.png"] + ([video.name] if video else [])
    tempfiles.remove_stale(args.reports, stale)
    if video:
        tempfiles.remove_stale(video.parent, [video.name])
    if "OMP_NUM_THREADS" not in os.environ:  # small models: see export's _cap_threads
        import torch

        torch.set_num_threads(1)
    opts = HilOptions(
        port=args.port,
        emulator=args.emulator,
        elf=args.elf,
        checkpoint=args.checkpoint,
        artifacts=args.artifacts,
        reports=args.reports,
        states=args.states,
        episodes=args.episodes,
        scheme=args.scheme,
        seed=args.seed,
        timeout=args.timeout,
        baudrate=args.baud,
        latency_ms=args.latency_ms,
        paced=args.paced,
        rows=args.rows,
        video=video,
    )
    report = run_hil(opts, log=lambda line: print(line, file=sys.stderr, flush=True))
    from .hil_report import table

    print(table(report))
    print(f"wrote {args.reports / 'hil.json'} and {args.reports / 'hil.png'}")
    if report.get("video"):
        print(f"video {report['video']}")
    return 0 if report["passed"] else 1


def add_flash_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="firmware image (.bin), e.g. from `make firmware REAL_CLOCK=1`")
    p.add_argument(
        "--method",
        default="stlink",
        choices=list(TOOLS),
        help="stlink: an ST-LINK on the SWD pins; dfu: USB, board started with BOOT held",
    )


def run_flash(args: argparse.Namespace) -> int:
    print(flash(args.image, args.method))
    return 0


def add_crazyflie_arguments(p: argparse.ArgumentParser) -> None:
    from sim.airframes import CRAZYFLIE_THRUST_MAX

    p.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="export output")
    p.add_argument(
        "--reports",
        type=Path,
        default=Path("reports"),
        help="crazyflie.json and .png (with --emulator: crazyflie_board.json)",
    )
    p.add_argument(
        "--episodes",
        type=int,
        default=None,
        help="episodes per row (default 100; 5 with --emulator)",
    )
    p.add_argument(
        "--rows",
        choices=ROW_SETS,
        default=None,
        help="rows of the robustness suite: nominal, every in-range and the combined rows "
        "(in-range, the default), or the nominal and all-ends combined rows (short, the "
        "default with --emulator)",
    )
    p.add_argument(
        "--emulator",
        action="store_true",
        help="the bench HIL: the app's C files in the STM32F405 firmware (the flight "
        "build) in QEMU, beside the host library; its cycles per stabiliser tick",
    )
    p.add_argument(
        "--elf",
        type=Path,
        help="with --emulator: run this flight build (THRUST_MAX the sim's full rotor thrust, as "
        "the run builds it) instead of building one",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the episodes' starts")
    p.add_argument(
        "--thrust-max",
        type=float,
        default=CRAZYFLIE_THRUST_MAX,
        help="the vehicle's thrust per motor at force 1.0, N (default 0.12: the 2.1+ "
        "propellers; 0.18 with the thrust upgrade kit)",
    )


def run_crazyflie(args: argparse.Namespace) -> int:
    from .crazyflie_run import CrazyflieOptions, check_options, run, table

    if args.elf and not args.emulator:
        raise ValueError("--elf needs --emulator")
    if args.emulator:
        return run_crazyflie_board(args)
    opts = CrazyflieOptions(
        artifacts=args.artifacts,
        reports=args.reports,
        episodes=100 if args.episodes is None else args.episodes,
        rows=args.rows or "in-range",
        seed=args.seed,
        vehicle_thrust_max=args.thrust_max,
    )
    check_options(opts)
    tempfiles.remove_stale(args.reports, ["crazyflie.json", "crazyflie.png"])
    written = f"{args.reports / 'crazyflie.json'} and {args.reports / 'crazyflie.png'}"
    return run_and_report(run, opts, table, written)


def run_and_report(run_fn, opts, table, written: str) -> int:
    """A Crazyflie run: progress on stderr, the table and what was written on stdout;
    0 if it passed, 1 if not, 2 with one line if the app could not be built or run."""
    from .crazyflie_loop import CrazyflieLoopError

    try:
        report = run_fn(opts, log=lambda line: print(line, file=sys.stderr, flush=True))
    except CrazyflieLoopError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table(report))
    print(f"wrote {written}")
    return 0 if report["passed"] else 1


def run_crazyflie_board(args: argparse.Namespace) -> int:
    from .crazyflie_board_run import REPORT, BoardOptions, run_board, table

    opts = BoardOptions(
        artifacts=args.artifacts,
        reports=args.reports,
        episodes=5 if args.episodes is None else args.episodes,
        rows=args.rows or "short",
        seed=args.seed,
        elf=args.elf,
    )
    if opts.episodes < 1:
        raise ValueError("--episodes must be >= 1")
    tempfiles.remove_stale(args.reports, [REPORT])
    return run_and_report(run_board, opts, table, str(args.reports / REPORT))


COMMANDS = [
    (
        "emulate",
        "run the STM32F405 firmware in QEMU and print its INFO",
        add_emulate_arguments,
        run_emulate,
    ),
    (
        "hil",
        "hardware in the loop: the exported policy on the board vs the references",
        add_hil_arguments,
        run_hil_command,
    ),
    ("flash", "write a firmware image to a board and verify it", add_flash_arguments, run_flash),
    (
        "crazyflie",
        "fly the generated Crazyflie app (make crazyflie) closed-loop in the sim, beside the "
        "integer model and the float policy; with --emulator its C on the STM32F405 "
        "firmware in QEMU beside the host library (the bench HIL)",
        add_crazyflie_arguments,
        run_crazyflie,
    ),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m firmware_bridge",
        description="Talk to the quadpilot firmware: emulator, hardware in the loop.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, help_text, add_arguments, run in COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 130
    except (EmulatorError, FlashError, HilError, LinkError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sigint.run(main, "firmware_bridge")
