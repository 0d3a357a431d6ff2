"""Quantisation-aware fine-tuning of policy.h's weights (export/finetune.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from export import finetune, quantize, rollouts
from export import int_reference as ref
from export import model as model_mod
from export.fixtures import make_checkpoint


@pytest.fixture(scope="module")
def amplified(tmp_path_factory):
    """A fresh actor with every weight doubled: its plain int8 export misses the mean target."""
    d = tmp_path_factory.mktemp("finetune")
    policy = model_mod.load(make_checkpoint(d / "checkpoint.pt", gain=2.0))
    calib = rollouts.policy_states(policy.act, policy.spec, 10000, 1000)
    test = rollouts.policy_states(policy.act, policy.spec, 10000, 2000)
    return policy, calib, test


def test_finetuning_reduces_the_error_on_held_out_states(amplified):
    policy, calib, test = amplified
    weights = [w.copy() for w in policy.weights]
    want = policy.act(test).astype(np.float64)
    plain = quantize.quantize(policy, calib, max_samples=len(calib))
    tuned, info = finetune.quantize_finetuned(policy, calib, steps=200)
    before = np.abs(ref.act(plain, test) - want)
    after = np.abs(ref.act(tuned, test) - want)
    assert info["best_step"] is not None and info["loss_after"] < info["loss_before"]
    assert after.mean() < 0.97 * before.mean()
    assert after.max() < before.max()
    # the float policy itself is untouched, and the header carries its hash
    assert all((a == b).all() for a, b in zip(policy.weights, weights, strict=True))
    assert tuned.model_hash == policy.model_hash
    assert (tuned.input.mean == policy.mean).all()


def test_fake_quantised_forward_simulates_the_integer_pipeline(amplified):
    """The forward pass the fine-tuning trains is the integer model up to requantisation
    rounding: the int16 grids and the interpolated table, far closer to it than to the
    float policy."""
    policy, calib, _ = amplified
    obs = calib[:4000]
    params = quantize.quantize(policy, obs)
    net = finetune._FakeQuant(finetune._dequantized(params, policy))
    scales = [layer.pre_scale for layer in params.layers]
    z = torch.tensor(ref.quantize_input(params, obs) * params.input.scale)
    with torch.no_grad():
        fake = net(z, scales).numpy()
    same = np.abs(fake - ref.act(params, obs))
    other = np.abs(fake - policy.act(obs))
    assert same.mean() < 0.1 * other.mean()
    assert same.max() < 0.005 and same.mean() < 5e-4
    # Hidden and output values lie on the 1/32768 grid of the table's codes.
    codes = fake * 32768
    np.testing.assert_allclose(codes, np.round(codes), atol=1e-6)


def test_finetuned_weights_lie_on_their_int8_grid(amplified):
    policy, calib, _ = amplified
    # 100 steps: 20 sometimes did not beat the plain export (with one torch thread, as
    # after a training test), and then there would be nothing on the grid to check.
    ft = finetune.finetune(policy, calib, steps=100, max_samples=2000)
    assert ft.policy.model_hash == policy.model_hash and ft.policy.actor is policy.actor
    assert ft.info["best_step"] is not None, "100 fine-tuning steps never beat the plain export"
    for w in ft.policy.weights:
        scale = np.abs(w.astype(np.float64)).max(axis=1, keepdims=True) / 127
        codes = w / scale
        assert np.abs(codes - np.round(codes)).max() < 1e-3
    # on the grid, error-compensating and plain rounding choose the same codes
    kw = {"max_samples": len(calib), "ranges": ft.ranges}
    a = quantize.quantize(ft.policy, calib, rounding="compensated", **kw)
    b = quantize.quantize(ft.policy, calib, rounding="nearest", **kw)
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert (la.weight == lb.weight).all() and (la.bias == lb.bias).all()
