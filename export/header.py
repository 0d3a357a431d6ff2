"""The data headers ``policy.h`` (integer scheme) and ``policy_f32.h`` (float32), and the
kernel file written beside them.

A data header holds no code: a doc comment on the model, its dimensions, hash and
scheme, the tables, a self-test vector, and ``QP_DATA_KERNEL_VERSION``, the version of
the hand-written kernel (export/kernel/qp_kernel.h) it was generated for. It includes
``qp_kernel.h`` from its own directory twice: once for the API and the kernel's types,
and, in the one translation unit that defines QP_POLICY_IMPLEMENTATION, after its tables
for the code. ``write_header`` writes a data header and the kernel beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export import int_reference as ref
from export.bundle import float_hash, int_hash
from export.kernel_layout import (
    interleave_rows,
    interp_table,
    kernel,
    pad_inputs,
    pad_rows,
    requant_table,
)
from export.model import FloatPolicy
from export.quant_params import WEIGHT_CODE_MAX, QuantParams
from export.report import TARGETS
from export.state_layout import STATE_NAME, STATE_SOURCE, state_values
from sim.contract.files import atomic_write
from sim.contract.spec import layout_text
from sim.observation import board_blocks

KERNEL_NAME = "qp_kernel.h"  # the data headers include it by this name, from their directory
PER_LINE = 16
SELFTEST_N = 8  # observations in a header's self-test vector
# float32 self-test: libm's tanhf may differ from torch's tanh in the last bits; the
# export's own bound on the float header (report.TARGETS) is the tolerance.
SELFTEST_TOLERANCE = TARGETS["f32_header_max_abs_diff"]


@dataclass(frozen=True)
class Header:
    text: str
    weight_bytes: int  # constant tables (flash)
    scratch_bytes: int  # activation buffers on the caller's stack
    macs: int


# C literals -----------------------------------------------------------------------------
def c_float(v) -> str:
    """A float literal that parses back to exactly this float32 value."""
    v = np.float32(v)
    if not np.isfinite(v):
        raise ValueError(f"non-finite value {v} in a table")
    s = repr(float(v))
    if "." not in s and "e" not in s:
        s += ".0"
    return s + "f"


def c_int(v) -> str:
    v = int(v)
    if v == -(2**31):
        return "(-2147483647 - 1)"
    return str(v)


def c_hex32(v) -> str:
    return f"0x{int(v):08x}u"


def c_array(ctype: str, name: str, values, fmt=c_int, per_line: int = PER_LINE) -> str:
    values = list(np.asarray(values).ravel())
    items = [fmt(v) for v in values]
    head = f"static const {ctype} {name}[{len(items)}] = {{"
    one = head + ", ".join(items) + "};"
    if len(one) <= 100:
        return one
    lines = [head]
    for i in range(0, len(items), per_line):
        lines.append("    " + ", ".join(items[i : i + per_line]) + ",")
    lines.append("};")
    return "\n".join(lines)


CTYPE_BYTES = {"float": 4, "int8_t": 1, "uint8_t": 1, "int16_t": 2, "int32_t": 4}
CTYPE_BYTES["uint32_t"] = 4


def _table(
    tables: list[str], sizes: list[int], ctype: str, name: str, values, fmt=c_int, per_line=16
):
    tables.append(c_array(ctype, name, values, fmt, per_line))
    sizes.append(CTYPE_BYTES[ctype] * int(np.asarray(values).size))


def _doc(lines: list[str]) -> str:
    return "\n".join((" *   " + line).rstrip() for line in lines)


def summary_lines(policy: FloatPolicy, scheme: str, extra: list[str]) -> list[str]:
    spec = policy.spec
    widths = " -> ".join(str(w) for w in policy.widths)
    lines = [
        f"source       {policy.source} (training step {policy.step})",
        f"task         {spec.task} on airframe {spec.airframe}, {spec.control_hz} Hz",
        f"network      {widths}; hidden {policy.activation}, output tanh; scheme {scheme}",
        f"model hash   {policy.model_hash}",
        "             (sha256 of the float weights: export/model.py weights_hash)",
    ]
    lines += extra
    lines.append("observation  (index: name [size] meaning)")
    offset = 0
    for name, size, meaning in spec.obs_layout:
        lines.append(f"  {offset:3d}: {name} [{size}] {meaning}")
        offset += size
    lines.append(f"action       {spec.action}")
    return lines


def _wrap_doc(lines: list[str], width: int = 90) -> list[str]:
    out = []
    for line in lines:
        indent = " " * (len(line) - len(line.lstrip()) + (13 if line[:1] != " " else 4))
        while len(line) > width:
            cut = line.rfind(" ", 0, width)
            if cut <= len(indent):
                break
            out.append(line[:cut])
            line = indent + line[cut + 1 :]
        out.append(line)
    return out


# The two data headers -------------------------------------------------------------------
def selftest_states(obs: np.ndarray, n: int = SELFTEST_N) -> np.ndarray:
    """``n`` rows of ``obs`` spread evenly over it (rollout states: whole episodes)."""
    obs = np.asarray(obs, dtype=np.float32)
    if len(obs) < n:
        raise ValueError(f"{len(obs)} states for a self-test vector of {n}")
    return obs[np.linspace(0, len(obs) - 1, n).round().astype(int)]


def int_header(
    policy: FloatPolicy, params: QuantParams, selftest_obs: np.ndarray, notes: list[str] = ()
) -> Header:
    """policy.h: ``params``' tables, and ``selftest_obs`` with int_reference's codes for
    them (the kernel must reproduce them exactly)."""
    inq = params.input
    tables, sizes = [], []
    _table(tables, sizes, "float", "qp_in_mean", inq.mean, c_float)
    _table(tables, sizes, "float", "qp_in_div", inq.div, c_float)
    _table(tables, sizes, "int16_t", "qp_in_zero", inq.zero)
    rows = []
    for i, layer in enumerate(params.layers):
        out, fan_in = layer.shape
        bias = np.zeros(pad_rows(out), dtype=np.int64)
        bias[:out] = layer.bias
        _table(tables, sizes, "uint32_t", f"qp_w{i}", interleave_rows(layer.weight), c_hex32, 8)
        _table(tables, sizes, "int32_t", f"qp_b{i}", bias)
        q = requant_table(layer.multiplier, layer.shift, pad_rows(out))
        _table(tables, sizes, "uint32_t", f"qp_q{i}", q, lambda v: f"{int(v)}u", 8)
        lut = f"qp_lut{i}"
        if layer.activation == "tanh":
            _table(tables, sizes, "uint32_t", lut, interp_table(layer.lut), c_hex32, 8)
        else:  # ReLU: max(pre, 0), no table
            lut = "NULL"
        rows.append(
            f"    {{{pad_inputs(fan_in) // 2}, {out}, {pad_rows(out)}, "
            f"qp_w{i}, qp_b{i}, qp_q{i}, {lut}}},"
        )
    tables.append("static const qp_layer_t qp_layers[QP_N_LAYERS] = {\n" + "\n".join(rows) + "\n};")
    obs = np.asarray(selftest_obs, dtype=np.float32)
    tables.append(_selftest_obs(obs))
    tables.append(c_array("int16_t", "qp_selftest_codes", ref.forward_codes(params, obs)))
    buf_len = max(max(pad_inputs(w), pad_rows(w)) for w in policy.widths)
    scratch = 2 * buf_len * 2
    weight_bytes = int(sum(sizes))
    defines = [
        "#define QP_SCHEME_ID 1",
        f'#define QP_SCHEME "{params.scheme}"',
        *_defines(
            policy, len(params.layers), buf_len, weight_bytes, scratch, int_hash(policy, params)
        ),
        f"#define QP_IN_MIN ({inq.lo})" if inq.lo < 0 else f"#define QP_IN_MIN {inq.lo}",
        f"#define QP_IN_MAX {inq.hi}",
        f"#define QP_OUT_ONE {ref.OUT_ONE}",
        f"#define QP_HIDDEN_RELU {int(policy.activation == 'relu')}",
        f"#define QP_SELFTEST_N {len(obs)}",
    ]
    extra = [
        f"codes        weights of up to {WEIGHT_CODE_MAX.bit_length() + 1} bits (|code| <= "
        f"{WEIGHT_CODE_MAX}, a limit per output channel), int16 activations; "
        "action = code / QP_OUT_ONE",
        f"input        {params.input_mode} codes (QP_IN_MIN..QP_IN_MAX); activation "
        f"ranges calibrated on {params.calibration_size} states",
        f"memory       {weight_bytes} bytes of tables (flash), {scratch} bytes of stack "
        f"buffers, {policy.macs} MACs per call",
        f"self-test    {len(obs)} of the test states and their exact action codes "
        "(qp_policy_selftest)",
        *notes,
    ]
    doc = summary_lines(policy, params.scheme, extra)
    text = _render("policy.h", "QP_POLICY_INT_H", doc, defines, tables)
    return Header(text, weight_bytes, scratch, policy.macs)


def f32_header(policy: FloatPolicy, selftest_obs: np.ndarray, notes: list[str] = ()) -> Header:
    """policy_f32.h: the float weights, and ``selftest_obs`` with the torch policy's
    actions for them (checked within SELFTEST_TOLERANCE)."""
    tables, sizes = [], []
    _table(tables, sizes, "float", "qp_in_mean", policy.mean, c_float)
    _table(tables, sizes, "float", "qp_in_std", policy.std, c_float)
    tables.append(f"static const float qp_obs_clip = {c_float(policy.obs_clip)};")
    sizes.append(4)
    rows = []
    n = len(policy.weights)
    for i, (w, b) in enumerate(zip(policy.weights, policy.biases, strict=True)):
        _table(tables, sizes, "float", f"qp_w{i}", w, c_float)
        _table(tables, sizes, "float", f"qp_b{i}", b, c_float)
        relu = int(policy.activation == "relu" and i < n - 1)
        rows.append(f"    {{{w.shape[1]}, {w.shape[0]}, {relu}, qp_w{i}, qp_b{i}}},")
    tables.append("static const qp_layer_t qp_layers[QP_N_LAYERS] = {\n" + "\n".join(rows) + "\n};")
    obs = np.asarray(selftest_obs, dtype=np.float32)
    tables.append(_selftest_obs(obs))
    tables.append(c_array("float", "qp_selftest_action", policy.act(obs), c_float))
    buf_len = max(policy.widths)
    scratch = 2 * buf_len * 4
    weight_bytes = int(sum(sizes))
    defines = [
        "#define QP_SCHEME_ID 2",
        '#define QP_SCHEME "float32"',
        *_defines(policy, n, buf_len, weight_bytes, scratch, float_hash(policy)),
        f"#define QP_SELFTEST_N {len(obs)}",
        f"#define QP_SELFTEST_TOLERANCE {c_float(SELFTEST_TOLERANCE)}",
    ]
    extra = [
        f"memory       {weight_bytes} bytes of tables (flash), {scratch} bytes of stack "
        f"buffers, {policy.macs} MACs per call",
        f"self-test    {len(obs)} of the test states and the torch policy's actions, within "
        "QP_SELFTEST_TOLERANCE (qp_policy_selftest)",
        *notes,
    ]
    doc = summary_lines(policy, "float32", extra)
    text = _render("policy_f32.h", "QP_POLICY_F32_H", doc, defines, tables)
    return Header(text, weight_bytes, scratch, policy.macs)


def _selftest_obs(obs: np.ndarray) -> str:
    return c_array("float", "qp_selftest_obs", obs, c_float, 8)


def _state_defines(policy: FloatPolicy) -> list[str]:
    """The lines qp_state.h reads: the board's blocks of the observation (state_layout)."""
    v = state_values(policy.spec)
    blocks = ", ".join(f"{{{kind}, {size}}}" for kind, size in v["blocks"])
    return [
        f"#define QP_IN_DIM {v['in_dim']}",
        f'#define QP_BOARD_BLOCKS "{layout_text(board_blocks(policy.spec.obs_layout))}"',
        f"#define QP_STATE_BLOCKS {{{blocks}}}",
        f"#define QP_IN_POSITION_ERROR {v['in_position_error']}",
        f"#define QP_HISTORY {v['history']}",
        f"#define QP_INTEGRAL_LIMIT {c_float(v['integral_limit'])}",
        f"#define QP_INTEGRAL_DT {c_float(v['integral_dt'])}",
        f"#define QP_INITIAL_ACTION {c_float(v['initial_action'])}",
    ]


def _defines(
    policy: FloatPolicy,
    n_layers: int,
    buf_len: int,
    weight_bytes: int,
    scratch: int,
    data_hash: str,
) -> list[str]:
    return [
        f"#define QP_OBS_DIM {policy.obs_dim}",
        f'#define QP_OBS_LAYOUT "{policy.spec.layout_text}"',
        f"#define QP_ACT_DIM {policy.act_dim}",
        f'#define QP_MODEL_HASH "{policy.model_hash}"',
        f'#define QP_DATA_HASH "{data_hash}"',
        f"#define QP_MACS {policy.macs}",
        f"#define QP_N_LAYERS {n_layers}",
        f"#define QP_BUF_LEN {buf_len}",
        f"#define QP_WEIGHT_BYTES {weight_bytes}",
        f"#define QP_SCRATCH_BYTES {scratch}",
        *_state_defines(policy),
    ]


def _render(name: str, guard: str, doc: list[str], defines: list[str], tables: list[str]) -> str:
    version, _ = kernel()
    body = "\n".join(tables)
    # The kernel's own check fires too and names its version; this one names ours.
    mismatch = (
        f'#error "{name} was generated for kernel version {version}: use the {KERNEL_NAME} '
        'exported with it, or export again"'
    )
    return f"""/* {name} - quadpilot flight policy: the data of one model for {KERNEL_NAME}.
 *
 * Generated by `python -m export`; do not edit it, regenerate it. It holds no code: the
 * kernel is {KERNEL_NAME} (kernel version {version}), which must lie beside this file
 * (export writes the two together). In exactly one .c file
 *     #define QP_POLICY_IMPLEMENTATION
 *     #include "{name}"
 * and include it anywhere else for the API (documented in {KERNEL_NAME}):
 *     int qp_policy_act(const float obs[QP_OBS_DIM], float action[QP_ACT_DIM]);
 *     int qp_policy_selftest(void);   QP_OK, or QP_ERR_SELFTEST: do not fly it
 *
 * THIS MODEL
{_doc(_wrap_doc(doc))}
 */
#ifndef {guard}
#define {guard}

#define QP_DATA_KERNEL_VERSION {version}
{chr(10).join(defines)}

#include "{KERNEL_NAME}"
#if QP_KERNEL_VERSION != {version}
{mismatch}
#endif

#endif /* {guard} */

#if defined(QP_POLICY_IMPLEMENTATION) && !defined({guard}_DATA)
#define {guard}_DATA
{body}

/* The tables are defined: now the kernel's code. */
#define QP_KERNEL_DATA_READY
#include "{KERNEL_NAME}"
#endif /* QP_POLICY_IMPLEMENTATION */
"""


def write_file(path: Path, data: bytes) -> None:
    """``data`` to ``path`` through a temporary file renamed into place."""
    atomic_write(Path(path), lambda tmp: tmp.write_bytes(data))


def write_header(path: Path, text: str) -> None:
    """A data header at ``path``, and beside it the kernel it includes and the
    board-state module (qp_state.h) that builds its observation."""
    path = Path(path)
    write_file(path.parent / KERNEL_NAME, kernel()[1].encode())
    write_file(path.parent / STATE_NAME, STATE_SOURCE.read_bytes())
    write_file(path, text.encode())
