"""Single-sample inference speed of the exported policy, all forms measured in one run.

    python -m bench.export_speed [CHECKPOINT]

The integer and float32 headers compiled natively (-O2) on this machine, next to
onnxruntime and torch eager calls with one observation each. Writes the
``export_speed`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from bench.common import machine, write_section
from export import cbuild, header, onnx_export, quantize, rollouts
from export import model as model_mod
from export.fixtures import make_checkpoint
from export.kernel_layout import KERNEL
from export.model import ExportError

BENCH_C = KERNEL.parent / "bench.c"


def load_policy(path: str, tmp: Path):
    try:
        return model_mod.load(path), str(path)
    except ExportError as exc:
        print(f"bench: {exc}; timing a freshly initialised 64-64 actor instead", file=sys.stderr)
        ckpt = make_checkpoint(tmp / "run" / "checkpoint.pt")
        return model_mod.load(ckpt), "a freshly initialised 64-64 tanh actor (no trained run)"


def time_python(fn, states: np.ndarray, calls: int, rounds: int) -> float:
    """Best round's ns per call of fn(one observation of shape (1, obs_dim))."""
    rows = [states[i : i + 1] for i in range(len(states))]
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for i in range(calls):
            fn(rows[i % len(rows)])
        best = min(best, (time.perf_counter_ns() - t0) / calls)
    return best


def time_header(path: Path, states: np.ndarray, reps: int, rounds: int, cc: str) -> float:
    exe = cbuild.build(path, path.with_suffix(".bench"), cc, ("-O2",), source=BENCH_C)
    proc = subprocess.run(
        [str(exe), str(reps), str(rounds)], input=states.tobytes(), capture_output=True, check=True
    )
    return float(proc.stdout.split()[0])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.export_speed", description=__doc__)
    p.add_argument("checkpoint", nargs="?", default="runs/latest")
    p.add_argument("--calls", type=int, default=20000, help="Python calls per round")
    p.add_argument("--reps", type=int, default=200000, help="C calls per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--cc", default="gcc")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="qp-bench-") as tmp:
        tmp = Path(tmp)
        policy, source = load_policy(args.checkpoint, tmp)
        states = rollouts.policy_states(policy.act, policy.spec, 4000, seed=123)[:4000]
        params = quantize.quantize(policy, states)
        selftest = header.selftest_states(states)
        header.write_header(tmp / "policy.h", header.int_header(policy, params, selftest).text)
        header.write_header(tmp / "policy_f32.h", header.f32_header(policy, selftest).text)
        c_int = time_header(tmp / "policy.h", states, args.reps, args.rounds, args.cc)
        c_f32 = time_header(tmp / "policy_f32.h", states, args.reps, args.rounds, args.cc)
        cc_version = subprocess.run(
            [args.cc, "--version"], capture_output=True, text=True
        ).stdout.splitlines()[0]

    sess = ort.InferenceSession(onnx_export.to_onnx(policy), providers=["CPUExecutionProvider"])
    t_ort = time_python(lambda x: sess.run(None, {"obs": x}), states, args.calls, args.rounds)
    torch_states = torch.from_numpy(states)

    def torch_call(x, actor=policy.actor):
        with torch.inference_mode():
            return actor(torch.from_numpy(x))

    t_torch = time_python(torch_call, torch_states.numpy(), args.calls, args.rounds)

    rows = [
        ("policy.h (12-bit weights, int16 activations), C -O2", c_int),
        ("policy_f32.h (float32), C -O2", c_f32),
        ("onnxruntime, actor.onnx", t_ort),
        ("torch eager, Actor", t_torch),
    ]
    widths = " -> ".join(str(w) for w in policy.widths)
    lines = [
        "## Export: single-sample inference",
        "",
        f"Command: `python -m bench.export_speed {args.checkpoint}` (policy: {source}; "
        f"{widths}, {policy.macs} MACs).",
        f"Machine: {machine()}; {cc_version}; onnxruntime {ort.__version__} (default "
        f"session options), torch {torch.__version__} ({torch.get_num_threads()} threads).",
        "",
        "One observation per call, cycling through 4,000 rollout states; best of "
        f"{args.rounds} rounds ({args.reps} C calls / {args.calls} Python calls each).",
        "",
        "| form | ns per call | MACs per ns |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {name} | {ns:,.0f} | {policy.macs / ns:.2f} |" for name, ns in rows]
    lines += [
        "",
        "Host figures only: on the STM32F405 the integer header's inner loop uses SMLAD "
        "(two MACs per instruction), the float32 one VFMA; see docs/quantization.md.",
    ]
    markdown = "\n".join(lines)
    write_section("export_speed", markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
