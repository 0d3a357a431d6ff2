"""python -m export.study [CHECKPOINT ...]: policy.h's error for each quantisation choice.

Prints a markdown table (the source of the figures in docs/quantization.md): for every
checkpoint, the integer-vs-float action error on rollout states of the export's scheme
(weight codes of up to 12 bits, int16 activations, fine-tuned weights), of the trained
weights quantised as they are, of each alternative to the latter (input width, weight
rounding), and the floors set by the weights alone (12-bit codes, and the former int8
codes for comparison) and by rounding the hidden outputs to 1/32768 alone.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from export import finetune, quantize, rollouts
from export import int_reference as ref
from export import model as model_mod
from export.model import ExportError
from export.quant_params import WEIGHT_CODE_FLOOR, WEIGHT_CODE_MAX

VARIANTS = [
    ("no fine-tuning (compensated rounding)", {}),
    ("no fine-tuning, round to nearest", {"rounding": "nearest"}),
    ("no fine-tuning, int8 input, per tensor", {"input_mode": "int8-per-tensor"}),
    ("no fine-tuning, int8 input, per feature", {"input_mode": "int8-per-feature"}),
]


def _float_forward(policy, obs, weights, act_step=None):
    h = np.clip((obs - policy.mean) / policy.std, -policy.obs_clip, policy.obs_clip)
    h = h.astype(np.float64)
    n = len(weights)
    for i, (w, b) in enumerate(zip(weights, policy.biases, strict=True)):
        pre = h @ w.T + b
        h = np.tanh(pre) if (i == n - 1 or policy.activation == "tanh") else np.maximum(pre, 0)
        if act_step and i < n - 1:
            h = np.round(h / act_step) * act_step
    return h


def floors(policy, obs, want) -> dict:
    """Error of the weight codes alone (per channel, nearest, every channel at the widest
    limit and at the int8 floor) and of hidden outputs rounded to 1/32768 alone: what no
    choice of activation ranges can remove."""

    def rounded(limit):
        out = []
        for w in policy.weights:
            s = np.abs(w).max(axis=1, keepdims=True).astype(np.float64) / limit
            out.append(np.round(w / np.where(s > 0, s, 1)) * s)
        return out

    floats = [w.astype(np.float64) for w in policy.weights]
    bits = WEIGHT_CODE_MAX.bit_length() + 1
    return {
        f"{bits}-bit weight codes only (float activations)": _float_forward(
            policy, obs, rounded(WEIGHT_CODE_MAX)
        ),
        "int8 weight codes only (float activations)": _float_forward(
            policy, obs, rounded(WEIGHT_CODE_FLOOR)
        ),
        "hidden outputs rounded to 1/32768 only": _float_forward(policy, obs, floats, 1 / 32768),
    }


def study(path: str, states: int = 10000) -> list[str]:
    policy = model_mod.load(path)
    calib = rollouts.policy_states(policy.act, policy.spec, states, 1000)
    test = rollouts.policy_states(policy.act, policy.spec, states, 2000)
    want = policy.act(test).astype(np.float64)
    rows = []
    params, _ = finetune.quantize_finetuned(policy, calib)
    rows.append(("default: fine-tuned weights", ref.act(params, test)))
    for name, kw in VARIANTS:
        params = quantize.quantize(policy, calib, max_samples=len(calib), **kw)
        rows.append((name, ref.act(params, test)))
    rows += list(floors(policy, test, want).items())
    out = [
        f"| {path} (step {policy.step}), {len(test)} test states | max | mean | p99 |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, got in rows:
        e = np.abs(got - want)
        out.append(f"| {name} | {e.max():.4f} | {e.mean():.5f} | {np.quantile(e, 0.99):.4f} |")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.study", description=__doc__)
    p.add_argument("checkpoints", nargs="*", default=["runs/latest"])
    p.add_argument("--states", type=int, default=10000)
    args = p.parse_args(argv)
    try:
        for path in args.checkpoints:
            print("\n".join(study(path, args.states)) + "\n")
    except ExportError as exc:
        print(f"export.study: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
