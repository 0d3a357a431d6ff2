"""The integer scheme's parameters: what quantize.py computes, what the header renders,
what int_reference.py reads and policy_bundle.json carries (export/bundle.py rebuilds
them from it for the HIL and the tests: the one family of these types). Types only, so
every module of the export pipeline can import them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SCHEME = "int12w-int16a"  # 12-bit weight codes, int16 activations: the integer header's scheme
# The widest weight code: |code| <= 2047 (12-bit, symmetric). Each output channel gets
# the largest limit <= WEIGHT_CODE_MAX its accumulator proof allows (quantize.py); the
# kernel stores every weight as an int16, so wider codes cost no flash and no time.
WEIGHT_CODE_MAX = 2047
# The narrowest limit, today's int8 range: quantize.check_shapes proves it for any weights.
WEIGHT_CODE_FLOOR = 127


@dataclass(frozen=True)
class InputQuant:
    """obs -> code: u = (obs - mean) / div in float32, code = sat(round(u) + zero, lo, hi)."""

    mean: np.ndarray  # float32 (obs_dim,), the policy's normalisation mean
    div: np.ndarray  # float32 (obs_dim,), std * scale
    scale: np.ndarray  # float64 (obs_dim,), normalised units per code (= div / std)
    zero: np.ndarray  # int32 (obs_dim,)
    lo: int  # code range: [-128, 127] (int8) or [-32767, 32767] (int16)
    hi: int

    @property
    def bits(self) -> int:
        return 8 if self.hi <= 127 else 16


@dataclass(frozen=True)
class LayerQuant:
    """One affine layer and its activation, all in integers."""

    weight: np.ndarray  # int16 (out, in), row j scaled by 1 / acc_scale[j], |w| <= code_limit[j]
    bias: np.ndarray  # int32 (out,), input zero points folded in
    multiplier: np.ndarray  # int32 (out,), Q31 in [2^30, 2^31) (0 for a channel scaled to 0)
    shift: np.ndarray  # int32 (out,), right shift in [0, 31]
    acc_scale: np.ndarray  # float64 (out,): the real value of one accumulator unit
    pre_scale: float  # pre-activation code scale (symmetric int16 codes: zero point 0)
    out_scale: float  # output code scale (zero point 0)
    # tanh's int16 (257,) table of tanh at the interval ends (int_reference.interpolate);
    # None for ReLU.
    lut: np.ndarray | None
    activation: str  # "tanh" or "relu"
    acc_bound: int  # proved: |accumulator| <= acc_bound for every possible input
    # int32 (out,): channel j's weight code limit, WEIGHT_CODE_FLOOR..WEIGHT_CODE_MAX
    code_limit: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weight.shape)


@dataclass(frozen=True)
class QuantParams:
    input: InputQuant
    layers: tuple[LayerQuant, ...]
    input_mode: str
    calibration_size: int
    model_hash: str
    notes: dict = field(default_factory=dict)

    @property
    def obs_dim(self) -> int:
        return int(self.input.mean.size)

    @property
    def act_dim(self) -> int:
        return int(self.layers[-1].weight.shape[0])

    @property
    def scheme(self) -> str:
        """The header's QP_SCHEME."""
        return SCHEME
