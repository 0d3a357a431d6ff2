"""Quantisation of the float policy for ``policy.h``: one ``QuantParams`` object, computed
here, that the numpy integer model (``int_reference``) and the C header generator
(``header``) read.

Scheme (TFLite Micro's fully connected layers, with the choices documented in
docs/quantization.md); ``QuantParams.act_bits`` selects the width of the activations:

- real = (q - zero) * scale for every activation tensor;
- input: normalise in float, then quantise once (int16 symmetric, or int8 per feature or
  per tensor, asymmetric);
- weights: int8 in [-127, 127], symmetric, one scale per output channel; the input scale
  is folded into the weights, so one formula covers per-feature and per-tensor inputs;
- bias: int32 at scale in_scale * w_scale, with the input zero points folded in, so the
  inner loop is a plain sum of products of codes;
- requantisation: an int32 multiplier in [2^30, 2^31) and a right shift (gemmlowp);
- activations, ``act_bits == 16`` (the default; TFLite's "16x8" mode: int16 activations,
  int8 weights): the pre-activation code is int16, symmetric, zero 0, saturated to
  [-32767, 32767]; tanh is a 257-entry int16 table of tanh at the ends of 256 intervals,
  linearly interpolated (``int_reference.interpolate``), output scale 1/32768, zero 0;
  ReLU is max(pre, 0) at the pre-activation scale;
- activations, ``act_bits == 8``: a 256-entry table from the int8 pre-activation code to
  the int8 output code; tanh's output is fixed at scale 1/128, zero 0; ReLU's table is a
  clamp.

Pre-activation ranges are calibrated on rollout states layer by layer through the
already-quantised layers before them. int8: the clipping range that minimises the mean
squared error of the activation's output on the calibration set (``hybrid``: all but
the output layer). int16: the observed range with a margin (65,535 codes leave nothing
to gain from clipping).
"""

from __future__ import annotations

import math

import numpy as np

from export import int_reference as ref
from export.model import ExportError, FloatPolicy
from export.quant_params import InputQuant, LayerQuant, QuantParams, scheme_name

__all__ = ["InputQuant", "LayerQuant", "QuantParams", "quantize", "scheme_name"]

ACC_LIMIT = 2**31  # every int32 accumulator must stay strictly inside +-2^31
BIAS_LIMIT = 2**24  # a channel's weight scale is widened so |bias code| stays below this
MIN_INPUT_RANGE = 0.1  # normalised units: the narrowest input range a feature is given
TANH_OUT_SCALE = 1.0 / ref.out_one(8)  # int8 activations: 1/128
# tanh(x) * 128 >= 127.5 beyond this: the table's end codes; a wider range buys nothing.
TANH_SATURATION = math.atanh(127.5 / 128.0)
ACTIVATIONS = {"int16": 16, "int8": 8}  # --activations: name -> QuantParams.act_bits
ACT_BITS = 16  # the default: int16 activations, int8 weights
PRE16_MAX = 32767  # int16 pre-activation codes saturate to [-PRE16_MAX, PRE16_MAX]
TANH16_OUT_SCALE = 1.0 / ref.out_one(16)  # int16 activations: 1/32768, codes <= 32767
TANH16_SATURATION = math.atanh(1.0 - 0.5 / 32768.0)  # tanh * 32768 >= 32767.5 beyond: ~5.55
INTERVALS = 256  # int16 tanh: pieces of the interpolated table, 256 codes each
CALIBRATION = "hybrid"
RANGE_MARGIN = 1.25
CALIBRATIONS = ("hybrid", "minmax", "mse")
ROUNDING = "compensated"
ROUNDINGS = ("compensated", "nearest")
INPUT_MODES = ("int16", "int8-per-tensor", "int8-per-feature")


def hidden_code_max(act_bits: int) -> int:
    """The largest |code| a hidden layer can output (the next layer's max|x|)."""
    return PRE16_MAX if act_bits == 16 else 128


def round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize_multiplier(m: float) -> tuple[int, int]:
    """A real multiplier 0 <= m < 1 as (Q31 mantissa, right shift), m ~ q * 2^-(31 + shift)."""
    if not 0.0 <= m < 1.0:
        raise ValueError(f"requantisation multiplier {m} outside [0, 1)")
    if m == 0.0:
        return 0, 0
    mant, exp = math.frexp(m)  # m = mant * 2^exp, mant in [0.5, 1), exp <= 0
    q = int(round(mant * 2**31))
    if q == 2**31:
        q, exp = q // 2, exp + 1
    shift = -exp
    if shift > 31:  # smaller than 2^-32: every accumulator rounds to 0
        return 0, 0
    return q, shift


def affine_range(lo: float, hi: float) -> tuple[float, int]:
    """(scale, zero) mapping [lo, hi] (widened to contain 0) onto codes [-128, 127]."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0
    zero = int(np.clip(round_half_away(-128.0 - lo / scale), -128, 127))
    return scale, zero


def symmetric_range(lo: float, hi: float) -> tuple[float, int]:
    """(scale, 0) mapping [-R, R], R = max(|lo|, |hi|), onto int16 codes [-32767, 32767]."""
    return max(abs(lo), abs(hi), 1e-30) / PRE16_MAX, 0


def pre_grid(lo: float, hi: float, act_bits: int) -> tuple[float, int]:
    """(scale, zero) of the pre-activation codes for the range [lo, hi]."""
    return symmetric_range(lo, hi) if act_bits == 16 else affine_range(lo, hi)


def code_range(act_bits: int) -> tuple[int, int]:
    """The saturation limits of a pre-activation code."""
    return (-PRE16_MAX, PRE16_MAX) if act_bits == 16 else (-128, 127)


def layer_range(layer: LayerQuant, act_bits: int) -> tuple[float, float]:
    """The real pre-activation range a layer's codes cover (its saturation points)."""
    lo, hi = code_range(act_bits)
    return (lo - layer.pre_zero) * layer.pre_scale, (hi - layer.pre_zero) * layer.pre_scale


def tanh_table16(pre_scale: float) -> np.ndarray:
    """int16 (257,): tanh at the ends of the 256 intervals of 256 pre-activation codes
    (code 256 k - 32768), at output scale 1/32768, rounded half away from zero and capped
    at +-32767 (so +1.0 is not representable, as with int8)."""
    ends = (np.arange(INTERVALS + 1, dtype=np.float64) * 256 - 32768) * pre_scale
    codes = round_half_away(np.tanh(ends) / TANH16_OUT_SCALE)
    return np.clip(codes, -PRE16_MAX, PRE16_MAX).astype(np.int16)


def activation_lut(activation: str, pre_scale: float, pre_zero: int, act_bits: int = 8) -> tuple:
    """(lut, out_scale, out_zero). int8: lut int8[256] for codes -128..127 of the
    pre-activation. int16: tanh's int16[257] interpolation table, or None for ReLU."""
    if act_bits == 16:
        if activation == "tanh":
            return tanh_table16(pre_scale), TANH16_OUT_SCALE, 0
        if activation == "relu":
            return None, pre_scale, 0
        raise ValueError(f"activation {activation!r}")
    codes = np.arange(-128, 128)
    if activation == "tanh":
        y = np.tanh((codes - pre_zero) * pre_scale)
        lut = np.clip(round_half_away(y / TANH_OUT_SCALE), -128, 127)
        return lut.astype(np.int8), TANH_OUT_SCALE, 0
    if activation == "relu":
        return np.maximum(codes, pre_zero).astype(np.int8), pre_scale, pre_zero
    raise ValueError(f"activation {activation!r}")


def _apply(activation: str, x: np.ndarray) -> np.ndarray:
    return np.tanh(x) if activation == "tanh" else np.maximum(x, 0.0)


def calibrate_range(
    pre: np.ndarray, activation: str, method: str = CALIBRATION, act_bits: int = 8
) -> tuple:
    """The clipping range [lo, hi] of a pre-activation tensor.

    ``minmax``: the observed range widened by RANGE_MARGIN, cut for tanh at its
    saturation point (+-TANH_SATURATION for int8, +-TANH16_SATURATION for int16: beyond
    it every input maps to the end codes anyway, so the cut loses nothing).
    ``mse`` (int8 only): the cut that minimises the mean squared error of the
    activation's dequantised output on ``pre``. int16 activations always use
    ``minmax``: with 65,535 codes the rounding a tighter cut saves is negligible.
    """
    lo, hi = float(min(pre.min(), 0.0)), float(max(pre.max(), 0.0))
    if act_bits == 16:
        method = "minmax"
    if method == "minmax":  # a finite sample under-states the range: leave a margin
        lo, hi = lo * RANGE_MARGIN, hi * RANGE_MARGIN
    if activation == "relu":
        lo = 0.0
    if activation == "tanh":
        cut = TANH16_SATURATION if act_bits == 16 else TANH_SATURATION
        lo, hi = max(lo, -cut), min(hi, cut)
    if method == "minmax":
        return lo, hi
    top = max(abs(lo), hi, 1e-3)
    best, best_err = (lo, hi), math.inf
    exact = _apply(activation, pre)
    for t in np.unique(np.concatenate([np.geomspace(min(0.25, top), top, 40), [top]])):
        c_lo, c_hi = max(lo, -t), min(hi, t)
        if c_hi - c_lo <= 0:
            continue
        scale, zero = affine_range(c_lo, c_hi)
        lut, out_scale, out_zero = activation_lut(activation, scale, zero)
        code = np.clip(round_half_away(pre / scale) + zero, -128, 127).astype(np.int64)
        got = (lut[code + 128].astype(np.float64) - out_zero) * out_scale
        err = float(np.mean((got - exact) ** 2))
        if err < best_err:
            best, best_err = (c_lo, c_hi), err
    return best


def quantize_input(policy: FloatPolicy, z: np.ndarray, mode: str) -> InputQuant:
    """Input codes for the clipped, normalised observations (``z``: calibration states).

    ``int16``: symmetric, zero 0, scale obs_clip / 32767, so saturation is the clip itself
    and no calibration is needed. ``int8-per-tensor`` / ``int8-per-feature``: asymmetric
    int8 over the range ``z`` covered (one range, or one per feature).
    """
    dim = policy.obs_dim
    if mode == "int16":
        scale = np.full(dim, policy.obs_clip / 32767.0)
        zero = np.zeros(dim, dtype=np.int32)
        lo_code, hi_code = -32767, 32767
    elif mode in ("int8-per-tensor", "int8-per-feature"):
        if mode == "int8-per-tensor":
            lo, hi = np.full(dim, min(z.min(), 0.0)), np.full(dim, max(z.max(), 0.0))
        else:
            lo, hi = np.minimum(z.min(axis=0), 0.0), np.maximum(z.max(axis=0), 0.0)
        short = (hi - lo) < MIN_INPUT_RANGE  # a feature that barely moved in calibration
        pad = np.where(short, (MIN_INPUT_RANGE - (hi - lo)) / 2, 0.0)
        pairs = [affine_range(a, b) for a, b in zip(lo - pad, hi + pad, strict=True)]
        scale = np.array([p[0] for p in pairs])
        zero = np.array([p[1] for p in pairs], dtype=np.int32)
        lo_code, hi_code = -128, 127
    else:
        raise ValueError(f"input mode {mode!r}; allowed: {', '.join(INPUT_MODES)}")
    div = (policy.std.astype(np.float64) * scale).astype(np.float32)
    return InputQuant(
        mean=policy.mean.copy(),
        div=div,
        scale=div.astype(np.float64) / policy.std,
        zero=zero,
        lo=lo_code,
        hi=hi_code,
    )


def quantize_layer(
    w,
    b,
    in_scale,
    in_zero,
    in_max: int,
    pre: np.ndarray,
    activation: str,
    calibration: str = CALIBRATION,
    x_codes: np.ndarray | None = None,
    pre_range: tuple[float, float] | None = None,
    act_bits: int = ACT_BITS,
) -> LayerQuant:
    """One layer. ``in_scale``/``in_zero`` per input, |input code| <= ``in_max``;
    ``pre`` holds the calibration pre-activations. With ``x_codes`` (the calibration
    input codes) the weights are rounded with error compensation, else to nearest.
    ``pre_range`` fixes the pre-activation range instead of calibrating it on ``pre``.
    ``act_bits``: width of the pre-activation and output codes (16 or 8)."""
    w = w.astype(np.float64)
    b = b.astype(np.float64)
    w_eff = w * in_scale[None, :]
    row_max = np.abs(w_eff).max(axis=1)
    acc_scale = np.maximum.reduce(
        [row_max / 127.0, np.abs(b) / BIAS_LIMIT, np.full_like(row_max, 1e-30)]
    )
    w_codes = w_eff / acc_scale[:, None]
    if x_codes is None:
        wq = np.clip(round_half_away(w_codes), -127, 127).astype(np.int64)
    else:
        wq = compensated_rounding(w_codes, x_codes - in_zero[None, :])
    bq = round_half_away(b / acc_scale).astype(np.int64) - wq @ in_zero.astype(np.int64)
    acc_bound = int((np.abs(bq) + in_max * np.abs(wq).sum(axis=1)).max())
    if pre_range is not None:
        lo, hi = pre_range
    else:
        lo, hi = calibrate_range(pre, activation, calibration, act_bits)
    pre_scale, pre_zero = pre_grid(lo, hi, act_bits)
    # Keep every requantisation multiplier below 1 (a right shift only): widen the
    # pre-activation range if a channel's accumulator unit exceeds one output code.
    if acc_scale.max() >= pre_scale:
        pre_scale = float(acc_scale.max()) * (1.0 + 2.0**-20)
    mult, shift = zip(*(quantize_multiplier(s / pre_scale) for s in acc_scale), strict=True)
    lut, out_scale, out_zero = activation_lut(activation, pre_scale, pre_zero, act_bits)
    return LayerQuant(
        weight=wq.astype(np.int8),
        bias=bq.astype(np.int32),
        multiplier=np.array(mult, dtype=np.int32),
        shift=np.array(shift, dtype=np.int32),
        acc_scale=acc_scale,
        pre_scale=float(pre_scale),
        pre_zero=int(pre_zero),
        out_scale=float(out_scale),
        out_zero=int(out_zero),
        lut=lut,
        activation=activation,
        acc_bound=acc_bound,
    )


def compensated_rounding(w: np.ndarray, x: np.ndarray, damp: float = 0.01) -> np.ndarray:
    """int8 codes for real-valued weight codes ``w`` (out, in) that keep ``w @ x`` close on
    the calibration inputs ``x`` (n, in): round one input column at a time and spread its
    rounding error over the columns not yet rounded, weighted by the inverse of the inputs'
    second-moment matrix (Optimal Brain Quantization / GPTQ, Frantar et al. 2022). Same
    scales and format as rounding to nearest; only the choice of codes differs."""
    x = np.asarray(x, dtype=np.float64)
    h = x.T @ x / len(x)
    h += damp * max(float(np.mean(np.diag(h))), 1e-12) * np.eye(len(h))
    u = np.linalg.cholesky(np.linalg.inv(h)).T  # upper factor of H^-1
    w = np.array(w, dtype=np.float64)
    q = np.zeros_like(w)
    for i in range(w.shape[1]):
        q[:, i] = np.clip(round_half_away(w[:, i]), -127, 127)
        err = (w[:, i] - q[:, i]) / u[i, i]
        w[:, i + 1 :] -= np.outer(err, u[i, i + 1 :])
    return q.astype(np.int64)


def check_shapes(policy: FloatPolicy, input_mode: str, act_bits: int = ACT_BITS) -> None:
    """Refuse, before any work, shapes whose accumulators could overflow for some weights:
    |acc| <= |bias code| + sum |w code| * |x code - zero| <= 2^24 + 127 * X * fan_in,
    X = 32767 for int16 codes (the int16 input, int16 activations), 255 for int8 codes
    with a zero point."""
    for i, w in enumerate(policy.weights):
        fan_in = w.shape[1]
        wide = input_mode == "int16" if i == 0 else act_bits == 16
        x_max = PRE16_MAX if wide else 255
        bound = BIAS_LIMIT + 127 * x_max * fan_in
        if bound >= ACC_LIMIT:
            what = "input" if i == 0 else "activations"
            raise ExportError(
                f"layer {i} ({fan_in} -> {w.shape[0]}): int32 accumulator could overflow: "
                f"worst case 2^24 + 127*{x_max}*{fan_in} = {bound} >= 2^31 with "
                f"{'int16' if wide else 'int8'} {what}; fan-in must be "
                f"<= {(ACC_LIMIT - 1 - BIAS_LIMIT) // (127 * x_max)}"
            )


def prove_no_overflow(params: QuantParams) -> None:
    """The worst case over all input codes: |bias| + max|x| * sum |w| < 2^31 per channel
    (max|x| = 32767 for the int16 input and int16 activations, 128 for int8 codes). Every
    partial sum is bounded by the same figure, so the order of accumulation (SMLAD pairs
    or not) is free."""
    in_max = max(-params.input.lo, params.input.hi)
    for i, layer in enumerate(params.layers):
        wq, bq = layer.weight.astype(np.int64), layer.bias.astype(np.int64)
        x_max = in_max if i == 0 else hidden_code_max(params.act_bits)
        bound = np.abs(bq) + x_max * np.abs(wq).sum(axis=1)
        j = int(bound.argmax())
        if bound[j] >= ACC_LIMIT:
            raise ExportError(
                f"layer {i} channel {j}: int32 accumulator could overflow: |bias| "
                f"{abs(int(bq[j]))} + {x_max} * sum|w| {int(np.abs(wq[j]).sum())} = "
                f"{int(bound[j])} >= 2^31"
            )


def quantize(
    policy: FloatPolicy,
    obs: np.ndarray,
    input_mode: str = "int16",
    calibration: str = CALIBRATION,
    rounding: str = ROUNDING,
    max_samples: int = 20000,
    seed: int = 0,
    ranges: list[tuple[float, float]] | None = None,
    act_bits: int = ACT_BITS,
) -> QuantParams:
    """Quantise ``policy`` with calibration observations ``obs`` (n, obs_dim) float32.
    ``ranges``, if given, fixes each layer's pre-activation range (see ``finetune``).
    ``act_bits``: 16 (int16 activations, the default) or 8 (int8 activations)."""
    if act_bits not in (8, 16):
        raise ValueError(f"act_bits {act_bits}; allowed: 16, 8")
    check_shapes(policy, input_mode, act_bits)
    obs = np.asarray(obs, dtype=np.float32)
    if obs.ndim != 2 or obs.shape[1] != policy.obs_dim or obs.shape[0] == 0:
        raise ExportError(
            f"calibration set has shape {obs.shape}; expected (n, {policy.obs_dim}) with n > 0"
        )
    if obs.shape[0] > max_samples:  # the range search is O(samples x candidates)
        pick = np.random.default_rng(seed).choice(obs.shape[0], max_samples, replace=False)
        obs = obs[np.sort(pick)]
    z = np.clip(
        (obs.astype(np.float64) - policy.mean) / policy.std, -policy.obs_clip, policy.obs_clip
    )
    inq = quantize_input(policy, z, input_mode)
    codes = ref.input_codes(inq, obs)
    in_scale, in_zero = inq.scale, inq.zero
    n_layers = len(policy.weights)
    layers = []
    for i, (w, b) in enumerate(zip(policy.weights, policy.biases, strict=True)):
        activation = "tanh" if i == n_layers - 1 else policy.activation
        x_real = (codes.astype(np.float64) - in_zero) * in_scale
        pre = x_real @ w.astype(np.float64).T + b
        in_max = max(-inq.lo, inq.hi) if i == 0 else hidden_code_max(act_bits)
        x = codes if rounding == "compensated" else None
        method = calibration
        if calibration == "hybrid":  # mse inside, minmax at the output (bounds the max error)
            method = "minmax" if i == n_layers - 1 else "mse"
        fixed = None if ranges is None else ranges[i]
        layer = quantize_layer(
            w, b, in_scale, in_zero, in_max, pre, activation, method, x, fixed, act_bits
        )
        layers.append(layer)
        _, codes = ref.layer_forward(layer, codes, act_bits)
        in_scale = np.full(w.shape[0], layer.out_scale)
        in_zero = np.full(w.shape[0], layer.out_zero, dtype=np.int32)
    params = QuantParams(inq, tuple(layers), input_mode, int(len(obs)), policy.model_hash, act_bits)
    prove_no_overflow(params)
    last = params.layers[-1]
    assert last.out_scale == 1.0 / ref.out_one(act_bits) and last.out_zero == 0
    return params
