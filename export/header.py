"""C headers from the templates in ``export/templates``.

Each template is a complete, compilable C99 header with a tiny demo model in three
marked regions (``doc``, ``defines``, ``tables``). Generation replaces only those
regions, so every line of C outside them is reviewed, compiled and tested as written.
``python -m export.header`` rewrites the templates' demo regions (a test checks they
are current).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export import int_reference as ref
from export.model import FloatPolicy
from export.quant_params import QuantParams
from export.quantize import INTERVALS

TEMPLATES = Path(__file__).resolve().parent / "templates"
INT8_TEMPLATE = TEMPLATES / "policy_int8.h"
F32_TEMPLATE = TEMPLATES / "policy_f32.h"
REGIONS = ("doc", "defines", "tables")
PER_LINE = 16


@dataclass(frozen=True)
class Header:
    text: str
    weight_bytes: int  # constant tables (flash)
    scratch_bytes: int  # activation buffers on the caller's stack
    macs: int


def _pattern(name: str) -> re.Pattern:
    return re.compile(
        r"(?P<begin>^[^\n]*<<< generated: " + name + r" >>>[^\n]*\n)(?P<body>.*?)"
        r"(?P<end>^[^\n]*<<< end generated: " + name + r" >>>[^\n]*\n)",
        re.S | re.M,
    )


def render(template: str, regions: dict[str, str], keep_markers: bool) -> str:
    """Replace each marked region's body; drop the marker lines unless ``keep_markers``."""
    for name in REGIONS:
        pat = _pattern(name)
        if len(pat.findall(template)) != 1:
            raise ValueError(f"template lacks exactly one region {name!r}")
        body = regions[name].rstrip("\n") + "\n"

        def sub(m, body=body):
            return m["begin"] + body + m["end"] if keep_markers else body

        template = pat.sub(sub, template)
    return template


def region(template: str, name: str) -> str:
    return _pattern(name).search(template)["body"]


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


def pad4(n: int) -> int:
    return (n + 3) // 4 * 4


# The int8 kernel's layout (templates/policy_int8.h: qp_layer_t) ---------------------------
ROWS_PER_PASS = 4  # output rows per pass of the inner loop: QP_ROWS_PER_PASS in the template
INPUTS_PER_STEP = 8  # inputs per iteration of the inner loop (four int16 pairs)


def pad_rows(n: int) -> int:
    return -(-n // ROWS_PER_PASS) * ROWS_PER_PASS


def pad_inputs(n: int) -> int:
    return -(-n // INPUTS_PER_STEP) * INPUTS_PER_STEP


def interleave_rows(w: np.ndarray) -> np.ndarray:
    """(out, fan_in) int8 weights -> uint32 words, the order the kernel reads them: rows
    padded to a multiple of ROWS_PER_PASS and inputs to a multiple of 4 (zeros); for each
    block of rows, for each input pair k, for each row r of the block, the int16 pair
    (w[r, 2k] in the low half, w[r, 2k + 1] in the high half)."""
    out, fan_in = w.shape
    rows, cols = pad_rows(out), pad_inputs(fan_in)
    padded = np.zeros((rows, cols), dtype=np.int16)
    padded[:out, :fan_in] = w
    halves = padded.view(np.uint16).astype(np.uint32)
    pairs = halves[:, 0::2] | (halves[:, 1::2] << 16)  # (rows, cols / 2)
    return pairs.reshape(rows // ROWS_PER_PASS, ROWS_PER_PASS, cols // 2).transpose(0, 2, 1).ravel()


def unpack_weights(stored: np.ndarray, out: int, fan_in: int) -> np.ndarray:
    """The (out, fan_in) int8 matrix back from a stored ``qp_w`` table (the HIL reads
    headers with it): the inverse of ``interleave_rows``."""
    rows, words = pad_rows(out), pad_inputs(fan_in) // 2
    blocks = np.asarray(stored, dtype=np.uint32).reshape(-1, words, ROWS_PER_PASS)
    pairs = blocks.transpose(0, 2, 1).reshape(rows, words)
    halves = np.stack([pairs & 0xFFFF, pairs >> 16], axis=2).astype(np.uint16).view(np.int16)
    return halves.reshape(rows, 2 * words)[:out, :fan_in].astype(np.int8)


def requant_table(multiplier: np.ndarray, shift: np.ndarray, rows: int) -> np.ndarray:
    """Per row {2 * multiplier, 2^(shift - 1) or 0, shift} (uint32), padded with zero rows:
    the constants of the template's qp_high_mul_shift, which derives why."""
    m2 = multiplier.astype(np.uint64) * 2
    half = np.where(shift > 0, np.left_shift(1, np.maximum(shift, 1) - 1), 0).astype(np.uint64)
    table = np.zeros((rows, 3), dtype=np.uint64)
    table[: len(shift)] = np.stack([m2, half, shift.astype(np.uint64)], axis=1)
    return table.astype(np.uint32).ravel()


def unpack_requant(stored: np.ndarray, out: int) -> tuple[np.ndarray, np.ndarray]:
    """(multiplier int32, shift int32) of the first ``out`` rows of a ``qp_q`` table."""
    table = np.asarray(stored, dtype=np.uint32).reshape(-1, 3)[:out]
    return (table[:, 0] // 2).astype(np.int32), table[:, 2].astype(np.int32)


# The int16 tanh as the kernel evaluates it (templates/policy_int8.h: qp_activate16) -------
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


# The two headers ------------------------------------------------------------------------
def int_header(
    policy: FloatPolicy, params: QuantParams, notes: list[str] = (), keep_markers: bool = False
) -> Header:
    inq = params.input
    tables, sizes = [], []
    _table(tables, sizes, "float", "qp_in_mean", inq.mean, c_float)
    _table(tables, sizes, "float", "qp_in_div", inq.div, c_float)
    _table(tables, sizes, "int16_t", "qp_in_zero", inq.zero)
    rows = []
    template = INT8_TEMPLATE.read_text()
    if f"#define QP_ROWS_PER_PASS {ROWS_PER_PASS}\n" not in template:
        raise ValueError("ROWS_PER_PASS differs from QP_ROWS_PER_PASS in the int8 template")
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
    buf_len = max(max(pad_inputs(w), pad_rows(w)) for w in policy.widths)
    scratch = 2 * buf_len * 2
    weight_bytes = int(sum(sizes))
    defines = _defines(policy, len(params.layers), buf_len, weight_bytes, scratch) + [
        f"#define QP_IN_MIN ({inq.lo})" if inq.lo < 0 else f"#define QP_IN_MIN {inq.lo}",
        f"#define QP_IN_MAX {inq.hi}",
        f'#define QP_SCHEME "{params.scheme}"',
        f"#define QP_OUT_ONE {ref.OUT_ONE}",
        f"#define QP_HIDDEN_RELU {int(policy.activation == 'relu')}",
    ]
    extra = [
        "codes        int8 weights, int16 activations; action = code / QP_OUT_ONE",
        f"input        {params.input_mode} codes (QP_IN_MIN..QP_IN_MAX); activation "
        f"ranges calibrated on {params.calibration_size} states",
        f"memory       {weight_bytes} bytes of tables (flash), {scratch} bytes of stack "
        f"buffers, {policy.macs} MACs per call",
        *notes,
    ]
    doc = _doc(_wrap_doc(summary_lines(policy, params.scheme, extra)))
    text = render(
        template,
        {"doc": doc, "defines": "\n".join(defines), "tables": "\n".join(tables)},
        keep_markers,
    )
    return Header(text, weight_bytes, scratch, policy.macs)


def f32_header(policy: FloatPolicy, notes: list[str] = (), keep_markers: bool = False) -> Header:
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
    buf_len = max(policy.widths)
    scratch = 2 * buf_len * 4
    weight_bytes = int(sum(sizes))
    defines = _defines(policy, n, buf_len, weight_bytes, scratch)
    extra = [
        f"memory       {weight_bytes} bytes of tables (flash), {scratch} bytes of stack "
        f"buffers, {policy.macs} MACs per call",
        *notes,
    ]
    doc = _doc(_wrap_doc(summary_lines(policy, "float32", extra)))
    text = render(
        F32_TEMPLATE.read_text(),
        {"doc": doc, "defines": "\n".join(defines), "tables": "\n".join(tables)},
        keep_markers,
    )
    return Header(text, weight_bytes, scratch, policy.macs)


def _defines(
    policy: FloatPolicy, n_layers: int, buf_len: int, weight_bytes: int, scratch: int
) -> list[str]:
    return [
        f"#define QP_OBS_DIM {policy.obs_dim}",
        f'#define QP_OBS_LAYOUT "{policy.spec.layout_text}"',
        f"#define QP_ACT_DIM {policy.act_dim}",
        f'#define QP_MODEL_HASH "{policy.model_hash}"',
        f"#define QP_MACS {policy.macs}",
        f"#define QP_N_LAYERS {n_layers}",
        f"#define QP_BUF_LEN {buf_len}",
        f"#define QP_WEIGHT_BYTES {weight_bytes}",
        f"#define QP_SCRATCH_BYTES {scratch}",
    ]


# The templates' demo model --------------------------------------------------------------
def demo():
    """A tiny deterministic policy (3 -> 5 -> 4) and its integer parameters (the default
    scheme: int16 activations), calibrated on synthetic states: only the placeholder that
    keeps the templates compilable."""
    import torch

    from export.model import from_actor
    from export.quantize import quantize
    from sim.contract.actor import Actor
    from sim.contract.spec import PolicySpec

    torch.manual_seed(0)
    actor = Actor(3, 4, hidden=(5,))
    with torch.no_grad():
        actor.obs_mean.copy_(torch.tensor([0.0, 0.5, -1.0]))
        actor.obs_std.copy_(torch.tensor([1.0, 2.0, 0.5]))
    spec = PolicySpec(
        task="demo",
        task_overrides={},
        airframe="none",
        obs_dim=3,
        act_dim=4,
        obs_layout=(("demo_input", 3, "three numbers, for the template only"),),
        initial_action=0.0,
        action="4 numbers in [-1, 1], for the template only",
        rotor_speed_min=0.0,
        rotor_speed_max=1.0,
        rotor_speed_unit="none",
        control_hz=100.0,
    )
    policy = from_actor(actor, spec, 0, "demo")
    obs = np.random.default_rng(0).normal(size=(512, 3)).astype(np.float32)
    return policy, quantize(policy, obs)


def refresh_templates() -> list[Path]:
    """Rewrite the demo regions of both templates; returns the files that changed."""
    policy, params = demo()
    changed = []
    for path, header in [
        (INT8_TEMPLATE, int_header(policy, params, keep_markers=True)),
        (F32_TEMPLATE, f32_header(policy, keep_markers=True)),
    ]:
        if path.read_text() != header.text:
            path.write_text(header.text)
            changed.append(path)
    return changed


if __name__ == "__main__":
    for p in refresh_templates():
        print(f"rewrote {p}")
