"""The int8 kernel's fused requantisation (policy.h qp_high_mul_shift) against gemmlowp's
two roundings in export/int_reference.py, on edge cases and ties rollout states rarely
reach, and the weight layout's round trip. The compiled kernel itself is checked bit
for bit by tests/test_header.py (host) and tests/test_hil.py (emulated Cortex-M4)."""

from __future__ import annotations

import numpy as np

from export import int_reference as ref
from export.header import interleave_rows, requant_table, unpack_requant, unpack_weights
from export.quantize import quantize_multiplier


def fused(acc: np.ndarray, table: np.ndarray) -> np.ndarray:
    """The C expression, in exact unsigned 64-bit arithmetic, row by row."""
    m2, half, shift = (table.reshape(-1, 3)[:, k].astype(np.uint64) for k in range(3))
    neg = acc < 0
    mag = np.abs(acc.astype(np.int64)).astype(np.uint64)
    lo = np.where(neg, np.uint64(2**31 - 2), np.uint64(2**31))
    t = mag * m2 + (half << np.uint64(32)) + lo
    r = ((t >> np.uint64(32)) >> shift).astype(np.int64)
    return np.where(neg, -r, r)


def two_roundings(acc, mult, shift):
    return ref.rounding_divide_by_pot(ref.saturating_rounding_doubling_high_mul(acc, mult), shift)


def test_fused_requantisation_equals_gemmlowp():
    rng = np.random.default_rng(0)
    edges = np.array([0, 1, -1, 2, -2, 2**31 - 1, -(2**31) + 1, 2**30, -(2**30)], dtype=np.int64)
    for _ in range(200):
        shift = int(rng.integers(0, 32))
        m = rng.uniform(0.5, 1.0) * 2.0**-shift
        mult, s = quantize_multiplier(m)
        mult = np.array([mult]) if mult else np.array([2**30])
        s = np.array([s])
        acc = np.concatenate([edges, rng.integers(-(2**31) + 1, 2**31, 2000)])
        # Exact ties of both roundings: products landing on multiples of 2^(30 + s).
        ties = (np.arange(-50, 50) * 2 + 1) << max(int(s[0]) - 1, 0)
        acc = np.concatenate([acc, ties[np.abs(ties) < 2**31]]).astype(np.int64)
        table = requant_table(mult, s, 1)
        want = two_roundings(acc, np.full(acc.shape, mult[0]), np.full(acc.shape, s[0]))
        got = fused(acc, np.tile(table, len(acc)))
        np.testing.assert_array_equal(got, want, err_msg=f"mult {mult[0]} shift {s[0]}")


def test_zero_multiplier_rows():
    acc = np.array([-(2**31) + 1, -5, 0, 7, 2**31 - 1], dtype=np.int64)
    table = requant_table(np.array([0]), np.array([0]), 1)
    np.testing.assert_array_equal(fused(acc, np.tile(table, len(acc))), 0)


def test_layouts_round_trip():
    rng = np.random.default_rng(1)
    for out, fan_in in [(5, 3), (64, 22), (4, 64), (7, 9)]:
        w = rng.integers(-127, 128, (out, fan_in)).astype(np.int8)
        np.testing.assert_array_equal(unpack_weights(interleave_rows(w), out, fan_in), w)
        mult = rng.integers(2**30, 2**31, out).astype(np.int32)
        shift = rng.integers(0, 32, out).astype(np.int32)
        m, s = unpack_requant(requant_table(mult, shift, -(-out // 4) * 4), out)
        np.testing.assert_array_equal(m, mult)
        np.testing.assert_array_equal(s, shift)
