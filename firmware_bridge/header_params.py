"""Read a generated policy header back: its scheme, model hash and integer tables.

The HIL compares the board with the numpy integer model (export/int_reference.py) fed
with the tables of the very header the firmware was built from, so a board, a header
and a reference can never silently disagree about which numbers they hold. The header
is a data header as export/header.py writes it; the kernel's layout is undone with the
inverses in export/kernel_layout.py (``unpack_weights``, ``lut_of_interp_table``), the
module that also lays the tables out, so it is defined in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.kernel_layout import lut_of_interp_table, unpack_requant, unpack_weights
from firmware_bridge.protocol import Scheme

_DEFINE = re.compile(r"^#define (QP_\w+) (.+)$", re.M)
_TABLE = re.compile(r"static const (\w+) (qp_\w+)\[(\d+)\] = \{(.*?)\};", re.S)
_LAYERS = re.compile(r"static const qp_layer_t qp_layers\[\w+\] = \{(.*?)\n\};", re.S)
_DTYPES = {"float": np.float32, "int8_t": np.int8, "uint8_t": np.uint8}
_DTYPES |= {"int16_t": np.int16, "int32_t": np.int32, "uint32_t": np.uint32}


class HeaderError(ValueError):
    """The file is not a policy header this version of the bridge can read."""


@dataclass(frozen=True)
class HeaderInput:
    """What export/int_reference.py reads of ``QuantParams.input``."""

    mean: np.ndarray
    div: np.ndarray
    zero: np.ndarray
    lo: int
    hi: int


@dataclass(frozen=True)
class HeaderLayer:
    """What export/int_reference.py reads of one ``LayerQuant``."""

    weight: np.ndarray  # int16 codes (out, fan_in), in natural order
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    lut: np.ndarray | None  # tanh: int16 (257,); None: ReLU
    activation: str  # "tanh" or "relu"


@dataclass(frozen=True)
class HeaderParams:
    """The integer model held by policy.h, shaped for int_reference."""

    input: HeaderInput
    layers: tuple[HeaderLayer, ...]


@dataclass(frozen=True)
class PolicyHeader:
    path: Path
    defines: dict[str, str]
    text: str

    @property
    def scheme(self) -> Scheme:
        return Scheme(int(self.defines["QP_SCHEME_ID"]))

    @property
    def model_hash(self) -> str:
        return self.defines["QP_MODEL_HASH"].strip('"')

    @property
    def obs_dim(self) -> int:
        return int(self.defines["QP_OBS_DIM"])

    @property
    def obs_layout(self) -> str | None:
        """QP_OBS_LAYOUT, ``name:size,...`` (None in headers that predate it)."""
        v = self.defines.get("QP_OBS_LAYOUT")
        return None if v is None else v.strip('"')

    @property
    def macs(self) -> int:
        return int(self.defines["QP_MACS"])

    @property
    def kernel_version(self) -> int | None:
        """QP_DATA_KERNEL_VERSION: the kernel the header was generated for (None in
        headers that carried their kernel inline)."""
        v = self.defines.get("QP_DATA_KERNEL_VERSION")
        return None if v is None else int(v)

    def int_param(self, name: str) -> int:
        return int(self.defines[name].strip("()").replace(" ", ""))

    def tables(self) -> dict[str, np.ndarray]:
        out = {}
        for ctype, name, size, body in _TABLE.findall(self.text):
            if ctype not in _DTYPES:
                continue
            values = [_c_number(v) for v in body.replace("\n", " ").split(",") if v.strip()]
            if len(values) != int(size):
                raise HeaderError(f"{self.path}: {name} has {len(values)} values, not {size}")
            out[name] = np.array(values, dtype=_DTYPES[ctype])
        return out

    def int_params(self) -> HeaderParams:
        """The tables of a policy.h as int_reference's parameters."""
        if self.scheme != Scheme.INT:
            raise HeaderError(f"{self.path} is a {self.scheme.name.lower()} header, not int")
        relu = self.defines.get("QP_HIDDEN_RELU", "0") == "1"
        t = self.tables()
        rows = _layer_rows(self)
        layers, fan_in = [], self.obs_dim
        for i, out in enumerate(rows):
            multiplier, shift = unpack_requant(t[f"qp_q{i}"], out)
            activation = "relu" if relu and i + 1 < len(rows) else "tanh"
            lut = t.get(f"qp_lut{i}")
            if lut is not None:
                lut = lut_of_interp_table(lut)
            if lut is None and activation != "relu":
                raise HeaderError(f"{self.path}: no table qp_lut{i}")
            layers.append(
                HeaderLayer(
                    weight=unpack_weights(t[f"qp_w{i}"], out, fan_in),
                    bias=t[f"qp_b{i}"][:out],
                    multiplier=multiplier,
                    shift=shift,
                    lut=lut,
                    activation=activation,
                )
            )
            fan_in = out
        inp = HeaderInput(
            mean=t["qp_in_mean"],
            div=t["qp_in_div"],
            zero=t["qp_in_zero"].astype(np.int32),
            lo=self.int_param("QP_IN_MIN"),
            hi=self.int_param("QP_IN_MAX"),
        )
        return HeaderParams(inp, tuple(layers))


def _c_number(token: str) -> float | int:
    """A literal as export/header.py writes it: 12, -3, 7u, 0x00ff0001u, 1.5f, 1e-05f,
    (-2147483647 - 1)."""
    s = token.strip()
    if s == "(-2147483647 - 1)":
        return -(2**31)
    if s.endswith("f") and not s.startswith("0x"):
        return float(s[:-1])  # the literal is exact for its float32 (header.c_float)
    return int(s.rstrip("u"), 0)


def _layer_rows(h: PolicyHeader) -> list[int]:
    """``out`` of each layer, from the initialiser of qp_layers: {in_words, out, out_pad,
    ...} (qp_layer_t in export/kernel/qp_kernel.h)."""
    m = _LAYERS.search(h.text)
    if m is None:
        raise HeaderError(f"{h.path}: no qp_layers table")
    rows = re.findall(r"\{\s*(\d+),\s*(\d+),\s*(\d+),", m.group(1))
    if len(rows) != h.int_param("QP_N_LAYERS"):
        raise HeaderError(f"{h.path}: qp_layers has {len(rows)} rows, QP_N_LAYERS differs")
    return [int(r[1]) for r in rows]


def read_header(path: str | Path) -> PolicyHeader:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise HeaderError(f"cannot read {path}: {e.strerror or e}") from None
    defines = dict(_DEFINE.findall(text))
    missing = {"QP_SCHEME_ID", "QP_MODEL_HASH", "QP_OBS_DIM", "QP_MACS"} - defines.keys()
    if missing:
        raise HeaderError(f"{path} is not a policy header (lacks {', '.join(sorted(missing))})")
    return PolicyHeader(path, {k: v.strip() for k, v in defines.items()}, text)
