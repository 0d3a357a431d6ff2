"""Unit tests of the integer scheme (weight codes of up to 12 bits, int16 activations): fixed-point
primitives, the interpolated int16 tanh, parameters, overflow proof."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from export import int_reference as ref
from export import quantize
from export.model import ExportError, from_actor
from sim.contract.actor import Actor
from sim.contract.spec import PolicySpec
from sim.tasks import make_task


def unit_spec(obs_dim: int) -> PolicySpec:
    """The hover task's spec, observing ``obs_dim`` numbers (for actors of other shapes)."""
    layout = (("unit_input", obs_dim, "numbers for the unit tests"),)
    hover = PolicySpec.of_task(make_task("hover"))
    return dataclasses.replace(hover, obs_dim=obs_dim, obs_layout=layout)


def exact_high_mul(a: int, b: int) -> int:
    """floor(a * b / 2^31 + 1/2) (ties toward +infinity), in Python integers."""
    return (a * b + 2**30) >> 31


def exact_shift(x: int, s: int) -> int:
    q, r = divmod(abs(x), 2**s)
    return int(math.copysign(q + (2 * r >= 2**s), x)) if x else 0


def test_high_mul_matches_exact_rounding():
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.integers(-(2**31) + 1, 2**31, 5000), [0, 1, -1, 3, -3, 2**31 - 1]])
    b = np.concatenate([rng.integers(2**30, 2**31, 5000), [2**30] * 5, [2**31 - 1]])
    got = ref.saturating_rounding_doubling_high_mul(a, b)
    assert [exact_high_mul(int(x), int(y)) for x, y in zip(a, b, strict=True)] == got.tolist()
    # Ties: 0.5 -> 1, -0.5 -> 0, 1.5 -> 2, -1.5 -> -1 (gemmlowp's nudge, then truncation).
    assert got[5001:5005].tolist() == [1, 0, 2, -1]


def test_rounding_shift_is_half_away_from_zero():
    xs = np.array([5, -5, 6, -6, 7, -7, 0, 2**31 - 1, -(2**31) + 1, 12, -12])
    for s in range(0, 32):
        got = ref.rounding_divide_by_pot(xs, np.full(xs.size, s))
        assert got.tolist() == [exact_shift(int(x), s) for x in xs]
    # The tie cases: 5/2 -> 3, -5/2 -> -3 (gemmlowp RoundingDivideByPOT).
    assert ref.rounding_divide_by_pot(np.array([5, -5]), np.array([1, 1])).tolist() == [3, -3]


@pytest.mark.parametrize("m", [1e-9, 0.001, 0.3, 0.5, 0.75, 0.999999])
def test_multiplier_decomposition(m):
    q, shift = quantize.quantize_multiplier(m)
    assert 2**30 <= q < 2**31 and 0 <= shift <= 31
    assert abs(q * 2.0 ** -(31 + shift) - m) <= m * 2**-30


def test_multiplier_refuses_one_and_above():
    with pytest.raises(ValueError):
        quantize.quantize_multiplier(1.0)
    assert quantize.quantize_multiplier(0.0) == (0, 0)
    assert quantize.quantize_multiplier(2.0**-40) == (0, 0)


def test_int16_tanh_table_holds_tanh_at_the_interval_ends():
    scale = 4.0 / 32767
    lut = quantize.tanh_table16(scale)
    assert lut.dtype == np.int16 and lut.size == 257
    ends = (np.arange(257) * 256 - 32768) * scale
    assert np.abs(lut / 32768 - np.tanh(ends)).max() <= 0.5 / 32768 + 1e-12
    assert (lut[::-1] == -lut).all() and lut[128] == 0
    # At the saturation point the end entries reach the largest code, never 32768.
    wide = quantize.tanh_table16(quantize.TANH16_SATURATION * 1.01 / 32767)
    assert wide.max() == 32767 and wide.min() == -32767


def exact_interpolation(lut, pre: int) -> int:
    """round((lut[i] (256 - f) + lut[i + 1] f) / 256), ties toward +infinity, in rationals."""
    i, f = divmod(pre + 32768, 256)
    value = Fraction(int(lut[i]) * (256 - f) + int(lut[i + 1]) * f, 256)
    return math.floor(value + Fraction(1, 2))


def test_interpolation_rounding_matches_the_exact_formula():
    rng = np.random.default_rng(4)
    tables = [quantize.tanh_table16(3.0 / 32767), rng.integers(-32767, 32768, 257)]
    pre = np.concatenate([rng.integers(-32767, 32768, 3000), [-32767, -1, 0, 1, 32767]])
    for lut in tables:
        got = ref.interpolate(lut, pre)
        assert got.tolist() == [exact_interpolation(lut, int(p)) for p in pre]
    # Ties (frac 128 between neighbours one code apart) round toward +infinity.
    lut = np.zeros(257, dtype=np.int64)
    lut[129], lut[127] = 1, -1
    assert ref.interpolate(lut, np.array([128, -128, 64, -64, 192, -192])).tolist() == [
        1,
        0,
        0,
        0,
        1,
        -1,
    ]
    # Exact at the interval ends, monotone in between for tanh.
    tanh = quantize.tanh_table16(3.0 / 32767)
    codes = ref.interpolate(tanh, np.arange(-32767, 32768))
    assert (np.diff(codes) >= 0).all()
    assert (ref.interpolate(tanh, np.arange(1, 256) * 256 - 32768) == tanh[1:256]).all()


def small_policy(obs_dim=6, hidden=(8, 8), activation="tanh", seed=0):
    torch.manual_seed(seed)
    actor = Actor(obs_dim, 4, hidden, activation)
    with torch.no_grad():
        actor.obs_mean.uniform_(-1, 1)
        actor.obs_std.uniform_(0.5, 2)
    return from_actor(actor, unit_spec(obs_dim), 0, "unit")


@pytest.mark.parametrize("mode", quantize.INPUT_MODES)
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_params_respect_the_scheme(mode, activation):
    policy = small_policy(activation=activation)
    obs = np.random.default_rng(1).normal(size=(2000, policy.obs_dim)).astype(np.float32)
    params = quantize.quantize(policy, obs, mode)
    assert params.scheme == "int12w-int16a"
    for i, layer in enumerate(params.layers):
        limit = layer.code_limit
        assert layer.weight.dtype == np.int16 and limit.dtype == np.int32
        assert ((limit >= 127) & (limit <= quantize.WEIGHT_CODE_MAX)).all()
        # Symmetric per output channel: every row uses its full range (error-compensated
        # rounding may move the largest code by a code or two, never past the limit).
        row_max = np.abs(layer.weight).max(axis=1)
        assert (row_max <= limit).all() and (row_max >= limit - 2).all()
        assert layer.bias.dtype == np.int32
        assert ((layer.multiplier >= 2**30) | (layer.multiplier == 0)).all()
        assert ((layer.shift >= 0) & (layer.shift <= 31)).all()
        assert layer.acc_bound < 2**31
        # Every requantisation multiplier is below 1: a right shift only.
        assert (layer.acc_scale < layer.pre_scale).all()
        if layer.activation == "tanh":
            assert layer.lut.dtype == np.int16 and layer.lut.size == 257
            assert layer.out_scale == 1 / 32768 and np.abs(layer.lut).max() <= 32767
        else:  # ReLU: max(pre, 0) at the pre-activation scale, no table
            assert layer.lut is None and layer.out_scale == layer.pre_scale
            assert i < len(params.layers) - 1
    one = ref.OUT_ONE
    assert params.layers[-1].out_scale == 1 / one
    err = np.abs(ref.act(params, obs) - policy.act(obs))
    assert err.max() < 0.05 and err.mean() < 0.01
    codes = ref.forward_codes(params, obs)
    assert np.abs(codes).max() <= one - 1
    np.testing.assert_array_equal(ref.codes_of(ref.act(params, obs)), codes)
    # Any action that is not a code is refused (a float header read as the int one).
    with pytest.raises(ValueError, match="not a multiple of 1/32768"):
        ref.codes_of(policy.act(obs))


def test_ranges_are_the_observed_range_with_a_margin_cut_at_saturation():
    policy = small_policy(hidden=(32, 32))
    obs = np.random.default_rng(5).normal(size=(4000, policy.obs_dim)).astype(np.float32)
    params = quantize.quantize(policy, obs)
    for layer in params.layers:
        lo, hi = quantize.layer_range(layer)
        assert lo == -hi and 0 < hi <= quantize.TANH16_SATURATION * (1 + 1e-9)
    pre = np.array([[-0.5], [2.0]])
    assert quantize.calibrate_range(pre, "tanh") == (-0.625, 2.5)
    assert quantize.calibrate_range(pre, "relu") == (0.0, 2.5)
    assert quantize.calibrate_range(100 * pre, "tanh")[1] == quantize.TANH16_SATURATION


def test_int16_input_saturation_is_the_training_clip():
    policy = small_policy()
    params = quantize.quantize(policy, np.zeros((10, policy.obs_dim), np.float32), "int16")
    far = (policy.mean + 1e3 * policy.std)[None, :].astype(np.float32)
    assert (ref.quantize_input(params, far) == 32767).all()
    z = np.float32(policy.obs_clip) / 2
    half = (policy.mean + z * policy.std)[None, :].astype(np.float32)
    assert np.abs(ref.quantize_input(params, half) - 16384).max() <= 1


def test_overflow_proof_refuses_a_wide_layer():
    """A fan-in that could overflow int32 is refused before any work, with the reason."""
    actor = Actor(4, 4, hidden=(70000,))
    policy = from_actor(actor, unit_spec(4), 0, "wide")
    with pytest.raises(ExportError, match=r"layer 1 \(70000 -> 4\).*overflow.*2\^31"):
        quantize.quantize(policy, np.zeros((4, 4), np.float32))


def test_int16_activations_refuse_a_fan_in_of_600():
    """Every hidden code may be +-32767: 2^24 + 127 * 32767 * 600 >= 2^31, so fan-in 600
    is refused (512 is the limit), whatever the input mode."""
    actor = Actor(4, 4, hidden=(600,))
    policy = from_actor(actor, unit_spec(4), 0, "wide")
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    with pytest.raises(
        ExportError,
        match=r"layer 1 \(600 -> 4\).*2\^24 \+ 127\*32767\*600 = 2513622616 >= 2\^31 with "
        r"int16 activations; fan-in must be <= 512",
    ):
        quantize.quantize(policy, obs)
    with pytest.raises(ExportError, match=r"layer 1 \(600 -> 4\).*int16 activations"):
        quantize.quantize(policy, obs, "int8-per-tensor")
    quantize.check_shapes(from_actor(Actor(4, 4, hidden=(512,)), unit_spec(4), 0, "ok"), "int16")


def test_int16_overflow_proof_uses_32767_for_hidden_codes():
    """A channel whose |bias| + 32767 sum|w| reaches 2^31 is refused; one code less of
    bias passes."""
    policy = small_policy()
    obs = np.random.default_rng(1).normal(size=(100, policy.obs_dim)).astype(np.float32)
    params = quantize.quantize(policy, obs)
    layer = params.layers[1]
    bias = layer.bias.copy()
    bias[2] = 2**31 - 32767 * int(np.abs(layer.weight[2].astype(np.int64)).sum())
    layers = (params.layers[0], dataclasses.replace(layer, bias=bias), params.layers[2])
    wide = dataclasses.replace(params, layers=layers)
    with pytest.raises(ExportError, match="layer 1 channel 2: int32 accumulator could overflow"):
        quantize.prove_no_overflow(wide)
    bias[2] -= 1
    layers = (params.layers[0], dataclasses.replace(layer, bias=bias), params.layers[2])
    quantize.prove_no_overflow(dataclasses.replace(params, layers=layers))


def test_overflow_proof_checks_actual_codes():
    policy = small_policy()
    obs = np.random.default_rng(1).normal(size=(100, policy.obs_dim)).astype(np.float32)
    params = quantize.quantize(policy, obs)
    quantize.prove_no_overflow(params)
    layer = params.layers[1]
    big = layer.bias.copy()
    big[3] = 2**31 - 1000  # any real input pushes this channel past 2^31
    bad = quantize.QuantParams(
        params.input,
        (
            params.layers[0],
            quantize.LayerQuant(**{**layer.__dict__, "bias": big}),
            params.layers[2],
        ),
        "int16",
        100,
        "x",
    )
    with pytest.raises(ExportError, match="layer 1 channel 3: int32 accumulator could overflow"):
        quantize.prove_no_overflow(bad)


def test_perturbed_parameters_change_the_output():
    """The bit-exact comparisons can fail: one bias code off by a few shows in the codes."""
    policy = small_policy()
    obs = np.random.default_rng(2).normal(size=(5000, policy.obs_dim)).astype(np.float32)
    params = quantize.quantize(policy, obs)
    last = params.layers[-1]
    bias = last.bias.copy()
    bias[0] += int(last.acc_scale[0] ** -1 * last.pre_scale)  # one pre-activation step
    bad = quantize.QuantParams(
        params.input,
        (*params.layers[:-1], quantize.LayerQuant(**{**last.__dict__, "bias": bias})),
        "int16",
        1,
        "x",
    )
    assert (ref.forward_codes(bad, obs) != ref.forward_codes(params, obs)).any()


def test_compensated_rounding_beats_nearest_on_the_calibration_inputs():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4000, 16)) @ rng.normal(size=(16, 16))  # correlated inputs
    w = rng.uniform(-127, 127, size=(8, 16))
    nearest = np.clip(quantize.round_half_away(w), -127, 127)
    comp = quantize.compensated_rounding(w, x, limit=127)
    assert comp.dtype == np.int64 and np.abs(comp).max() <= 127
    assert np.abs(comp - w).max() <= 127  # still codes of the same per-channel scale

    def err(q):
        return np.mean((x @ (q - w).T) ** 2)

    assert err(comp) < 0.7 * err(nearest)


def hand_made_policy():
    """A 6-64-64-4 tanh actor with two hand-made channels in layer 1 (inputs: hidden tanh
    codes, |x| <= 32767): channel 0 has one large weight and small ones that an int8 grid
    (step 0.9/127) rounds away; channel 1 has 64 weights of equal size, so at codes of
    2047 its accumulator bound is 32767 * 64 * 2047 > 2^31."""
    torch.manual_seed(0)
    actor = Actor(6, 4, (64, 64))
    lin = actor.net[2]
    with torch.no_grad():
        actor.obs_std.uniform_(0.5, 2)
        lin.weight[0] = 0.0
        lin.weight[0, :8] = torch.tensor([0.9, 0.003, -0.005, 0.011, -0.002, 0.006, 0.004, -0.001])
        lin.weight[1] = 0.5 * torch.tensor([(-1.0) ** k for k in range(64)])
        lin.bias[:2] = 0.0
    return from_actor(actor, unit_spec(6), 0, "hand-made")


def test_weight_code_limits_are_chosen_per_channel_by_the_accumulator_proof():
    policy = hand_made_policy()
    obs = np.random.default_rng(4).normal(size=(3000, 6)).astype(np.float32)
    params = quantize.quantize(policy, obs, rounding="nearest")
    quantize.prove_no_overflow(params)
    layer = params.layers[1]
    limit = layer.code_limit
    # The small weights need more than 8 bits: channel 0 gets the widest limit.
    assert limit[0] == quantize.WEIGHT_CODE_MAX == 2047
    # Channel 1: 32767 * 64 * W < 2^31 holds up to W = 1024 and no further.
    assert limit[1] == 1024 and (np.abs(layer.weight[1]) == 1024).all()
    assert quantize.channel_bounds(layer.weight[1:2], layer.bias[1:2], 32767)[0] < 2**31
    assert 32767 * 64 * 1025 >= 2**31
    assert layer.acc_bound < 2**31
    # Against the former int8 codes (every limit capped at 127), channel 0's weights and
    # the actions come out closer to the float policy.
    int8 = quantize.quantize(
        policy, obs, rounding="nearest", limits=[np.full(w.shape[0], 127) for w in policy.weights]
    )
    assert all((lq.code_limit == 127).all() for lq in int8.layers)

    def weight_error(lq):
        real = lq.weight[0].astype(np.float64) * lq.acc_scale[0] * 32768  # input scale 1/32768
        return np.abs(real - policy.weights[1][0]).max()

    assert weight_error(layer) < 0.1 * weight_error(int8.layers[1])
    want = policy.act(obs)
    assert np.abs(ref.act(params, obs) - want).max() < np.abs(ref.act(int8, obs) - want).max()


def test_out_of_range_requantisation_is_refused_not_wrapped():
    from export.kernel_layout import requant_table

    with pytest.raises(ExportError, match=r"multiplier 1\.5 outside \[0, 1\)"):
        quantize.quantize_multiplier(1.5)
    with pytest.raises(ExportError, match="rounds to 1"):
        quantize.quantize_multiplier(1.0 - 2.0**-40)
    # below 2^-32 every |acc| < 2^31 rounds to pre-activation 0: multiplier 0 is exact
    assert quantize.quantize_multiplier(2.0**-33) == (0, 0)
    with pytest.raises(ValueError, match="0 <= shift <= 31"):
        requant_table(np.array([2**30]), np.array([32]), 4)
    with pytest.raises(ExportError, match=r"limits must lie in \[127, 2047\]"):
        quantize.quantize(
            small_policy(), np.zeros((10, 6), np.float32), limits=[np.full(8, 4095)] * 3
        )
