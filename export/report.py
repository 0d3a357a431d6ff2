"""export_report.json and the table printed at the end of an export."""

from __future__ import annotations

import numpy as np

from export import int_reference as ref
from export.quant_params import QuantParams
from export.quantize import layer_range
from sim import quality, report_json

# The figures the export issue requires (docs/quantization.md explains each).
TARGETS = {
    "onnx_max_abs_diff": 1e-5,
    "f32_header_max_abs_diff": 1e-5,
    "int_max_abs_error": 0.03,
    "int_mean_abs_error": 0.005,
    "closed_loop_gap_pp": 2.0,
    "robustness_row_gap_pp": 2.0,
}
# Episodes per robustness row when the float and integer policies are compared: a gap of
# 2 pp must be resolvable, and at 100 episodes one marginal episode is 1 pp and a row near
# 80% success has a 4 pp standard error (docs/quantization.md: 6 pp at 100, 1.5 at 400).
ROW_GAP_EPISODES = 400


def int_errors(params: QuantParams, float_actions: np.ndarray, obs: np.ndarray) -> dict:
    err = np.abs(ref.act(params, obs).astype(np.float64) - float_actions)
    return {
        "states": int(len(obs)),
        "max": float(err.max()),
        "mean": float(err.mean()),
        "p99": float(np.quantile(err, 0.99)),
        "per_action_mean": [float(v) for v in err.mean(axis=0)],
    }


def layer_table(params: QuantParams, obs: np.ndarray) -> list[dict]:
    """Per layer: shape, pre-activation range, proved and observed accumulator bounds."""
    rows = []
    for layer, acc in zip(params.layers, ref.accumulators(params, obs), strict=True):
        lo, hi = layer_range(layer)
        rows.append(
            {
                "shape": list(layer.shape),
                "activation": layer.activation,
                "pre_activation_range": [round(lo, 6), round(hi, 6)],
                "pre_scale": layer.pre_scale,
                "out_scale": layer.out_scale,
                "weight_code_limit_range": [
                    int(layer.code_limit.min()),
                    int(layer.code_limit.max()),
                ],
                "shift_range": [int(layer.shift.min()), int(layer.shift.max())],
                "acc_bound_proved": layer.acc_bound,
                "acc_max_seen": int(np.abs(acc).max()),
                "acc_headroom_bits": round(float(np.log2(2**31 / max(layer.acc_bound, 1))), 2),
            }
        )
    return rows


def checks(report: dict) -> dict:
    """Each required figure next to its target: {name: [value, target, ok]}."""
    cl = report["closed_loop"]
    values = {
        "onnx_max_abs_diff": report["onnx"]["max_abs_diff_vs_torch"],
        "f32_header_max_abs_diff": (report["c_check"] or {}).get("f32_max_abs_diff_vs_torch"),
        "int_max_abs_error": report["int"]["error_vs_float"]["max"],
        "int_mean_abs_error": report["int"]["error_vs_float"]["mean"],
        "closed_loop_gap_pp": cl["gap_pp"],
        "robustness_row_gap_pp": (report.get("robustness") or {}).get("max_row_gap_pp"),
    }
    return {
        k: [v, TARGETS[k], None if v is None else bool(v <= TARGETS[k])] for k, v in values.items()
    }


def to_json(report: dict) -> str:
    return report_json.dumps(report, indent=2, sort_keys=False) + "\n"


def _finetune_line(info: dict | None) -> str:
    if info is None:
        return "trained weights as they are (no fine-tuning)"
    if info["best_step"] is None:
        return (
            f"fine-tuning ({info['steps']} steps) did not beat the trained weights; "
            "trained weights kept"
        )
    return (
        f"fine-tuned ({info['best_step']} of {info['steps']} Adam steps, "
        f"{info['states']} states): calibration loss {info['loss_before']:.3g} -> "
        f"{info['loss_after']:.3g}"
    )


def table(report: dict) -> str:
    iq, f32, cl = report["int"], report["float32"], report["closed_loop"]
    err = iq["error_vs_float"]
    c = report["c_check"]
    lines = [
        f"export {report.get('run', report['checkpoint'])} -> {report['out_dir']}",
        f"  model hash {report['model_hash']}",
        "",
        f"  {'':28s}{iq['scheme'] + ' (policy.h)':>25s}{'float32 (policy_f32.h)':>25s}",
        f"  {'weight bytes (flash)':28s}{iq['weight_bytes']:>25d}{f32['weight_bytes']:>25d}",
        f"  {'scratch RAM bytes (stack)':28s}{iq['scratch_bytes']:>25d}{f32['scratch_bytes']:>25d}",
        f"  {'MACs per call':28s}{report['network']['macs']:>25d}{report['network']['macs']:>25d}",
        f"  {'closed-loop success':28s}{cl['int']['success_rate']:>25.1%}"
        f"{cl['float']['success_rate']:>25.1%}",
        "",
        f"  calibration set   {iq['calibration_states']} rollout states (input {iq['input_mode']})",
        f"  weight codes      {_finetune_line(iq.get('finetune'))}",
        f"  policy.h vs float max {err['max']:.4f}  mean {err['mean']:.5f}  "
        f"p99 {err['p99']:.4f} on {err['states']} rollout states",
        f"  closed loop       {cl['task']}, {cl['episodes']} episodes: gap {cl['gap_pp']:.1f} pp",
        *(
            f"  hover quality     {name:6s}{quality.describe(cl[name])}"
            for name in ("float", "int")
        ),
        f"  onnx vs torch     max {report['onnx']['max_abs_diff_vs_torch']:.2e} on "
        f"{report['onnx']['states']} states (opset {report['onnx']['opset']})",
    ]
    rob = report.get("robustness")
    if rob:
        s = rob["score"]
        lines.append(
            f"  robustness suite  {rob['episodes_per_row']} episodes per row: nominal "
            f"{s['float']['nominal_success']:.0%} / {s['int']['nominal_success']:.0%}, worst row "
            f"inside the training ranges {s['float']['worst_inside_success']:.0%} / "
            f"{s['int']['worst_inside_success']:.0%}, combined "
            f"{s['float']['combined_success']:.0%} / {s['int']['combined_success']:.0%} "
            f"(float / integer); largest row gap {rob['max_row_gap_pp']:.1f} pp"
        )
        lines += [
            f"  {'':18s}nominal row {name:6s}{quality.describe(s[name], True, 'nominal_')}"
            for name in ("float", "int")
        ]
    if c:
        lines.append(
            f"  {'C check (' + c['compiler'] + ')':18s}policy.h codes differing from the numpy "
            f"model: {c['int_code_mismatches']} of {c['states']}; float32 header vs torch "
            f"max {c['f32_max_abs_diff_vs_torch']:.2e}"
        )
    else:
        lines.append("  C check           skipped (no C compiler, or --no-c-check)")
    lines.append("")
    for name, (value, target, ok) in report["checks"].items():
        status = "n/a" if ok is None else ("ok" if ok else "MISSED")
        shown = "-" if value is None else f"{value:.4g}"
        lines.append(f"  {name:28s}{shown:>12s}  <= {target:<8g} {status}")
    return "\n".join(lines)
