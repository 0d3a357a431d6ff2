"""The integer pipeline in numpy, bit for bit what ``policy.h`` computes.

Every step mirrors a line of the integer kernel (``kernel/qp_kernel.h``): float32 input
quantisation (the same IEEE operations in the same order), exact integer accumulation,
gemmlowp-style requantisation to int16 codes and the activation: the interpolated tanh
table or max(pre, 0). Tests compare this model with the compiled header on rollout
states and require identical output codes.

Parameters are read from ``params.input`` and ``params.layers[i]`` (``weight``, ``bias``,
``multiplier``, ``shift``, ``lut``, ``activation``): ``quant_params.QuantParams``, as
quantize.py computes them or as export/bundle.py rebuilds them from policy_bundle.json.
"""

from __future__ import annotations

import numpy as np

from export.quant_params import InputQuant, QuantParams

INPUT_LIMIT = np.float32(65536.0)  # |u| is clamped here before rounding (codes saturate)
OUT_ONE = 32768  # action = code / OUT_ONE (exact in float32): the header's QP_OUT_ONE


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
    return input_codes(params.input, obs)


def input_codes(q: InputQuant, obs: np.ndarray) -> np.ndarray:
    """``quantize_input`` with the input parameters alone (while the layers are still
    being quantised on these codes)."""
    obs = np.asarray(obs, dtype=np.float32)
    u = (obs - q.mean) / q.div  # float32 subtract then divide, like the C code
    u = np.clip(u, -INPUT_LIMIT, INPUT_LIMIT)
    r = np.where(u >= 0, u + np.float32(0.5), u - np.float32(0.5)).astype(np.int32)
    return np.clip(r + q.zero, q.lo, q.hi).astype(np.int32)


def codes_of(actions: np.ndarray) -> np.ndarray:
    """Output codes (int32) back from actions written by ``policy.h``; ValueError if an
    action is not a multiple of 1 / OUT_ONE."""
    scaled = np.asarray(actions, dtype=np.float32) * np.float32(OUT_ONE)
    codes = np.rint(scaled)
    if not np.array_equal(codes, scaled):
        raise ValueError(f"an action is not a multiple of 1/{OUT_ONE}")
    return codes.astype(np.int32)


def interpolate(lut: np.ndarray, pre: np.ndarray) -> np.ndarray:
    """The int16 tanh: ``lut`` (257,) holds the output codes at the pre-activation codes
    256 k - 32768; for a code ``pre`` in [-32768, 32767], with a = pre + 32768,
    idx = a >> 8 and frac = a & 255,
        out = floor((lut[idx] * (256 - frac) + lut[idx + 1] * frac + 128) / 256),
    the interpolation rounded to nearest, ties toward +infinity. (policy.h evaluates the
    same formula as one multiply-add per code: kernel_layout.interp_table.)"""
    a = np.asarray(pre, dtype=np.int64) + 32768
    idx, frac = a >> 8, a & 255
    lut = np.asarray(lut, dtype=np.int64)
    v = lut[idx] * (256 - frac) + lut[np.minimum(idx + 1, 256)] * frac
    return ((v + 128) >> 8).astype(np.int32)  # numpy >> on int64 is floor division


def layer_forward(layer, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Input codes -> (int32 accumulators, output codes) for one layer."""
    acc = x.astype(np.int64) @ layer.weight.T.astype(np.int64) + layer.bias.astype(np.int64)
    scaled = rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(acc, layer.multiplier), layer.shift
    )
    pre = np.clip(scaled, -32767, 32767)  # symmetric int16 codes, zero point 0
    if layer.activation == "relu":
        return acc, np.maximum(pre, 0).astype(np.int32)
    return acc, interpolate(layer.lut, pre)


def forward_codes(params: QuantParams, obs: np.ndarray) -> np.ndarray:
    """float32 obs (n, obs_dim) -> action codes (n, act_dim); action = code / OUT_ONE."""
    x = quantize_input(params, obs)
    for layer in params.layers:
        _, x = layer_forward(layer, x)
    return x


def act(params: QuantParams, obs: np.ndarray) -> np.ndarray:
    """Dequantised actions (float32), what ``qp_policy_act`` writes."""
    scale = np.float32(1.0 / OUT_ONE)
    return forward_codes(params, obs).astype(np.float32) * scale


def accumulators(params: QuantParams, obs: np.ndarray) -> list[np.ndarray]:
    """The int32 accumulators of every layer (for the overflow margin in the report)."""
    x, out = quantize_input(params, obs), []
    for layer in params.layers:
        acc, x = layer_forward(layer, x)
        out.append(acc)
    return out
