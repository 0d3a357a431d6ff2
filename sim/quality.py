"""Hover quality: how calmly a policy holds the target, beside whether it does.

Success says the vehicle stayed within the radius; it does not say how. A policy can
pass by chattering its motor commands across a fifth of their range every control step
or by sitting at a limit, which a real vehicle pays for in vibration, motor heat and
lost control authority (docs/sim.md, "Hover quality"). Every report that gives success
takes these figures from here.

What is measured: the success window (the last ``task.window_steps`` control steps) of
the episodes that flew to the end (length == max_steps); crashed episodes have no window
and are left out. With none left every figure is NaN. In a ``Rollout``, command ``t``
(``commands[t]``) is held during step ``t`` and produces the state in row ``t + 1`` of
``attitudes`` and ``body_rates``, so the window is the last ``window_steps`` rows of each.
"""

from __future__ import annotations

import math

import numpy as np

from sim.rollout import Rollout

AT_LIMIT = 0.95  # |command| above this counts as at the limit: (almost) no authority left

# Every figure, in the order reports show them, with its meaning.
METRICS = {
    "command_change_mean": "mean |a_t - a_(t-1)| per motor and control step (range 2)",
    "commands_at_limit": f"share of commands with |a| > {AT_LIMIT}",
    "gyro_rms_rad_s": "RMS of the true body-rate vector's norm, rad/s",
    "tilt_mean_deg": "mean tilt of body z from world up, deg",
    "tilt_p99_deg": "99th percentile of that tilt, deg",
    "command_peak_hz": "strongest frequency (DC excluded) of the mean-removed commands, Hz",
}


def describe(q: dict, brief: bool = False, prefix: str = "") -> str:
    """The figures of ``q`` (``hover_quality``'s keys, each after ``prefix``, e.g. a
    robustness score's "nominal_") in one line for the printed reports; ``brief``:
    command change and limit only. A missing or NaN figure is shown as "-"."""

    def f(key: str, fmt: str) -> str:
        return shown(q.get(prefix + key), fmt)

    if all(f(k, "g") == "-" for k in METRICS):
        return "- (no episode flew to the end)"
    text = (
        f"command change {f('command_change_mean', '.3f')}/step, "
        f"at limit {f('commands_at_limit', '.1%')}"
    )
    if brief:
        return text
    return (
        f"{text}, peak {f('command_peak_hz', 'g')} Hz, gyro RMS "
        f"{f('gyro_rms_rad_s', '.3f')} rad/s, tilt {f('tilt_mean_deg', '.1f')} deg "
        f"(p99 {f('tilt_p99_deg', '.1f')})"
    )


def shown(value: float | None, fmt: str) -> str:
    """``value`` formatted with ``fmt``, or "-" when there is none (missing or NaN)."""
    return "-" if value is None or not math.isfinite(value) else format(value, fmt)


def flown(r: Rollout) -> np.ndarray:
    """Indices of the episodes that flew to the end (the only ones with a full window)."""
    return np.flatnonzero(r.lengths == r.commands.shape[0])


def hover_quality(r: Rollout, window_steps: int) -> dict[str, float]:
    """Every figure of ``METRICS`` over the last ``window_steps`` control steps of the
    episodes of ``r`` that flew to the end; NaN for a figure with nothing to measure."""
    keep = flown(r)
    if keep.size == 0 or window_steps < 1:
        return dict.fromkeys(METRICS, math.nan)
    cmd = r.commands[-window_steps:, keep].astype(np.float64)  # (W, E, 4)
    out = {
        "command_change_mean": _mean(np.abs(np.diff(cmd, axis=0))),
        "commands_at_limit": float(np.mean(np.abs(cmd) > AT_LIMIT)),
        "command_peak_hz": peak_hz(cmd, r.control_hz),
    }
    out.update(_gyro(r, keep, window_steps))
    out.update(_tilt(r, keep, window_steps))
    return {k: out[k] for k in METRICS}


def peak_hz(cmd: np.ndarray, control_hz: float) -> float:
    """The argmax, DC excluded, of the power spectrum of each episode's per-motor
    commands ``cmd`` (W, E, 4) with their means removed, summed over motors and
    episodes; resolution control_hz / W. NaN when the commands do not vary at all."""
    w = cmd.shape[0]
    if w < 2:
        return math.nan
    power = np.abs(np.fft.rfft(cmd - cmd.mean(axis=0), axis=0)) ** 2
    power = power.sum(axis=(1, 2))[1:]
    if not power.max() > 0:
        return math.nan
    return float(np.fft.rfftfreq(w, 1.0 / control_hz)[1 + int(np.argmax(power))])


def tilt_deg(quat: np.ndarray) -> np.ndarray:
    """Angle of body z from world up for (..., 4) quaternions w, x, y, z (body to world)."""
    x, y = quat[..., 1], quat[..., 2]
    return np.degrees(np.arccos(np.clip(1.0 - 2.0 * (x * x + y * y), -1.0, 1.0)))


def _gyro(r: Rollout, keep: np.ndarray, window_steps: int) -> dict[str, float]:
    if r.body_rates is None:  # a rollout recorded without them
        return {"gyro_rms_rad_s": math.nan}
    rates = r.body_rates[-window_steps:, keep]
    return {"gyro_rms_rad_s": math.sqrt(_mean(np.sum(rates * rates, axis=-1)))}


def _tilt(r: Rollout, keep: np.ndarray, window_steps: int) -> dict[str, float]:
    if r.attitudes is None:
        return {"tilt_mean_deg": math.nan, "tilt_p99_deg": math.nan}
    tilt = tilt_deg(r.attitudes[-window_steps:, keep])
    return {"tilt_mean_deg": _mean(tilt), "tilt_p99_deg": float(np.quantile(tilt, 0.99))}


def _mean(a: np.ndarray) -> float:
    return float(np.mean(a)) if a.size else math.nan
