"""Quantisation-aware fine-tuning of the weights that go into ``policy.h``.

The float policy is never changed: a copy of its layers is fine-tuned on the calibration
rollout states so that its *fake-quantised* forward pass matches the original float
actions. The fake-quantised pass follows the integer pipeline of ``quantize`` (int16
input, int16 activations):

- input: the int16 input grid (scale obs_clip / 32767);
- weights: symmetric per output row on the grid of the code limit ``quantize`` chose for
  that row (``LayerQuant.code_limit``, passed in, re-read at every re-calibration; the
  scale is ``quantize.channel_scale``), rounded to nearest;
- pre-activations: snapped to the symmetric int16 grid of the range ``quantize``
  calibrates for the current weights (re-calibrated every ``RANGE_EVERY`` steps) and
  clipped to it;
- tanh outputs: the interpolated int16 table itself (``int_reference.interpolate``,
  exact for the snapped pre-activation code), hidden and output layers alike;
- ReLU: the pre-activation grid.

Rounding uses the straight-through estimator (the gradient passes a rounding as if it
were the identity; clipping stops it). The loss is the mean squared action error plus
``TOP_WEIGHT`` times the mean of the worst 1 % of the squared errors, so rare large errors
are pulled in too. Fine-tuning starts from the error-compensated weight codes (the plain
export), runs ``STEPS`` Adam steps with a cosine-decaying learning rate, and every
``RANGE_EVERY`` steps scores the weights as the export would deploy them (snapped to their
grid, ranges calibrated, code limits capped at those trained with, through
``int_reference``). The best-scoring weights are kept, as the real values of the codes
they were scored with; if none beats the plain export, the plain export is kept.

The weights returned are quantised by ``quantize.quantize`` with the same machinery as
trained weights, with the ranges and code limits fixed to those they were scored with. ONNX,
``policy_f32.h`` and every accuracy figure stay against the original float policy.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from export import int_reference as ref
from export import quantize
from export.model import FloatPolicy

STEPS = 1500  # Adam steps (about 50 s on one CPU core for the 22-64-64-4 actor)
LR = 1e-4  # learning rate, relative to each tensor's largest entry
BATCH = 2048
TOP_WEIGHT = 0.1  # weight of the mean of the worst 1 % squared errors in the loss
RANGE_EVERY = 100  # steps between re-calibrations of the activation ranges (and scores)
MAX_SAMPLES = 20000  # calibration states used for the fine-tuning


@dataclasses.dataclass(frozen=True)
class Finetuned:
    """What ``finetune`` found: ``policy`` (the original if nothing beat it), the fixed
    pre-activation ranges and the per-channel weight code limits to quantise it with
    (None: calibrate and choose as usual)."""

    policy: FloatPolicy
    ranges: list[tuple[float, float]] | None
    info: dict
    limits: list[np.ndarray] | None = None


def _ste_round(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def _fake_weight(w: torch.Tensor, b: torch.Tensor, grid) -> torch.Tensor:
    """``w`` on the grid ``quantize`` would round it to: ``grid`` is (input scale per
    column, code limit per row), the scale of a row is ``quantize.channel_scale``."""
    in_scale, limit = grid
    w_eff = w.detach().numpy() * in_scale[None, :]
    acc_scale = quantize.channel_scale(w_eff, b.detach().numpy(), limit)
    step = torch.from_numpy(acc_scale[:, None] / in_scale[None, :])
    return _ste_round(w / step) * step


def _grids(params: quantize.QuantParams) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each layer's (input scale per column, weight code limit per row) in ``params``."""
    in_scale, grids = params.input.scale, []
    for layer in params.layers:
        grids.append((np.asarray(in_scale, dtype=np.float64), layer.code_limit))
        in_scale = np.full(layer.shape[0], layer.out_scale)
    return grids


def _fake_pre(pre: torch.Tensor, scale: float) -> torch.Tensor:
    limit = quantize.PRE16_MAX
    return torch.clamp(_ste_round(pre / scale), -limit, limit) * scale


def _fake_tanh16(pre: torch.Tensor, scale: float) -> torch.Tensor:
    """The int16 tanh of a pre-activation on its grid (zero 0, ``scale``): the value of
    the interpolated table in the forward pass, tanh's gradient in the backward pass."""
    code = torch.round(pre.detach() / scale).long().numpy()
    table = ref.interpolate(quantize.tanh_table16(scale), code)  # the header's own formula
    out = torch.from_numpy(table).to(pre.dtype) * quantize.TANH16_OUT_SCALE
    exact = torch.tanh(pre)
    return exact + (out - exact).detach()


class _FakeQuant(torch.nn.Module):
    """The layers of a policy, evaluated as the integer pipeline does (up to rounding
    ties)."""

    def __init__(self, policy: FloatPolicy):
        super().__init__()
        self.w = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.tensor(w, dtype=torch.float64)) for w in policy.weights]
        )
        self.b = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.tensor(b, dtype=torch.float64)) for b in policy.biases]
        )
        self.hidden = policy.activation

    def forward(self, z: torch.Tensor, scales: list[float], grids) -> torch.Tensor:
        """``scales``: each layer's pre-activation scale; ``grids``: ``_grids``."""
        h, n = z, len(self.w)
        for i in range(n):
            w = _fake_weight(self.w[i], self.b[i], grids[i])
            pre = _fake_pre(h @ w.T + self.b[i], scales[i])
            tanh = i == n - 1 or self.hidden == "tanh"
            h = _fake_tanh16(pre, scales[i]) if tanh else torch.relu(pre)
        return h

    def snapshot(self, policy: FloatPolicy, grids) -> FloatPolicy:
        """``policy`` with these weights, each snapped to its grid."""
        with torch.no_grad():
            pairs = zip(self.w, self.b, grids, strict=True)
            weights = tuple(_fake_weight(w, b, g).numpy().astype(np.float32) for w, b, g in pairs)
            biases = tuple(b.detach().numpy().astype(np.float32) for b in self.b)
        return dataclasses.replace(policy, weights=weights, biases=biases)


def _dequantized(params: quantize.QuantParams, policy: FloatPolicy) -> FloatPolicy:
    """``policy`` with the real values of the weight and bias codes of ``params``."""
    in_scale, in_zero = params.input.scale, params.input.zero
    weights, biases = [], []
    for layer in params.layers:
        wq = layer.weight.astype(np.float64)
        weights.append((wq * layer.acc_scale[:, None] / in_scale[None, :]).astype(np.float32))
        biases.append(((layer.bias + wq @ in_zero) * layer.acc_scale).astype(np.float32))
        in_scale = np.full(len(wq), layer.out_scale)
        in_zero = np.zeros(len(wq))
    return dataclasses.replace(policy, weights=tuple(weights), biases=tuple(biases))


def _quantized(policy: FloatPolicy, obs: np.ndarray, rounding: str, ranges=None, limits=None):
    """``quantize``'s parameters for ``policy`` and each layer's pre-activation range."""
    params = quantize.quantize(
        policy, obs, "int16", rounding, max_samples=len(obs), ranges=ranges, limits=limits
    )
    return params, [quantize.layer_range(layer) for layer in params.layers]


def _limits(params: quantize.QuantParams) -> list[np.ndarray]:
    return [layer.code_limit for layer in params.layers]


def _scales(ranges: list[tuple[float, float]]) -> list[float]:
    return [quantize.symmetric_scale(lo, hi) for lo, hi in ranges]


def _score(params: quantize.QuantParams, obs: np.ndarray, target: np.ndarray) -> float:
    """The loss of the integer model itself on ``obs`` (what the export would deploy)."""
    err = np.sort(((ref.act(params, obs).astype(np.float64) - target) ** 2).ravel())
    return float(err.mean() + TOP_WEIGHT * err[-max(1, err.size // 100) :].mean())


def finetune(
    policy: FloatPolicy,
    obs: np.ndarray,
    steps: int = STEPS,
    rounding: str = quantize.ROUNDING,
    seed: int = 0,
    max_samples: int = MAX_SAMPLES,
) -> Finetuned:
    """Weights for ``policy.h`` of ``policy``, fine-tuned on the states ``obs``.

    The policy returned has the original's hash, normalisation and metadata; only its
    ``weights`` (each on its grid) and ``biases`` differ. ``info`` holds the
    calibration-set loss of the plain export (``rounding``) and of the result.
    """
    rng = np.random.default_rng(seed)
    obs = np.asarray(obs, dtype=np.float32)
    if len(obs) > max_samples:
        obs = obs[np.sort(rng.choice(len(obs), max_samples, replace=False))]
    target_np = policy.act(obs).astype(np.float64)
    target = torch.tensor(target_np)
    params, ranges = _quantized(policy, obs, rounding)
    z = torch.tensor(ref.quantize_input(params, obs) * params.input.scale)
    before = _score(params, obs, target_np)
    best = (before, None, policy, None, None)

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = _FakeQuant(_dequantized(params, policy))
        groups = [
            {"params": [p], "lr": LR * max(float(p.detach().abs().max()), 1e-12)}
            for p in list(net.w) + list(net.b)
        ]
        opt = torch.optim.Adam(groups)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
        gen = torch.Generator().manual_seed(seed)
        scales, grids = _scales(ranges), _grids(params)
        for step in range(1, steps + 1):
            idx = torch.randint(len(z), (min(BATCH, len(z)),), generator=gen)
            err = ((net(z[idx], scales, grids) - target[idx]) ** 2).flatten()
            top = torch.topk(err, max(1, err.numel() // 100)).values
            opt.zero_grad()
            (err.mean() + TOP_WEIGHT * top.mean()).backward()
            opt.step()
            sched.step()
            if step % RANGE_EVERY == 0 or step == steps:
                # The limits trained with cap the new ones: the proof may lower a limit
                # for the changed weights, never raise it off the grid they lie on.
                snap = net.snapshot(policy, grids)
                params, ranges = _quantized(snap, obs, "nearest", limits=_limits(params))
                scales, grids = _scales(ranges), _grids(params)
                score = _score(params, obs, target_np)
                if score < best[0]:
                    # the codes scored, exactly (a lowered limit re-rounds the snapshot)
                    best = (score, step, _dequantized(params, policy), ranges, _limits(params))
    score, best_step, tuned, ranges, limits = best
    info = {
        "steps": steps,
        "states": int(len(obs)),
        "loss_before": before,
        "loss_after": score,
        "best_step": best_step,
    }
    return Finetuned(tuned, ranges, info, limits)


def quantize_finetuned(
    policy: FloatPolicy,
    obs: np.ndarray,
    rounding: str = quantize.ROUNDING,
    steps: int = STEPS,
    seed: int = 0,
) -> tuple[quantize.QuantParams, dict]:
    """``quantize.quantize`` (int16 input) of the weights ``finetune`` finds for
    ``policy``, calibrated on all of ``obs``; and the fine-tuning summary."""
    ft = finetune(policy, obs, steps, rounding, seed)
    params = quantize.quantize(
        ft.policy, obs, "int16", rounding, max_samples=len(obs), ranges=ft.ranges, limits=ft.limits
    )
    return params, ft.info
