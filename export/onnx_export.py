"""actor.onnx: the whole deployed policy (normalisation, clip, MLP, tanh) in plain operators.

Uses torch's TorchScript exporter (``dynamo=False``): it emits Sub, Div, Clip, Gemm,
Tanh/Relu and no ONNX local functions, which C converters and older runtimes read.
"""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch

from export.model import ExportError, FloatPolicy

OPSET = 17
ALLOWED_OPS = {
    "Sub",
    "Div",
    "Clip",
    "Gemm",
    "MatMul",
    "Add",
    "Tanh",
    "Relu",
    "Min",
    "Max",
    "Constant",
}


def to_onnx(policy: FloatPolicy) -> bytes:
    """Serialised ONNX model with metadata_props: policy_spec (JSON), step, model_hash."""
    buf = io.BytesIO()
    dummy = torch.zeros(1, policy.obs_dim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            policy.actor,
            (dummy,),
            buf,
            dynamo=False,
            opset_version=OPSET,
            input_names=["obs"],
            output_names=["action"],
            dynamic_axes={"obs": {0: "batch"}, "action": {0: "batch"}},
        )
    model = onnx.load_from_string(buf.getvalue())
    model.producer_name = "quadpilot export"
    model.doc_string = (
        "quadpilot actor: obs [batch, obs_dim] float32 -> action [batch, 4] "
        "in [-1, 1]; see metadata policy_spec for the layouts"
    )
    meta = {
        "policy_spec": json.dumps(policy.spec.to_dict(), sort_keys=True, default=_jsonable),
        "step": str(policy.step),
        "model_hash": policy.model_hash,
        "hash_scheme": "sha256 over state_dict tensors (export/model.py weights_hash)",
    }
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    return model.SerializeToString()


def _jsonable(x):
    if isinstance(x, tuple | set):
        return list(x)
    if isinstance(x, np.generic):
        return x.item()
    return str(x)


def check(data: bytes, policy: FloatPolicy, states: np.ndarray, tol: float = 1e-5) -> dict:
    """Full checker, operator whitelist, I/O signature, and onnxruntime vs torch."""
    model = onnx.load_from_string(data)
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"actor.onnx fails the ONNX checker: {exc}") from exc
    ops = sorted({n.op_type for n in model.graph.node})
    if model.functions or not set(ops) <= ALLOWED_OPS:
        raise ExportError(
            f"actor.onnx uses operators {ops} / {len(model.functions)} local "
            f"functions; allowed: {sorted(ALLOWED_OPS)} and none"
        )
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    if (inp.name, out.name) != ("obs", "action") or inp.shape[1] != policy.obs_dim:
        raise ExportError(f"actor.onnx has I/O {inp.name}{inp.shape} -> {out.name}{out.shape}")
    states = np.asarray(states, dtype=np.float32)
    got = sess.run(None, {"obs": states})[0]
    want = policy.act(states)
    diff = float(np.abs(got - want).max())
    if not diff <= tol:
        raise ExportError(
            f"actor.onnx differs from torch by {diff:.3g} > {tol:g} on {len(states)} states"
        )
    return {
        "opset": int(opset),
        "operators": ops,
        "states": int(len(states)),
        "max_abs_diff_vs_torch": diff,
    }
