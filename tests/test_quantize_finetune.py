"""Quantisation-aware fine-tuning of the int8 header's weights (export/finetune.py)."""

from __future__ import annotations

import numpy as np
import pytest

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


def test_finetuning_reduces_the_int8_error_on_held_out_states(amplified):
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


def test_finetuned_weights_lie_on_their_int8_grid(amplified):
    policy, calib, _ = amplified
    ft = finetune.finetune(policy, calib, steps=20, max_samples=2000)
    assert ft.policy.model_hash == policy.model_hash and ft.policy.actor is policy.actor
    if ft.info["best_step"] is None:
        pytest.skip("20 steps did not beat the plain export")
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
