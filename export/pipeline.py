"""The export pipeline: checkpoint -> quantised parameters -> ONNX, policy.h,
policy_f32.h (with the kernel qp_kernel.h beside them) and export_report.json, each
checked before any is written (python -m export parses the options and calls ``run``)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from export import (
    bundle,
    cbuild,
    finetune,
    header,
    kernel_layout,
    onnx_export,
    quantize,
    report,
    rollouts,
)
from export import int_reference as ref
from export import model as model_mod
from export.model import ExportError

# The kernel is written before the data headers that include it.
ARTIFACTS = (
    "actor.onnx",
    header.KERNEL_NAME,
    header.STATE_NAME,
    "policy.h",
    "policy_f32.h",
    bundle.BUNDLE_NAME,
    "export_report.json",
)
# Rollout seeds from --seed: calibration states, test states, closed-loop episodes (HIL
# continues at +4000 and +5000, firmware_bridge/hil.py; the robustness suite has its own).
CALIBRATION_SEED_OFFSET = 1000
TEST_SEED_OFFSET = 2000
EPISODES_SEED_OFFSET = 3000


def c_check(policy, params, texts: dict[str, str], obs: np.ndarray, cc: str) -> dict:
    """Compile both headers on the host; policy.h must match the numpy model exactly."""
    with tempfile.TemporaryDirectory(prefix="qp-export-") as tmp:
        d = Path(tmp)
        for name in ("policy.h", "policy_f32.h"):
            header.write_header(d / name, texts[name])
        rci, acti = cbuild.run(cbuild.build(d / "policy.h", d / "drvi", cc), obs)
        rcf, actf = cbuild.run(cbuild.build(d / "policy_f32.h", d / "drvf", cc), obs)
    if rci.any() or rcf.any():
        raise ExportError("a compiled header rejected a finite rollout state")
    codes = cbuild.codes_of(acti)
    mismatches = int((codes != ref.forward_codes(params, obs)).any(axis=1).sum())
    if mismatches:
        raise ExportError(
            f"policy.h differs from the numpy integer model on {mismatches} of "
            f"{len(obs)} states (compiler {cc}); refusing to write it"
        )
    return {
        "compiler": cc,
        "states": int(len(obs)),
        "int_code_mismatches": mismatches,
        "f32_max_abs_diff_vs_torch": float(np.abs(actf - policy.act(obs)).max()),
    }


def progress(what: str) -> None:
    """One line as each long phase starts, flushed: a log of a piped run shows where it is."""
    print(f"  ... {what}", flush=True)


def run(args: argparse.Namespace) -> dict:
    policy = model_mod.load(args.checkpoint)
    if args.expect_preset and policy.preset != args.expect_preset:
        raise ExportError(
            f"{policy.origin} is not a {args.expect_preset} run: export it with "
            f"PRESET={policy.preset} or give a {args.expect_preset} checkpoint (RUN=...)"
        )
    print(f"exporting {policy.origin}", flush=True)
    quantize.check_shapes(policy, args.input)
    spec, seed = policy.spec, args.seed
    progress(f"rollout states for calibration ({args.calibration_states}) and test")
    calib = rollouts.policy_states(
        policy.act, spec, args.calibration_states, seed + CALIBRATION_SEED_OFFSET
    )
    test = rollouts.policy_states(policy.act, spec, args.test_states, seed + TEST_SEED_OFFSET)
    ft_info = None
    if args.finetune and args.input == "int16":
        progress(f"fine-tuning the integer weights ({args.finetune_steps} steps)")
        params, ft_info = finetune.quantize_finetuned(
            policy, calib, args.rounding, args.finetune_steps, seed
        )
    else:
        params = quantize.quantize(policy, calib, args.input, args.rounding, max_samples=len(calib))

    onnx_bytes = onnx_export.to_onnx(policy)
    onnx_info = onnx_export.check(onnx_bytes, policy, test)
    float_test = policy.act(test).astype(np.float64)
    errors = report.int_errors(params, float_test, test)

    def int_policy(obs):
        return ref.act(params, obs)

    progress(f"closed loop, float and integer ({args.episodes} episodes)")
    cl = rollouts.closed_loop(
        {"float": policy.act, "int": int_policy}, spec, args.episodes, seed + EPISODES_SEED_OFFSET
    )
    cl.update(
        task=spec.task,
        episodes=args.episodes,
        seed=seed + EPISODES_SEED_OFFSET,
        gap_pp=round(abs(cl["float"]["success_rate"] - cl["int"]["success_rate"]) * 100, 9),
    )
    suite = None
    if args.robustness_episodes:
        progress(f"robustness suite, float and integer ({args.robustness_episodes} per row)")
        suite = rollouts.robustness_of(
            {"float": policy.act, "int": int_policy}, spec, args.robustness_episodes
        )
    notes = [
        f"accuracy     {params.scheme} vs float on {errors['states']} rollout states: max "
        f"{errors['max']:.4f}, mean {errors['mean']:.5f}"
    ]
    if ft_info and ft_info["best_step"] is not None:
        notes.append(
            f"weights      fine-tuned for {params.scheme} on the calibration states (finetune.py)"
        )
    selftest = header.selftest_states(test)
    hi = header.int_header(policy, params, selftest, notes)
    hf = header.f32_header(policy, selftest)
    texts = {"policy.h": hi.text, "policy_f32.h": hf.text}
    cc = None if args.no_c_check else cbuild.find_cc(args.cc)
    if args.cc and cc is None:
        raise ExportError(f"--cc {args.cc}: no such compiler on PATH")
    if cc:
        progress(f"compiling the headers with {cc}")
    c_info = c_check(policy, params, texts, test, cc) if cc else None

    rep = {
        "checkpoint": str(policy.source),
        "run": policy.origin,
        "preset": policy.preset,
        "step": policy.step,
        "model_hash": policy.model_hash,
        "out_dir": str(args.out),
        "policy_spec": spec.to_dict(),
        "network": {
            "widths": policy.widths,
            "hidden_activation": policy.activation,
            "output_activation": "tanh",
            "macs": policy.macs,
        },
        "onnx": onnx_info,
        "int": {
            "weight_bytes": hi.weight_bytes,
            "scratch_bytes": hi.scratch_bytes,
            "scheme": params.scheme,
            "input_mode": params.input_mode,
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
    rep["data_hash"] = {
        "int": bundle.int_hash(policy, params),
        "float32": bundle.float_hash(policy),
    }
    facts = {
        "int_error_vs_float": {k: errors[k] for k in ("states", "max", "mean")},
        "closed_loop_success": {k: cl[k]["success_rate"] for k in ("float", "int")},
        "checks_passed": all(ok for _, _, ok in rep["checks"].values()),
    }
    the_bundle = bundle.build(policy, params, selftest, header.SELFTEST_TOLERANCE, facts)
    files = {
        "actor.onnx": onnx_bytes,
        **{k: v.encode() for k, v in texts.items()},
        header.KERNEL_NAME: kernel_layout.kernel()[1].encode(),
        header.STATE_NAME: header.STATE_SOURCE.read_bytes(),
        bundle.BUNDLE_NAME: bundle.to_json(the_bundle).encode(),
        "export_report.json": report.to_json(rep).encode(),
    }
    out = Path(args.out)
    for name in ARTIFACTS:
        header.write_file(out / name, files[name])
    return rep
