"""The kernel's arithmetic against export/int_reference.py: the fused requantisation
(policy.h qp_high_mul_shift) against gemmlowp's two roundings, and the int16 tanh as the
kernel evaluates it (one multiply-add on a per-interval table) against the interpolation
formula, on edge cases and ties rollout states rarely reach; the layouts' round trips;
and the compiled Cortex-M4 kernel (its Thumb-2 assembly) in QEMU, bit for bit, for tanh
and ReLU actors. tests/test_header.py checks the compiled header on the host and
tests/test_hil.py the whole HIL on the emulated board."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from firmware_support import FIRMWARE
from toolchain import require_tool

from export import header as header_mod
from export import int_reference as ref
from export import model as model_mod
from export import quantize, rollouts
from export.fixtures import make_checkpoint
from export.kernel_layout import (
    interleave_rows,
    interp_table,
    kernel_activation16,
    lut_of_interp_table,
    requant_table,
    unpack_requant,
    unpack_weights,
)
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
        w = rng.integers(-2047, 2048, (out, fan_in)).astype(np.int16)
        w.flat[0] = -32767  # any int16 code survives the layout
        back = unpack_weights(interleave_rows(w), out, fan_in)
        assert back.dtype == np.int16
        np.testing.assert_array_equal(back, w)
        mult = rng.integers(2**30, 2**31, out).astype(np.int32)
        shift = rng.integers(0, 32, out).astype(np.int32)
        m, s = unpack_requant(requant_table(mult, shift, -(-out // 4) * 4), out)
        np.testing.assert_array_equal(m, mult)
        np.testing.assert_array_equal(s, shift)


def test_kernel_file_is_checked_against_the_layout(tmp_path, monkeypatch):
    """kernel_layout lays weights out for ROWS_PER_PASS rows: a kernel that reads another
    number of rows per pass, or whose version #error names another version, is refused
    before any header is written."""
    from export import kernel_layout

    text = kernel_layout.KERNEL.read_text()
    v = kernel_layout.kernel()[0]
    assert kernel_layout.kernel() == (v, text) and f"#define QP_KERNEL_VERSION {v}\n" in text
    for bad, why in [
        (text.replace("#define QP_ROWS_PER_PASS 4", "#define QP_ROWS_PER_PASS 8"), "is 8"),
        (
            text.replace(f"is kernel version {v},", f"is kernel version {v + 6},"),
            f"name version {v}",
        ),
    ]:
        (tmp_path / "qp_kernel.h").write_text(bad)
        monkeypatch.setattr(kernel_layout, "KERNEL", tmp_path / "qp_kernel.h")
        kernel_layout.kernel.cache_clear()
        try:
            with pytest.raises(kernel_layout.KernelError, match=why):
                kernel_layout.kernel()
        finally:
            monkeypatch.undo()
            kernel_layout.kernel.cache_clear()


def test_kernel_tanh16_equals_the_interpolation_for_every_code():
    """qp_activate16's t = C + S * p (mod 2^32), top half, against interpolate() for all
    65,536 codes: tanh tables of several ranges, and arbitrary tables (any slope sign,
    the extreme codes) so that no property of tanh hides an error."""
    rng = np.random.default_rng(2)
    tables = [quantize.tanh_table16(r / 32767) for r in (0.05, 1.0, 3.0, 5.545, 9.0)]
    tables += [rng.integers(-32767, 32768, 257) for _ in range(3)]
    tables.append(np.resize([32767, -32767], 257))
    pre = np.arange(-32768, 32768)
    for lut in tables:
        table = interp_table(lut)
        assert table.dtype == np.uint32 and table.size == 512
        np.testing.assert_array_equal(kernel_activation16(table, pre), ref.interpolate(lut, pre))
        np.testing.assert_array_equal(lut_of_interp_table(table), lut)


def test_kernel_table_is_stored_by_the_code_bits():
    """Pair k of the table serves the codes whose bits 15..8 are k: interval k ^ 128."""
    lut = quantize.tanh_table16(2.0 / 32767)
    pairs = interp_table(lut).reshape(256, 2)
    slopes = pairs[:, 1].view(np.int32) // 256
    np.testing.assert_array_equal(slopes[np.arange(256) ^ 128], np.diff(lut.astype(np.int64)))
    assert slopes[0] == lut[129] - lut[128]  # codes 0..255: the interval just above 0


# The compiled kernel on the emulated Cortex-M4 --------------------------------------------
QEMU_STATES = 400
ACTIVATIONS = ["tanh", "relu"]


@pytest.fixture(scope="module")
def arm_models(tmp_path_factory):
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    d = tmp_path_factory.mktemp("kernel")
    out = {}
    for activation in ("tanh", "relu"):
        ckpt = make_checkpoint(d / f"{activation}.pt", activation=activation, seed=5)
        policy = model_mod.load(ckpt)
        calib = rollouts.policy_states(policy.act, policy.spec, 2000, 21)
        out[activation] = (policy, calib)
    return d, out


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_cortex_m4_kernel_is_bit_exact_in_qemu(arm_models, activation):
    """The firmware built for the header (arm-none-eabi-gcc -O2, the Thumb-2 assembly of
    the inner loop and of requantisation and activation) answers every STEP with exactly
    int_reference's codes. Protocol v4: the board builds each observation from a STEP's
    inputs and its kept blocks, so the states are whole episodes the integer reference
    flew (a RESET before each), and the codes are int_reference's on the sim's own
    observations."""
    from firmware_bridge.emulator import Emulator, firmware_dir
    from firmware_bridge.hil import BoardAnswer, recorded_episodes
    from sim import observation

    d, models = arm_models
    policy, calib = models[activation]
    params = quantize.quantize(policy, calib)
    episodes = recorded_episodes(lambda o: ref.act(params, o), policy.spec, QEMU_STATES, 22)
    path = d / f"kernel_{activation}.h"
    header_mod.write_header(path, header_mod.int_header(policy, params, calib[:8]).text)
    try:
        with Emulator(path, expected_hash=policy.model_hash) as emu:
            answer = BoardAnswer(emu.link, observation.wire_columns(policy.spec.obs_layout))
            actions = []
            for obs in episodes:
                answer.start()
                actions += [answer(o) for o in obs]
    finally:  # the build is named after the header: leave no kernel_* builds behind
        build = firmware_dir("stm32f405", path)
        if build.is_relative_to(FIRMWARE / "build") and build.name == path.stem:
            shutil.rmtree(build, ignore_errors=True)
    states = np.concatenate(episodes)
    want = ref.forward_codes(params, states)
    np.testing.assert_array_equal(ref.codes_of(np.array(actions, dtype=np.float32)), want)
    assert len(np.unique(want)) > 50  # the states exercise many codes, not a few
