"""Quantisation of the float policy for ``policy.h``: one ``QuantParams`` object, computed
here, that the numpy integer model (``int_reference``) and the C header generator
(``header``) read.

Scheme "int12w-int16a" (after TFLite's "16x8" mode, int8 weights and int16 activations,
with weight codes widened to 12 bits; the choices are documented in
docs/quantization.md):

- real = (q - zero) * scale for every activation tensor;
- input: normalise in float, then quantise once (int16 symmetric, or int8 per feature or
  per tensor, asymmetric);
- weights: symmetric codes in [-W_j, W_j], one scale per output channel j, W_j the
  largest limit up to WEIGHT_CODE_MAX (2047) for which the channel's accumulator proof
  holds, never below WEIGHT_CODE_FLOOR (127, guaranteed by the shapes); the input scale
  is folded into the weights, so one formula covers per-feature and per-tensor inputs;
- bias: int32 at scale in_scale * w_scale, with the input zero points folded in, so the
  inner loop is a plain sum of products of codes;
- requantisation: an int32 multiplier in [2^30, 2^31) and a right shift (gemmlowp);
- activations: the pre-activation code is int16, symmetric, zero 0, saturated to
  [-32767, 32767]; tanh is a 257-entry int16 table of tanh at the ends of 256 intervals,
  linearly interpolated (``int_reference.interpolate``), output scale 1/32768, zero 0;
  ReLU is max(pre, 0) at the pre-activation scale.

Pre-activation ranges are calibrated on rollout states layer by layer through the
already-quantised layers before them: the observed range with a margin (65,535 codes
leave nothing to gain from clipping).
"""

from __future__ import annotations

import math

import numpy as np

from export import int_reference as ref
from export.kernel_layout import INTERVALS
from export.model import ExportError, FloatPolicy
from export.quant_params import (
    SCHEME,
    WEIGHT_CODE_FLOOR,
    WEIGHT_CODE_MAX,
    InputQuant,
    LayerQuant,
    QuantParams,
)

__all__ = [
    "SCHEME",
    "WEIGHT_CODE_FLOOR",
    "WEIGHT_CODE_MAX",
    "InputQuant",
    "LayerQuant",
    "QuantParams",
    "quantize",
]

ACC_LIMIT = 2**31  # every int32 accumulator must stay strictly inside +-2^31
# A channel's weight scale is widened so that |bias code| <= BIAS_LIMIT * W_j / 127: 2^24
# at the floor limit (what check_shapes budgets), the same bias-to-weight ratio above it.
BIAS_LIMIT = 2**24
MIN_INPUT_RANGE = 0.1  # normalised units: the narrowest input range a feature is given
PRE16_MAX = 32767  # int16 pre-activation codes saturate to [-PRE16_MAX, PRE16_MAX]
TANH16_OUT_SCALE = 1.0 / ref.OUT_ONE  # 1/32768, codes <= 32767
TANH16_SATURATION = math.atanh(1.0 - 0.5 / 32768.0)  # tanh * 32768 >= 32767.5 beyond: ~5.55
RANGE_MARGIN = 1.25
ROUNDING = "compensated"
ROUNDINGS = ("compensated", "nearest")
INPUT_MODES = ("int16", "int8-per-tensor", "int8-per-feature")
# A retired option value -> the one line that says why (export's argument parser).
RETIRED = {
    ("--activations", "int8"): "int8 activations were retired: against int16 activations "
    "they had 3x the max and 17x the mean error, the same closed-loop success and the same "
    "Cortex-M4 speed (8,524 vs 8,423 instructions per call), to save 5.4 KB of flash "
    '(docs/quantization.md, "Retired: int8 activations")',
    ("--ranges", None): "--ranges chose the range calibration of the retired int8 "
    "activations; int16 activations always take the observed range with a margin",
}


def round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize_multiplier(m: float) -> tuple[int, int]:
    """A real multiplier 0 <= m < 1 as (Q31 mantissa, right shift), m ~ q * 2^-(31 + shift)."""
    if not 0.0 <= m < 1.0:
        raise ExportError(
            f"requantisation multiplier {m} outside [0, 1): the kernel only shifts right"
        )
    if m == 0.0:
        return 0, 0
    mant, exp = math.frexp(m)  # m = mant * 2^exp, mant in [0.5, 1), exp <= 0
    q = int(round(mant * 2**31))
    if q == 2**31:
        q, exp = q // 2, exp + 1
    shift = -exp
    if shift > 31:
        # m < 2^-32 and |acc| < 2^31 (proved): |acc * m| < 1/2, so the exact pre-activation
        # code is 0 for every input, which multiplier 0 gives.
        return 0, 0
    if shift < 0:  # m rounded up to 1: the kernel's shift is 0..31
        raise ExportError(f"requantisation multiplier {m} rounds to 1: no right shift left")
    return q, shift


def affine_range(lo: float, hi: float) -> tuple[float, int]:
    """(scale, zero) mapping [lo, hi] (widened to contain 0) onto codes [-128, 127]."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0
    zero = int(np.clip(round_half_away(-128.0 - lo / scale), -128, 127))
    return scale, zero


def symmetric_scale(lo: float, hi: float) -> float:
    """The scale mapping [-R, R], R = max(|lo|, |hi|), onto int16 codes [-32767, 32767]
    (zero point 0)."""
    return max(abs(lo), abs(hi), 1e-30) / PRE16_MAX


def layer_range(layer: LayerQuant) -> tuple[float, float]:
    """The real pre-activation range a layer's codes cover (its saturation points)."""
    return -PRE16_MAX * layer.pre_scale, PRE16_MAX * layer.pre_scale


def tanh_table16(pre_scale: float) -> np.ndarray:
    """int16 (257,): tanh at the ends of the 256 intervals of 256 pre-activation codes
    (code 256 k - 32768), at output scale 1/32768, rounded half away from zero and capped
    at +-32767 (so +1.0 is not representable)."""
    ends = (np.arange(INTERVALS + 1, dtype=np.float64) * 256 - 32768) * pre_scale
    codes = round_half_away(np.tanh(ends) / TANH16_OUT_SCALE)
    return np.clip(codes, -PRE16_MAX, PRE16_MAX).astype(np.int16)


def activation_table(activation: str, pre_scale: float) -> tuple:
    """(lut, out_scale): tanh's int16[257] interpolation table at output scale 1/32768,
    or (None, pre_scale) for ReLU (max(pre, 0) at the pre-activation scale)."""
    if activation == "tanh":
        return tanh_table16(pre_scale), TANH16_OUT_SCALE
    if activation == "relu":
        return None, pre_scale
    raise ValueError(f"activation {activation!r}")


def calibrate_range(pre: np.ndarray, activation: str) -> tuple[float, float]:
    """The range [lo, hi] of a pre-activation tensor: the observed range widened by
    RANGE_MARGIN (a finite sample under-states it), from 0 for ReLU, cut for tanh at
    +-TANH16_SATURATION (beyond it every input maps to the end codes anyway). With 65,535
    codes the rounding a tighter, MSE-optimal cut would save is negligible."""
    lo = float(min(pre.min(), 0.0)) * RANGE_MARGIN
    hi = float(max(pre.max(), 0.0)) * RANGE_MARGIN
    if activation == "relu":
        lo = 0.0
    if activation == "tanh":
        lo, hi = max(lo, -TANH16_SATURATION), min(hi, TANH16_SATURATION)
    return lo, hi


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


def channel_scale(w_eff: np.ndarray, b: np.ndarray, limit) -> np.ndarray:
    """The real value of one accumulator unit per output channel (``acc_scale``): the
    channel's largest |weight| (input scale folded in, ``w_eff``) over its code limit, widened
    where the bias would need more than BIAS_LIMIT * limit / WEIGHT_CODE_FLOOR codes."""
    row_max = np.abs(w_eff).max(axis=1)
    magnitude = np.maximum(row_max, np.abs(b) * (WEIGHT_CODE_FLOOR / BIAS_LIMIT))
    return np.maximum(magnitude / np.asarray(limit, dtype=np.float64), 1e-30)


def channel_bounds(wq: np.ndarray, bq: np.ndarray, x_max: int) -> np.ndarray:
    """|bias code| + x_max * sum |w codes| per channel: no partial sum of the channel's
    accumulator can exceed it when every |input code| <= x_max (input zero points are
    folded into ``bq``)."""
    return np.abs(bq.astype(np.int64)) + x_max * np.abs(wq.astype(np.int64)).sum(axis=1)


def choose_code_limits(codes_at, cap: np.ndarray, x_max: int) -> np.ndarray:
    """Per channel, the largest weight code limit in [WEIGHT_CODE_FLOOR, cap] whose
    rounded codes pass the accumulator proof (channel_bounds < 2^31). ``codes_at(limits)``
    rounds the layer at those limits and returns (wq, bq). Bisection, all channels at once
    (rows round independently): exact where the bound grows with the limit, as it does for
    rounding to nearest; compensated rounding may jitter by a code or two, and the limit
    found passes the proof either way. A channel that fails even at the floor keeps it:
    prove_no_overflow then refuses the network, naming it."""
    cap = np.asarray(cap, dtype=np.int64)
    wq, bq = codes_at(cap)
    fits = channel_bounds(wq, bq, x_max) < ACC_LIMIT
    lo = np.where(fits, cap, WEIGHT_CODE_FLOOR)  # the floor passes: check_shapes
    hi = np.where(fits, cap, cap - 1)
    while (lo < hi).any():
        mid = (lo + hi + 1) // 2
        wq, bq = codes_at(mid)
        fits = channel_bounds(wq, bq, x_max) < ACC_LIMIT
        lo, hi = np.where(fits, mid, lo), np.where(fits, hi, mid - 1)
    return lo


def quantize_layer(
    w,
    b,
    in_scale,
    in_zero,
    in_max: int,
    pre: np.ndarray,
    activation: str,
    x_codes: np.ndarray | None = None,
    pre_range: tuple[float, float] | None = None,
    limit_cap: np.ndarray | None = None,
) -> LayerQuant:
    """One layer. ``in_scale``/``in_zero`` per input, |input code| <= ``in_max``;
    ``pre`` holds the calibration pre-activations. With ``x_codes`` (the calibration
    input codes) the weights are rounded with error compensation, else to nearest.
    ``pre_range`` fixes the pre-activation range instead of calibrating it on ``pre``;
    ``limit_cap`` caps each channel's weight code limit (default WEIGHT_CODE_MAX)."""
    w = w.astype(np.float64)
    b = b.astype(np.float64)
    w_eff = w * in_scale[None, :]
    zero = in_zero.astype(np.int64)
    if limit_cap is None:
        limit_cap = np.full(len(w), WEIGHT_CODE_MAX)
    if np.any(limit_cap < WEIGHT_CODE_FLOOR) or np.any(limit_cap > WEIGHT_CODE_MAX):
        raise ExportError(
            f"weight code limits must lie in [{WEIGHT_CODE_FLOOR}, {WEIGHT_CODE_MAX}]; "
            f"got {int(np.min(limit_cap))}..{int(np.max(limit_cap))}"
        )
    factor = None if x_codes is None else inverse_factor(x_codes - in_zero[None, :])

    def codes_at(limits):
        acc_scale = channel_scale(w_eff, b, limits)
        w_codes = w_eff / acc_scale[:, None]
        if factor is None:
            wq = np.clip(round_half_away(w_codes), -limits[:, None], limits[:, None])
        else:
            wq = compensated_rounding(w_codes, factor=factor, limit=limits)
        wq = wq.astype(np.int64)
        return wq, round_half_away(b / acc_scale).astype(np.int64) - wq @ zero

    limits = choose_code_limits(codes_at, limit_cap, in_max)
    acc_scale = channel_scale(w_eff, b, limits)
    wq, bq = codes_at(limits)
    acc_bound = int(channel_bounds(wq, bq, in_max).max())
    lo, hi = pre_range if pre_range is not None else calibrate_range(pre, activation)
    pre_scale = symmetric_scale(lo, hi)
    # Keep every requantisation multiplier below 1 (a right shift only): widen the
    # pre-activation range if a channel's accumulator unit exceeds one output code.
    if acc_scale.max() >= pre_scale:
        pre_scale = float(acc_scale.max()) * (1.0 + 2.0**-20)
    mult, shift = zip(*(quantize_multiplier(s / pre_scale) for s in acc_scale), strict=True)
    lut, out_scale = activation_table(activation, pre_scale)
    return LayerQuant(
        weight=wq.astype(np.int16),
        bias=bq.astype(np.int32),
        multiplier=np.array(mult, dtype=np.int32),
        shift=np.array(shift, dtype=np.int32),
        acc_scale=acc_scale,
        pre_scale=float(pre_scale),
        out_scale=float(out_scale),
        lut=lut,
        activation=activation,
        acc_bound=acc_bound,
        code_limit=limits.astype(np.int32),
    )


def inverse_factor(x: np.ndarray, damp: float = 0.01) -> np.ndarray:
    """The upper Cholesky factor of the inverse of the calibration inputs' second-moment
    matrix (damped by ``damp`` times its mean diagonal): what compensated rounding needs of
    ``x`` (n, in), computed once per layer."""
    x = np.asarray(x, dtype=np.float64)
    h = x.T @ x / len(x)
    h += damp * max(float(np.mean(np.diag(h))), 1e-12) * np.eye(len(h))
    return np.linalg.cholesky(np.linalg.inv(h)).T


def compensated_rounding(
    w: np.ndarray,
    x: np.ndarray | None = None,
    damp: float = 0.01,
    *,
    factor: np.ndarray | None = None,
    limit=WEIGHT_CODE_MAX,
) -> np.ndarray:
    """Integer codes in [-limit, limit] (``limit`` per row, or one for all) for real-valued
    weight codes ``w`` (out, in) that keep ``w @ x`` close on the calibration inputs ``x``
    (n, in): round one input column at a time and spread its rounding error over the
    columns not yet rounded, weighted by the inverse of the inputs' second-moment matrix
    (Optimal Brain Quantization / GPTQ, Frantar et al. 2022; ``factor``: its
    ``inverse_factor``, given instead of ``x``). Same scales and format as rounding to
    nearest; only the choice of codes differs. Rows are independent of each other."""
    u = inverse_factor(x, damp) if factor is None else factor
    w = np.array(w, dtype=np.float64)
    lim = np.broadcast_to(np.asarray(limit, dtype=np.float64), (len(w),))
    q = np.zeros_like(w)
    for i in range(w.shape[1]):
        q[:, i] = np.clip(round_half_away(w[:, i]), -lim, lim)
        err = (w[:, i] - q[:, i]) / u[i, i]
        w[:, i + 1 :] -= np.outer(err, u[i, i + 1 :])
    return q.astype(np.int64)


def check_shapes(policy: FloatPolicy, input_mode: str) -> None:
    """Refuse, before any work, shapes whose accumulators could overflow for some weights
    at the floor code limit (127): prove_no_overflow's bound |bias code| + max|x| * sum
    |w code| is then at most 2^24 + 127 * X * fan_in, X = 32767 for int16 codes (the int16
    input, every activation), 256 for the int8 input codes (|x| <= 128, and the zero point,
    |zero| <= 128, folded into the bias). So every channel can be given a limit of at least
    127; quantize_layer widens it where the channel's own codes leave room."""
    for i, w in enumerate(policy.weights):
        fan_in = w.shape[1]
        wide = input_mode == "int16" or i > 0
        x_max = PRE16_MAX if wide else 256
        bound = BIAS_LIMIT + WEIGHT_CODE_FLOOR * x_max * fan_in
        if bound >= ACC_LIMIT:
            what = "input" if i == 0 else "activations"
            raise ExportError(
                f"layer {i} ({fan_in} -> {w.shape[0]}): int32 accumulator could overflow: "
                f"worst case 2^24 + 127*{x_max}*{fan_in} = {bound} >= 2^31 with "
                f"{'int16' if wide else 'int8'} {what}; fan-in must be "
                f"<= {(ACC_LIMIT - 1 - BIAS_LIMIT) // (WEIGHT_CODE_FLOOR * x_max)}"
            )


def prove_no_overflow(params: QuantParams) -> None:
    """The worst case over all input codes: |bias| + max|x| * sum |w| < 2^31 per channel
    (max|x| = 32767 for the int16 input and for every hidden code: tanh codes are within
    +-32767, ReLU codes within [0, 32767]). Every partial sum is bounded by the same
    figure, so the order of accumulation (SMLAD pairs or not) is free. Also refuses a
    weight code beyond WEIGHT_CODE_MAX (the scheme's width)."""
    in_max = max(-params.input.lo, params.input.hi)
    for i, layer in enumerate(params.layers):
        wq, bq = layer.weight.astype(np.int64), layer.bias.astype(np.int64)
        if np.abs(wq).max(initial=0) > WEIGHT_CODE_MAX:
            raise ExportError(
                f"layer {i}: a weight code {int(np.abs(wq).max())} exceeds the scheme's "
                f"{WEIGHT_CODE_MAX}"
            )
        x_max = in_max if i == 0 else PRE16_MAX
        bound = channel_bounds(wq, bq, x_max)
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
    rounding: str = ROUNDING,
    max_samples: int = 20000,
    seed: int = 0,
    ranges: list[tuple[float, float]] | None = None,
    limits: list[np.ndarray] | None = None,
) -> QuantParams:
    """Quantise ``policy`` with calibration observations ``obs`` (n, obs_dim) float32.
    ``ranges``, if given, fixes each layer's pre-activation range; ``limits`` caps each
    layer's per-channel weight code limits (both: see ``finetune``)."""
    check_shapes(policy, input_mode)
    obs = np.asarray(obs, dtype=np.float32)
    if obs.ndim != 2 or obs.shape[1] != policy.obs_dim or obs.shape[0] == 0:
        raise ExportError(
            f"calibration set has shape {obs.shape}; expected (n, {policy.obs_dim}) with n > 0"
        )
    if obs.shape[0] > max_samples:  # compensated rounding is O(samples x fan-in^2)
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
        in_max = max(-inq.lo, inq.hi) if i == 0 else PRE16_MAX
        x = codes if rounding == "compensated" else None
        fixed = None if ranges is None else ranges[i]
        cap = None if limits is None else np.asarray(limits[i])
        layer = quantize_layer(w, b, in_scale, in_zero, in_max, pre, activation, x, fixed, cap)
        layers.append(layer)
        _, codes = ref.layer_forward(layer, codes)
        in_scale = np.full(w.shape[0], layer.out_scale)
        in_zero = np.zeros(w.shape[0], dtype=np.int32)  # symmetric int16 codes
    params = QuantParams(inq, tuple(layers), input_mode, int(len(obs)), policy.model_hash)
    prove_no_overflow(params)
    assert params.layers[-1].out_scale == 1.0 / ref.OUT_ONE
    return params
