"""python -m export [CHECKPOINT] --out artifacts/

Turns a checkpoint into what the firmware and the HIL bridge use: actor.onnx, policy.h
(fixed point: 12-bit weight codes, int16 activations), policy_f32.h (float32) and
export_report.json. Everything is computed and
checked in memory first; only then is each artifact written to a temporary file in the
output directory and renamed, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from train import sigint

if __name__ == "__main__":
    sigint.install("export")  # before the heavy imports below

from export import finetune, quantize, report
from export.model import ExportError
from export.pipeline import ARTIFACTS, run
from sim import tempfiles

__all__ = ["ARTIFACTS", "main", "parse_args", "run"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m export",
        description="Export a trained actor to ONNX and to fixed-point (12-bit weights) / "
        "float32 C headers, with accuracy and closed-loop checks (docs/quantization.md).",
    )
    p.add_argument(
        "checkpoint",
        nargs="?",
        default="runs/latest",
        help="checkpoint file, run directory or runs/latest (default)",
    )
    p.add_argument("--out", default="artifacts", help="output directory (default artifacts/)")
    p.add_argument(
        "--target",
        choices=["headers", "crazyflie"],
        default="headers",
        help="headers (default): export the checkpoint; crazyflie: write OUT/crazyflie/, a "
        "Crazyflie out-of-tree controller app around the policy already exported into OUT "
        "(docs/crazyflie.md)",
    )
    p.add_argument(
        "--input",
        choices=quantize.INPUT_MODES,
        default="int16",
        help="input quantisation (default int16: see docs/quantization.md)",
    )
    p.add_argument(
        "--activations",
        choices=["int16"],
        default="int16",
        help="width of policy.h's activations: int16, with weight codes of up to 12 bits "
        "per output channel (int8 activations were retired, docs/quantization.md)",
    )
    p.add_argument(
        "--rounding",
        choices=quantize.ROUNDINGS,
        default=quantize.ROUNDING,
        help="weight rounding (default compensated: OBQ/GPTQ-style error compensation)",
    )
    p.add_argument(
        "--finetune",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fine-tune policy.h's weight codes on the calibration states so that the "
        "integer policy matches the float one (default on, int16 input only; "
        "--no-finetune quantises the trained weights as they are)",
    )
    p.add_argument(
        "--finetune-steps",
        type=int,
        default=finetune.STEPS,
        help=f"Adam steps of the fine-tuning (default {finetune.STEPS})",
    )
    p.add_argument(
        "--calibration-states",
        type=int,
        default=10000,
        help="rollout states to calibrate on (default 10000)",
    )
    p.add_argument(
        "--test-states",
        type=int,
        default=10000,
        help="rollout states for the accuracy checks (default 10000)",
    )
    p.add_argument(
        "--episodes", type=int, default=200, help="closed-loop episodes per policy (default 200)"
    )
    p.add_argument(
        "--robustness-episodes",
        type=int,
        default=report.ROW_GAP_EPISODES,
        help="episodes per row of the robustness suite, flown by the float policy and by "
        f"the numpy integer model (default {report.ROW_GAP_EPISODES}, enough to resolve the "
        "2 pp row-gap target; 0 skips it)",
    )
    p.add_argument("--seed", type=int, default=0, help="base seed of all rollouts")
    p.add_argument(
        "--expect-preset",
        default=None,
        metavar="PRESET",
        help="refuse a checkpoint trained with another preset (the Makefile passes its PRESET)",
    )
    p.add_argument(
        "--no-c-check",
        action="store_true",
        help="skip compiling the headers with the host C compiler",
    )
    p.add_argument("--cc", default=None, help="host C compiler for the check (default cc)")
    argv = sys.argv[1:] if argv is None else list(argv)
    _refuse_retired(p, argv)
    args = p.parse_args(argv)
    for name in ("calibration_states", "test_states", "episodes", "finetune_steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.robustness_episodes < 0:
        p.error("--robustness-episodes must be >= 0")
    return args


def _cap_threads() -> None:
    """One torch thread. Export's models are tiny (a 37-64-64-4 MLP): a second thread
    saves nothing on an idle 2-core machine (fixture export 30 s either way, 47 s of CPU
    with two threads against 28 s with one), and on a busy machine torch's OpenMP
    workers wait for each other at every operation: with 4 CPU-bound processes beside
    it the two-thread export did not finish in 380 s (docs/benchmarks.md, "Busy
    machine"). OMP_NUM_THREADS, when set, still decides."""
    import os

    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)


def _refuse_retired(p: argparse.ArgumentParser, argv: list[str]) -> None:
    """One line saying why, instead of argparse's list of valid choices."""
    for i, arg in enumerate(argv):
        option, _, value = arg.partition("=")
        if not value and i + 1 < len(argv):
            value = argv[i + 1]
        for key in ((option, value), (option, None)):
            if key in quantize.RETIRED:
                p.error(quantize.RETIRED[key])


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.target == "crazyflie":
        return _crazyflie(args.out)
    _cap_threads()
    # What a killed export left (.actor.onnx.<random>.tmp, ...) goes before this one writes.
    tempfiles.remove_stale(args.out, ARTIFACTS)
    try:
        rep = run(args)
    except ExportError as exc:
        one_line = " ".join(str(exc).split())  # torch's load errors span several lines
        print(f"export: error: {one_line}", file=sys.stderr)
        return 2
    print(report.table(rep))
    _note_stale_app(args.out)
    return 0


def _note_stale_app(out: str) -> None:
    """An app written from an earlier export stays in ``out`` until `make crazyflie`
    rewrites it; say so now rather than at the next HIL."""
    from export import bundle as bundle_mod
    from export import crazyflie

    try:
        bundle = bundle_mod.load(Path(out) / bundle_mod.BUNDLE_NAME)
        written_for = crazyflie.app_data_hash(out, bundle)
    except bundle_mod.BundleError:
        return
    if written_for is not None:
        print(
            f"note: {Path(out) / crazyflie.APP_DIR} is the Crazyflie app of an earlier export "
            f"(data {bundle_mod.short(written_for)}); `make crazyflie` writes it for this one"
        )


def _crazyflie(out: str) -> int:
    from export import crazyflie

    try:
        app = crazyflie.write_app(out)
    except ExportError as exc:
        print(f"export: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(
        f"wrote {app.path}/: a Crazyflie out-of-tree controller for model "
        f"{app.model_hash[:16]}... (data {app.data_hash[:16]}..., policy at {app.control_hz} Hz "
        f"of the stabiliser's 1 kHz); build it with CRAZYFLIE_BASE=<crazyflie-firmware> make "
        f"-C {app.path} (docs/crazyflie.md)"
    )
    return 0


if __name__ == "__main__":
    sigint.run(main, "export")
