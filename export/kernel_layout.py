"""The integer kernel's table layout (export/kernel/qp_kernel.h), in one place: the
transforms that write the tables (export/header.py) and their inverses (which the tests
use to check that the layout loses nothing), and the kernel file itself.

The kernel reads weights as int16 pairs, ROWS_PER_PASS output rows interleaved, with
rows and inputs padded; requantisation constants as {2m, h, s} per row; the int16 tanh
as a per-interval {intercept, slope} table stored by the code's bits 15..8.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

KERNEL = Path(__file__).resolve().parent / "kernel" / "qp_kernel.h"
INTERVALS = 256  # int16 tanh: pieces of the interpolated table, 256 codes each


class KernelError(RuntimeError):
    """The kernel file disagrees with this module about its layout."""


@functools.cache
def kernel() -> tuple[int, str]:
    """(QP_KERNEL_VERSION, text) of the kernel file, after checking that its
    QP_ROWS_PER_PASS is ROWS_PER_PASS (the layout below assumes it)."""
    text = KERNEL.read_text()
    rows = re.search(r"^#define QP_ROWS_PER_PASS (\d+)\b", text, re.M)
    if rows is None or int(rows[1]) != ROWS_PER_PASS:
        found = rows[1] if rows else "nothing"
        raise KernelError(
            f"{KERNEL}: QP_ROWS_PER_PASS is {found}, export/kernel_layout.py lays weights "
            f"out for {ROWS_PER_PASS}"
        )
    version = re.search(r"^#define QP_KERNEL_VERSION (\d+)\b", text, re.M)
    if version is None:
        raise KernelError(f"{KERNEL} defines no QP_KERNEL_VERSION")
    # The preprocessor cannot print a macro's value: the version check's message says it.
    if f'#error "qp_kernel.h is kernel version {version[1]},' not in text:
        raise KernelError(f"{KERNEL}: its version #error does not name version {version[1]}")
    return int(version[1]), text


# The weights and requantisation constants (qp_layer_t) --------------------------------
ROWS_PER_PASS = 4  # output rows per pass of the inner loop: the kernel's QP_ROWS_PER_PASS
INPUTS_PER_STEP = 8  # inputs per iteration of the inner loop (four int16 pairs)


def pad_rows(n: int) -> int:
    return -(-n // ROWS_PER_PASS) * ROWS_PER_PASS


def pad_inputs(n: int) -> int:
    return -(-n // INPUTS_PER_STEP) * INPUTS_PER_STEP


def interleave_rows(w: np.ndarray) -> np.ndarray:
    """(out, fan_in) int16 weight codes -> uint32 words, the order the kernel reads them: rows
    padded to a multiple of ROWS_PER_PASS and inputs to a multiple of 4 (zeros); for each
    block of rows, for each input pair k, for each row r of the block, the int16 pair
    (w[r, 2k] in the low half, w[r, 2k + 1] in the high half)."""
    out, fan_in = w.shape
    if np.abs(np.asarray(w, dtype=np.int64)).max(initial=0) > 32767:
        raise ValueError("weight codes must fit an int16 (|code| <= 32767)")
    rows, cols = pad_rows(out), pad_inputs(fan_in)
    padded = np.zeros((rows, cols), dtype=np.int16)
    padded[:out, :fan_in] = w
    halves = padded.view(np.uint16).astype(np.uint32)
    pairs = halves[:, 0::2] | (halves[:, 1::2] << 16)  # (rows, cols / 2)
    return pairs.reshape(rows // ROWS_PER_PASS, ROWS_PER_PASS, cols // 2).transpose(0, 2, 1).ravel()


def unpack_weights(stored: np.ndarray, out: int, fan_in: int) -> np.ndarray:
    """The (out, fan_in) int16 matrix back from a stored ``qp_w`` table (the HIL reads
    headers with it): the inverse of ``interleave_rows``."""
    rows, words = pad_rows(out), pad_inputs(fan_in) // 2
    blocks = np.asarray(stored, dtype=np.uint32).reshape(-1, words, ROWS_PER_PASS)
    pairs = blocks.transpose(0, 2, 1).reshape(rows, words)
    halves = np.stack([pairs & 0xFFFF, pairs >> 16], axis=2).astype(np.uint16).view(np.int16)
    return halves.reshape(rows, 2 * words)[:out, :fan_in].copy()


def requant_table(multiplier: np.ndarray, shift: np.ndarray, rows: int) -> np.ndarray:
    """Per row {2 * multiplier, 2^(shift - 1) or 0, shift} (uint32), padded with zero rows:
    the constants of the kernel's qp_high_mul_shift, which derives why. Its 32-bit shift
    takes 0..31 and 2m must fit 32 bits: anything else is refused, not wrapped."""
    multiplier, shift = np.asarray(multiplier, np.int64), np.asarray(shift, np.int64)
    if ((shift < 0) | (shift > 31)).any() or ((multiplier < 0) | (multiplier >= 2**31)).any():
        raise ValueError("requantisation needs 0 <= multiplier < 2^31 and 0 <= shift <= 31")
    m2 = multiplier.astype(np.uint64) * 2
    half = np.where(shift > 0, np.left_shift(1, np.maximum(shift, 1) - 1), 0).astype(np.uint64)
    table = np.zeros((rows, 3), dtype=np.uint64)
    table[: len(shift)] = np.stack([m2, half, shift.astype(np.uint64)], axis=1)
    return table.astype(np.uint32).ravel()


def unpack_requant(stored: np.ndarray, out: int) -> tuple[np.ndarray, np.ndarray]:
    """(multiplier int32, shift int32) of the first ``out`` rows of a ``qp_q`` table."""
    table = np.asarray(stored, dtype=np.uint32).reshape(-1, 3)[:out]
    return (table[:, 0] // 2).astype(np.int32), table[:, 2].astype(np.int32)


# The int16 tanh as the kernel evaluates it (qp_activate16) -----------------------------
def interp_table(lut: np.ndarray) -> np.ndarray:
    """The 257-entry int16 tanh table (``int_reference.interpolate``) as the kernel reads
    it: uint32 (512,), per interval k a pair {C_k, S_k} with S_k = 256 (lut[k+1] - lut[k])
    and C_k = 256 (256 lut[k] + (lut[k+1] - lut[k]) (32768 - 256 k) + 128), both mod 2^32,
    stored at pair index k ^ 128 (the interval of a code p is bits 15..8 of p in two's
    complement, whose top bit is flipped relative to k = (p + 32768) >> 8). Then
        t = C_k + S_k * p (mod 2^32) = 65536 * out + r, 0 <= r < 65536,
    for every code p in interval k: the output code is the top half of t (exactly
    interpolate's rounding), which is where the next layer's int16 pair wants it."""
    lut = np.asarray(lut, dtype=np.int64)
    k = np.arange(INTERVALS, dtype=np.int64)
    slope = lut[1:] - lut[:-1]
    c = 256 * (256 * lut[:-1] + slope * (32768 - 256 * k) + 128)
    table = np.zeros((INTERVALS, 2), dtype=np.uint32)
    table[k ^ 128, 0] = np.mod(c, 2**32).astype(np.uint32)
    table[k ^ 128, 1] = np.mod(256 * slope, 2**32).astype(np.uint32)
    return table.ravel()


def kernel_activation16(table: np.ndarray, pre: np.ndarray) -> np.ndarray:
    """The kernel's arithmetic on an ``interp_table``: output codes (int32) for saturated
    pre-activation codes ``pre`` in [-32768, 32767]."""
    p = np.asarray(pre, dtype=np.int64)
    k = (p.astype(np.uint64) >> np.uint64(8)) & np.uint64(255)  # bits 15..8, two's complement
    pairs = np.asarray(table, dtype=np.uint64).reshape(-1, 2)
    t = (pairs[k, 0] + pairs[k, 1] * p.astype(np.uint64)) & np.uint64(0xFFFFFFFF)
    return (t >> np.uint64(16)).astype(np.uint16).view(np.int16).astype(np.int32)


def lut_of_interp_table(table: np.ndarray) -> np.ndarray:
    """The int16 (257,) table back from an ``interp_table`` (the HIL reads headers with
    it): at the first code of each interval the interpolation is the table entry itself."""
    ends = np.arange(INTERVALS, dtype=np.int64) * 256 - 32768
    lut = np.zeros(INTERVALS + 1, dtype=np.int64)
    lut[:-1] = kernel_activation16(table, ends)
    last_slope = np.asarray(table, dtype=np.uint32).reshape(-1, 2)[255 ^ 128, 1].view(np.int32)
    lut[-1] = lut[-2] + int(last_slope) // 256
    return lut.astype(np.int16)
