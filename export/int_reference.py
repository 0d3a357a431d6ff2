"""The int8 pipeline in numpy, bit for bit what ``policy.h`` computes.

Every step mirrors a line of ``templates/policy_int8.h``: float32 input quantisation
(the same IEEE operations in the same order), exact integer accumulation, gemmlowp-style
requantisation and the tanh lookup. Tests compare this model with the compiled header
on rollout states and require identical int8 output codes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from export.quantize import QuantParams

INPUT_LIMIT = np.float32(65536.0)  # |u| is clamped here before rounding (codes saturate)


def saturating_rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul: a * b / 2^31 rounded to nearest, ties
    toward +infinity (the nudge is +2^30 or 1 - 2^30, then the division truncates toward
    zero: 0.5 -> 1, -0.5 -> 0), as the C code does. The one saturating case of the
    original (a == b == INT32_MIN) cannot occur: multipliers are positive.
    """
    ab = a.astype(np.int64) * b.astype(np.int64)
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    x = ab + nudge
    return np.where(x >= 0, x >> 31, -((-x) >> 31)).astype(np.int64)


def rounding_divide_by_pot(x: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: x / 2^shift rounded half away from zero."""
    x = x.astype(np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    half = np.where(shift > 0, np.int64(1) << np.maximum(shift - 1, 0), 0)
    mag = (np.abs(x) + half) >> shift
    return np.where(x < 0, -mag, mag)


def quantize_input(params: QuantParams, obs: np.ndarray) -> np.ndarray:
    """float32 obs (n, obs_dim) -> input codes (int32), exactly as the header does it."""
    q = params.input
    obs = np.asarray(obs, dtype=np.float32)
    u = (obs - q.mean) / q.div  # float32 subtract then divide, like the C code
    u = np.clip(u, -INPUT_LIMIT, INPUT_LIMIT)
    r = np.where(u >= 0, u + np.float32(0.5), u - np.float32(0.5)).astype(np.int32)
    return np.clip(r + q.zero, q.lo, q.hi).astype(np.int32)


def layer_forward(layer, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 codes in -> (int32 accumulators, int8 codes out) for one layer."""
    acc = x.astype(np.int64) @ layer.weight.T.astype(np.int64) + layer.bias.astype(np.int64)
    scaled = rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(acc, layer.multiplier), layer.shift
    )
    pre = np.clip(scaled + layer.pre_zero, -128, 127)
    return acc, layer.lut[pre + 128]


def forward_codes(params: QuantParams, obs: np.ndarray) -> np.ndarray:
    """float32 obs (n, obs_dim) -> int8 action codes (n, act_dim); action = code / 128."""
    x = quantize_input(params, obs)
    for layer in params.layers:
        _, x = layer_forward(layer, x)
    return x


def act(params: QuantParams, obs: np.ndarray) -> np.ndarray:
    """Dequantised int8 actions (float32), what ``qp_policy_act`` writes."""
    return forward_codes(params, obs).astype(np.float32) * np.float32(1.0 / 128.0)


def accumulators(params: QuantParams, obs: np.ndarray) -> list[np.ndarray]:
    """The int32 accumulators of every layer (for the overflow margin in the report)."""
    x, out = quantize_input(params, obs), []
    for layer in params.layers:
        acc, x = layer_forward(layer, x)
        out.append(acc)
    return out
