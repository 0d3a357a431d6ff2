"""``policy_bundle.json``: everything a consumer of an export needs, in one machine-readable
file beside the headers, and the data hash that names what a board runs.

The bundle holds the policy spec, the observation layout with each block's source, offset
and unit (sim/observation.py ``describe``), the blocks a board is sent and the blocks it
keeps, the board's constants (``board_constants`` of the spec's task), and per scheme
(``int``: policy.h, ``float32``: policy_f32.h) the header's name, its data hash, the data
the board runs and the header's self-test vector; beside them the checkpoint's model hash
and the export report's key facts. The HIL, the tests and the benches read the bundle;
nothing reads the C headers' tables back.

The data hash (``QP_DATA_HASH`` in each data header, ``data_hash`` in the bundle, the
board's INFO) is sha256 over exactly what a board runs for one scheme: the scheme's name,
the layout text, the board constants and the scheme's tables (``int``: the input
normalisation and code range, every layer's weight codes, bias, requantisation multiplier
and shift, tanh table and activation, the output scale; ``float32``: the normalisation,
the clip, every layer's weights, bias and activation). Not the self-test vector, not the
calibration's descriptive scales: two exports that make a board compute the same thing
have the same data hash; another quantisation of the same checkpoint has another one
(its model hash, the checkpoint's, stays the same). The encoding is canonical: for each
leaf of {"scheme", "layout", "board", "data"} in sorted-key order (list items by index),
its dotted name (UTF-8), a NUL, then a tag and the value: ``s`` and the UTF-8 text, ``n``
for none, ``i`` an int64, ``f`` a float64, ``I``/``F`` an array (its shape as int64s,
then int64 or float64 values), every number little-endian and every length an int64
before its bytes. Float32 tables are exact in float64, so the JSON's numbers hash alike.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export import int_reference as ref
from export.kernel_layout import kernel
from export.model import FloatPolicy
from export.quant_params import InputQuant, LayerQuant, QuantParams
from sim import observation
from sim.contract.files import atomic_write
from sim.contract.spec import PolicySpec, SpecError, plain

BUNDLE_NAME = "policy_bundle.json"
FORMAT = "quadpilot-policy-bundle"
VERSION = 1
HEADERS = {"int": "policy.h", "float32": "policy_f32.h"}  # scheme -> data header
# What a board runs of the integer scheme's parameters (the rest describes calibration).
INT_INPUT_RUN = ("mean", "div", "zero", "lo", "hi")
INT_LAYER_RUN = ("weight", "bias", "multiplier", "shift", "lut", "activation")
_HASH_DEFINE = re.compile(r'^#define (QP_MODEL_HASH|QP_DATA_HASH|QP_SCHEME) "([^"]*)"$', re.M)


class BundleError(ValueError):
    """A bundle is missing, malformed or disagrees with itself; the message names it."""


# The data of each scheme, as plain lists ------------------------------------------------
def int_data(params: QuantParams) -> dict:
    """QuantParams as plain data (``int_params`` rebuilds them, bit for bit)."""
    inp = params.input
    return {
        "input": {
            "mean": inp.mean.tolist(),
            "div": inp.div.tolist(),
            "scale": inp.scale.tolist(),
            "zero": inp.zero.tolist(),
            "lo": int(inp.lo),
            "hi": int(inp.hi),
        },
        "layers": [
            {
                "weight": layer.weight.tolist(),
                "bias": layer.bias.tolist(),
                "multiplier": layer.multiplier.tolist(),
                "shift": layer.shift.tolist(),
                "lut": None if layer.lut is None else layer.lut.tolist(),
                "activation": layer.activation,
                "acc_scale": np.asarray(layer.acc_scale, dtype=np.float64).tolist(),
                "pre_scale": float(layer.pre_scale),
                "out_scale": float(layer.out_scale),
                "acc_bound": int(layer.acc_bound),
                "code_limit": None if layer.code_limit is None else layer.code_limit.tolist(),
            }
            for layer in params.layers
        ],
        "out_one": ref.OUT_ONE,
        "input_mode": params.input_mode,
        "calibration_size": int(params.calibration_size),
    }


def float_data(policy: FloatPolicy) -> dict:
    """The float32 header's numbers: normalisation, clip, weights and biases."""
    n = len(policy.weights)
    return {
        "mean": policy.mean.tolist(),
        "std": policy.std.tolist(),
        "obs_clip": float(np.float32(policy.obs_clip)),
        "layers": [
            {
                "weight": w.tolist(),
                "bias": b.tolist(),
                "activation": policy.activation if i < n - 1 else "tanh",
            }
            for i, (w, b) in enumerate(zip(policy.weights, policy.biases, strict=True))
        ],
    }


def int_params(data: dict, model_hash: str) -> QuantParams:
    """``int_data``'s dict back as the QuantParams int_reference runs on."""
    inp = data["input"]
    layers = tuple(
        LayerQuant(
            weight=np.asarray(layer["weight"], dtype=np.int16),
            bias=np.asarray(layer["bias"], dtype=np.int32),
            multiplier=np.asarray(layer["multiplier"], dtype=np.int32),
            shift=np.asarray(layer["shift"], dtype=np.int32),
            acc_scale=np.asarray(layer["acc_scale"], dtype=np.float64),
            pre_scale=float(layer["pre_scale"]),
            out_scale=float(layer["out_scale"]),
            lut=None if layer["lut"] is None else np.asarray(layer["lut"], dtype=np.int16),
            activation=layer["activation"],
            acc_bound=int(layer["acc_bound"]),
            code_limit=None
            if layer["code_limit"] is None
            else np.asarray(layer["code_limit"], dtype=np.int32),
        )
        for layer in data["layers"]
    )
    return QuantParams(
        input=InputQuant(
            mean=np.asarray(inp["mean"], dtype=np.float32),
            div=np.asarray(inp["div"], dtype=np.float32),
            scale=np.asarray(inp["scale"], dtype=np.float64),
            zero=np.asarray(inp["zero"], dtype=np.int32),
            lo=int(inp["lo"]),
            hi=int(inp["hi"]),
        ),
        layers=layers,
        input_mode=data["input_mode"],
        calibration_size=int(data["calibration_size"]),
        model_hash=model_hash,
    )


def _run_part(scheme: str, data: dict) -> dict:
    """The part of a scheme's data that the board runs (what the data hash covers)."""
    if scheme != "int":
        return data
    return {
        "input": {k: data["input"][k] for k in INT_INPUT_RUN},
        "layers": [{k: layer[k] for k in INT_LAYER_RUN} for layer in data["layers"]],
        "out_one": data["out_one"],
    }


# The data hash ----------------------------------------------------------------------------
def data_hash(scheme: str, scheme_name: str, layout: str, board: dict, data: dict) -> str:
    """sha256 (hex) of what a board runs for ``scheme`` ("int" or "float32"), whose
    header calls itself ``scheme_name`` (QP_SCHEME); the encoding is the module's doc."""
    h = hashlib.sha256()
    tree = {
        "scheme": scheme_name,
        "layout": layout,
        "board": board,
        "data": _run_part(scheme, data),
    }
    for name, value in _leaves(tree, ""):
        h.update(_bytes(name.encode()))
        h.update(_encode(name, value))
    return h.hexdigest()


def _leaves(value, name: str):
    if isinstance(value, dict):
        for key in sorted(value):
            yield from _leaves(value[key], f"{name}.{key}" if name else key)
    elif isinstance(value, list) and any(isinstance(v, (dict, str)) for v in value):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{name}.{i}")
    else:
        yield name, value


def _bytes(b: bytes) -> bytes:
    return np.int64(len(b)).astype("<i8").tobytes() + b


def _encode(name: str, value) -> bytes:
    if value is None:
        return b"n"
    if isinstance(value, bool):
        raise BundleError(f"data hash: {name} is a truth value, not a number")
    if isinstance(value, str):
        return b"s" + _bytes(value.encode())
    if isinstance(value, int):
        return b"i" + np.int64(value).astype("<i8").tobytes()
    if isinstance(value, float):
        return b"f" + np.float64(value).astype("<f8").tobytes()
    arr = np.asarray(value)
    flat = arr.ravel().tolist()
    if arr.dtype.kind in "iu" or all(isinstance(v, int) and not isinstance(v, bool) for v in flat):
        tag, data = b"I", np.asarray(arr, dtype="<i8")
    elif arr.dtype.kind == "f":
        tag, data = b"F", np.asarray(arr, dtype="<f8")
    else:
        raise BundleError(f"data hash: {name} holds {arr.dtype} values, not numbers")
    shape = np.asarray(arr.shape, dtype="<i8").tobytes()
    return tag + _bytes(shape) + _bytes(np.ascontiguousarray(data).tobytes())


# The board's constants and the layout ----------------------------------------------------
def board_of(spec: PolicySpec) -> dict:
    """The board constants of the spec's own task (sim/observation.py)."""
    return observation.board_constants(spec.task_config())


def int_hash(policy: FloatPolicy, params: QuantParams) -> str:
    """policy.h's QP_DATA_HASH."""
    spec = policy.spec
    return data_hash("int", params.scheme, spec.layout_text, board_of(spec), int_data(params))


def float_hash(policy: FloatPolicy) -> str:
    """policy_f32.h's QP_DATA_HASH."""
    spec = policy.spec
    return data_hash("float32", "float32", spec.layout_text, board_of(spec), float_data(policy))


# The bundle -------------------------------------------------------------------------------
def build(
    policy: FloatPolicy,
    params: QuantParams,
    selftest_obs: np.ndarray,
    selftest_tolerance: float,
    facts: dict | None = None,
) -> dict:
    """The bundle of one export: ``params`` for policy.h, the float policy for
    policy_f32.h, the self-test vector both headers carry, and ``facts`` (the export
    report's key figures)."""
    spec = policy.spec
    board = board_of(spec)
    obs = np.asarray(selftest_obs, dtype=np.float32)
    idata, fdata = int_data(params), float_data(policy)
    return plain(
        {
            "format": FORMAT,
            "version": VERSION,
            "model_hash": policy.model_hash,
            "checkpoint": str(policy.source),
            "step": policy.step,
            "policy_spec": spec.to_dict(),
            "network": {
                "widths": policy.widths,
                "hidden_activation": policy.activation,
                "output_activation": "tanh",
                "macs": policy.macs,
            },
            "kernel_version": kernel()[0],
            "layout_text": spec.layout_text,
            "layout": observation.describe(spec.obs_layout),
            "wire_blocks": [list(b) for b in observation.wire_blocks(spec.obs_layout)],
            "board_blocks": [list(b) for b in observation.board_blocks(spec.obs_layout)],
            "board": board,
            "schemes": {
                "int": {
                    "header": HEADERS["int"],
                    "scheme": params.scheme,
                    "data_hash": data_hash("int", params.scheme, spec.layout_text, board, idata),
                    "data": idata,
                    "selftest": {
                        "obs": obs.tolist(),
                        "codes": ref.forward_codes(params, obs).tolist(),
                    },
                },
                "float32": {
                    "header": HEADERS["float32"],
                    "scheme": "float32",
                    "data_hash": data_hash("float32", "float32", spec.layout_text, board, fdata),
                    "data": fdata,
                    "selftest": {
                        "obs": obs.tolist(),
                        "actions": policy.act(obs).tolist(),
                        "tolerance": float(selftest_tolerance),
                    },
                },
            },
            "report": facts or {},
        }
    )


def to_json(bundle: dict) -> str:
    return json.dumps(bundle, indent=1, allow_nan=False) + "\n"


def write(path: Path, bundle: dict) -> None:
    text = to_json(bundle).encode()
    atomic_write(Path(path), lambda tmp: tmp.write_bytes(text))


@dataclass(frozen=True)
class Bundle:
    """A bundle read back and checked (``load``)."""

    path: Path
    raw: dict
    spec: PolicySpec

    @property
    def model_hash(self) -> str:
        return self.raw["model_hash"]

    @property
    def layout_text(self) -> str:
        return self.raw["layout_text"]

    @property
    def board(self) -> dict:
        return self.raw["board"]

    @property
    def macs(self) -> int:
        return int(self.raw["network"]["macs"])

    @property
    def kernel_version(self) -> int:
        return int(self.raw["kernel_version"])

    def scheme(self, name: str) -> dict:
        """The section of scheme ``name`` ("int" or "float32")."""
        try:
            return self.raw["schemes"][name]
        except KeyError:
            raise BundleError(f"{self.path} has no scheme {name!r}") from None

    def data_hash(self, name: str) -> str:
        return self.scheme(name)["data_hash"]

    def int_params(self) -> QuantParams:
        """The integer model of policy.h, for int_reference."""
        return int_params(self.scheme("int")["data"], self.model_hash)

    def selftest_obs(self, name: str = "int") -> np.ndarray:
        return np.asarray(self.scheme(name)["selftest"]["obs"], dtype=np.float32)


def load(path: str | Path) -> Bundle:
    """Read a bundle; BundleError (one line, naming the file) if it is missing, not a
    bundle of this version, or its data hashes are not those of its own data."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{path} is not a policy bundle: {' '.join(str(e).split())}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise BundleError(f"{path} is not a policy bundle (no format {FORMAT!r})")
    if raw.get("version") != VERSION:
        raise BundleError(
            f"{path} is bundle version {raw.get('version')!r}; this quadpilot reads version "
            f"{VERSION}: export again"
        )
    try:
        spec = PolicySpec.from_dict(raw["policy_spec"], path)
        for name in HEADERS:
            section = raw["schemes"][name]
            want = data_hash(
                name, section["scheme"], raw["layout_text"], raw["board"], section["data"]
            )
            if section["data_hash"] != want:
                raise BundleError(
                    f"{path}: the {name} data hash {section['data_hash'][:16]}... is not that "
                    f"of its data ({want[:16]}...): the file was edited or damaged; export again"
                )
    except SpecError as e:
        raise BundleError(str(e)) from None
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, BundleError):
            raise
        raise BundleError(f"{path} is not a complete policy bundle ({e!r})") from None
    if raw["layout_text"] != spec.layout_text:
        raise BundleError(
            f"{path}: layout {raw['layout_text']} is not its policy spec's {spec.layout_text}"
        )
    return Bundle(path, raw, spec)


# A header's identity ----------------------------------------------------------------------
@dataclass(frozen=True)
class HeaderIdentity:
    """The ``#define`` lines that name a data header's model and data."""

    path: Path
    model_hash: str
    data_hash: str | None  # None: a header exported before data hashes
    scheme: str  # QP_SCHEME


def header_identity(path: str | Path) -> HeaderIdentity:
    """QP_MODEL_HASH, QP_DATA_HASH and QP_SCHEME of a data header; BundleError if it has
    none of them (not a policy header)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise BundleError(f"cannot read {path}: {e.strerror or e}") from None
    found = dict(_HASH_DEFINE.findall(text))
    if "QP_MODEL_HASH" not in found:
        raise BundleError(f"{path} is not a policy header (no QP_MODEL_HASH)")
    return HeaderIdentity(
        path, found["QP_MODEL_HASH"], found.get("QP_DATA_HASH"), found.get("QP_SCHEME", "")
    )


def short(h: str | None) -> str:
    """A hash as messages show it."""
    return "none" if h is None else f"{h[:16]}..."
