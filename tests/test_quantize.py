"""Unit tests of the int8 scheme: fixed-point primitives, parameters, overflow proof."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from export import int_reference as ref
from export import quantize
from export.model import ExportError, from_actor
from train.policy import Actor


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


def test_tanh_table_is_exact_to_half_an_output_step():
    scale, zero = quantize.affine_range(-3.0, 2.0)
    lut, out_scale, out_zero = quantize.activation_lut("tanh", scale, zero)
    assert (out_scale, out_zero) == (1 / 128, 0) and lut.dtype == np.int8 and lut.size == 256
    x = (np.arange(-128, 128) - zero) * scale
    err = np.abs(lut * out_scale - np.tanh(x))
    clipped = np.tanh(x) >= 127.5 / 128  # +1 is not representable: code 127 = 0.992
    assert err[~clipped].max() <= 0.5 / 128 + 1e-12


def small_policy(obs_dim=6, hidden=(8, 8), activation="tanh", seed=0):
    torch.manual_seed(seed)
    actor = Actor(obs_dim, 4, hidden, activation)
    with torch.no_grad():
        actor.obs_mean.uniform_(-1, 1)
        actor.obs_std.uniform_(0.5, 2)
    return from_actor(actor, {"task": "hover"}, 0, "unit")


@pytest.mark.parametrize("mode", quantize.INPUT_MODES)
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_params_respect_the_scheme(mode, activation):
    policy = small_policy(activation=activation)
    obs = np.random.default_rng(1).normal(size=(2000, policy.obs_dim)).astype(np.float32)
    params = quantize.quantize(policy, obs, mode)
    for layer in params.layers:
        assert layer.weight.dtype == np.int8 and np.abs(layer.weight).max() <= 127
        # Symmetric per output channel: every row uses its full range.
        assert (np.abs(layer.weight).max(axis=1) == 127).all()
        assert layer.bias.dtype == np.int32 and layer.lut.dtype == np.int8
        assert ((layer.multiplier >= 2**30) | (layer.multiplier == 0)).all()
        assert ((layer.shift >= 0) & (layer.shift <= 31)).all()
        assert layer.acc_bound < 2**31
    assert params.layers[-1].out_scale == 1 / 128 and params.layers[-1].out_zero == 0
    err = np.abs(ref.act(params, obs) - policy.act(obs))
    assert err.max() < 0.05 and err.mean() < 0.01


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
    policy = from_actor(actor, {"task": "hover"}, 0, "wide")
    with pytest.raises(ExportError, match=r"layer 1 \(70000 -> 4\).*overflow.*2\^31"):
        quantize.quantize(policy, np.zeros((4, 4), np.float32))


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
    comp = quantize.compensated_rounding(w, x)
    assert comp.dtype == np.int64 and np.abs(comp).max() <= 127
    assert np.abs(comp - w).max() <= 127  # still codes of the same per-channel scale

    def err(q):
        return np.mean((x @ (q - w).T) ** 2)

    assert err(comp) < 0.7 * err(nearest)
