"""python -m export [CHECKPOINT] --out artifacts/

Turns a checkpoint into what the firmware and the HIL bridge use: actor.onnx, policy.h
(fixed point: int8 weights, int16 or int8 activations), policy_f32.h (float32) and
export_report.json. Everything is computed and
checked in memory first; only then is each artifact written to a temporary file in the
output directory and renamed, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from export import cbuild, finetune, header, onnx_export, quantize, report, rollouts
from export import int_reference as ref
from export import model as model_mod
from export.model import ExportError
from sim import robustness
from train.checkpoint import atomic_write

ARTIFACTS = ("actor.onnx", "policy.h", "policy_f32.h", "export_report.json")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m export",
        description="Export a trained actor to ONNX and to fixed-point (int8 weights) / "
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
        "--input",
        choices=quantize.INPUT_MODES,
        default="int16",
        help="input quantisation (default int16: see docs/quantization.md)",
    )
    p.add_argument(
        "--activations",
        choices=list(quantize.ACTIVATIONS),
        default="int16",
        help="width of policy.h's activations (default int16: int16 activations with int8 "
        "weights, TFLite's 16x8 mode; int8: int8 activations too; see "
        "docs/quantization.md)",
    )
    p.add_argument(
        "--ranges",
        choices=quantize.CALIBRATIONS,
        default=quantize.CALIBRATION,
        help="activation range calibration with --activations int8 (default hybrid: "
        "MSE-optimal hidden ranges, min/max output range); int16 activations always use "
        "min/max ranges",
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
        help="fine-tune policy.h's int8 weights on the calibration states so that the "
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
        default=robustness.EPISODES,
        help="episodes per row of the robustness suite, flown by the float policy and by "
        f"the numpy integer model (default {robustness.EPISODES}; 0 skips it)",
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
    args = p.parse_args(argv)
    for name in ("calibration_states", "test_states", "episodes", "finetune_steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.robustness_episodes < 0:
        p.error("--robustness-episodes must be >= 0")
    return args


def c_check(policy, params, texts: dict[str, str], obs: np.ndarray, cc: str) -> dict:
    """Compile both headers on the host; policy.h must match the numpy model exactly."""
    with tempfile.TemporaryDirectory(prefix="qp-export-") as tmp:
        d = Path(tmp)
        for name in ("policy.h", "policy_f32.h"):
            (d / name).write_text(texts[name])
        rc8, act8 = cbuild.run(cbuild.build(d / "policy.h", d / "drv8", cc), obs)
        rcf, actf = cbuild.run(cbuild.build(d / "policy_f32.h", d / "drvf", cc), obs)
    if rc8.any() or rcf.any():
        raise ExportError("a compiled header rejected a finite rollout state")
    codes = cbuild.codes_of(act8, params.act_bits)
    mismatches = int((codes != ref.forward_codes(params, obs)).any(axis=1).sum())
    if mismatches:
        raise ExportError(
            f"policy.h differs from the numpy integer model on {mismatches} of "
            f"{len(obs)} states (compiler {cc}); refusing to write it"
        )
    return {
        "compiler": cc,
        "states": int(len(obs)),
        "int8_code_mismatches": mismatches,
        "f32_max_abs_diff_vs_torch": float(np.abs(actf - policy.act(obs)).max()),
    }


def run(args: argparse.Namespace) -> dict:
    policy = model_mod.load(args.checkpoint)
    if args.expect_preset and policy.preset != args.expect_preset:
        raise ExportError(
            f"{policy.origin} is not a {args.expect_preset} run: export it with "
            f"PRESET={policy.preset} or give a {args.expect_preset} checkpoint (RUN=...)"
        )
    print(f"exporting {policy.origin}", flush=True)
    act_bits = quantize.ACTIVATIONS[args.activations]
    quantize.check_shapes(policy, args.input, act_bits)
    spec, seed = policy.spec, args.seed
    calib = rollouts.policy_states(policy.act, spec, args.calibration_states, seed + 1000)
    test = rollouts.policy_states(policy.act, spec, args.test_states, seed + 2000)
    ft_info = None
    if args.finetune and args.input == "int16":
        params, ft_info = finetune.quantize_finetuned(
            policy, calib, args.ranges, args.rounding, args.finetune_steps, seed, act_bits
        )
    else:
        params = quantize.quantize(
            policy,
            calib,
            args.input,
            args.ranges,
            args.rounding,
            max_samples=len(calib),
            act_bits=act_bits,
        )

    onnx_bytes = onnx_export.to_onnx(policy)
    onnx_info = onnx_export.check(onnx_bytes, policy, test)
    float_test = policy.act(test).astype(np.float64)
    errors = report.int8_errors(params, float_test, test)

    def int8_policy(obs):
        return ref.act(params, obs)

    cl = rollouts.closed_loop(
        {"float": policy.act, "int8": int8_policy}, spec, args.episodes, seed + 3000
    )
    cl.update(
        task=spec["task"],
        episodes=args.episodes,
        seed=seed + 3000,
        gap_pp=round(abs(cl["float"]["success_rate"] - cl["int8"]["success_rate"]) * 100, 9),
    )
    suite = None
    if args.robustness_episodes:
        suite = rollouts.robustness_of(
            {"float": policy.act, "int8": int8_policy}, spec, args.robustness_episodes
        )
    notes = [
        f"accuracy     {params.scheme} vs float on {errors['states']} rollout states: max "
        f"{errors['max']:.4f}, mean {errors['mean']:.5f}"
    ]
    if ft_info and ft_info["best_step"] is not None:
        notes.append(
            f"weights      fine-tuned for {params.scheme} on the calibration states (finetune.py)"
        )
    h8 = header.int8_header(policy, params, notes)
    hf = header.f32_header(policy)
    texts = {"policy.h": h8.text, "policy_f32.h": hf.text}
    cc = None if args.no_c_check else cbuild.find_cc(args.cc)
    if args.cc and cc is None:
        raise ExportError(f"--cc {args.cc}: no such compiler on PATH")
    c_info = c_check(policy, params, texts, test, cc) if cc else None

    rep = {
        "checkpoint": str(policy.source),
        "run": policy.origin,
        "preset": policy.preset,
        "step": policy.step,
        "model_hash": policy.model_hash,
        "out_dir": str(args.out),
        "policy_spec": spec,
        "network": {
            "widths": policy.widths,
            "hidden_activation": policy.activation,
            "output_activation": "tanh",
            "macs": policy.macs,
        },
        "onnx": onnx_info,
        "int8": {
            "weight_bytes": h8.weight_bytes,
            "scratch_bytes": h8.scratch_bytes,
            "scheme": params.scheme,
            "activations": f"int{params.act_bits}",
            "input_mode": params.input_mode,
            "ranges": args.ranges if params.act_bits == 8 else "minmax",
            "calibration_states": params.calibration_size,
            "finetune": ft_info,
            "test_states": int(len(test)),
            "error_vs_float": errors,
            "layers": report.layer_table(params, test),
        },
        "float32": {"weight_bytes": hf.weight_bytes, "scratch_bytes": hf.scratch_bytes},
        "closed_loop": cl,
        "robustness": suite,
        "c_check": c_info,
    }
    rep["checks"] = report.checks(rep)
    files = {
        "actor.onnx": onnx_bytes,
        **{k: v.encode() for k, v in texts.items()},
        "export_report.json": report.to_json(rep).encode(),
    }
    out = Path(args.out)
    for name in ARTIFACTS:
        atomic_write(out / name, lambda tmp, data=files[name]: _write(tmp, data))
    return rep


def _write(tmp: Path, data: bytes) -> None:
    tmp.write_bytes(data)
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)  # mkstemp creates 0600; artifacts are ordinary files


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        rep = run(args)
    except ExportError as exc:
        one_line = " ".join(str(exc).split())  # torch's load errors span several lines
        print(f"export: error: {one_line}", file=sys.stderr)
        return 2
    print(report.table(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
