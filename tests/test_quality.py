"""Hover quality (sim/quality.py): synthetic rollouts whose figures are known, the
robustness suite reporting them for a policy that hovers, and the evaluation's and the
HIL's reports carrying them."""

import json
import math

import numpy as np
import pytest

from export.fixtures import make_checkpoint
from firmware_bridge import paced
from firmware_bridge.hil_report import closed_loop_quality
from sim import quality
from sim import robustness as R
from sim.rollout import Rollout
from sim.tasks import make_task
from train.__main__ import main as train_main

STEPS, EPISODES, HZ, WINDOW = 300, 3, 100.0, 100


def synthetic(commands: np.ndarray, lengths=None, rates=None, quats=None) -> Rollout:
    """A rollout of ``commands`` (STEPS, EPISODES, 4); level and still unless told."""
    lengths = np.full(EPISODES, STEPS) if lengths is None else np.asarray(lengths)
    if quats is None:
        quats = np.zeros((STEPS + 1, EPISODES, 4))
        quats[..., 0] = 1.0
    rates = np.zeros((STEPS + 1, EPISODES, 3)) if rates is None else rates
    commands, quats, rates = commands.copy(), quats.copy(), rates.copy()
    for e, n in enumerate(lengths):  # NaN after an episode ended, as collect records
        commands[n:, e] = np.nan
        quats[n + 1 :, e] = np.nan
        rates[n + 1 :, e] = np.nan
    return Rollout(
        obs=np.zeros((1, 1), np.float32),
        actions=np.zeros((1, 4), np.float32),
        success=lengths == STEPS,
        final_error=np.zeros(EPISODES),
        lengths=lengths,
        returns=np.zeros(EPISODES),
        positions=np.zeros((STEPS + 1, EPISODES, 3)),
        target=np.zeros(3),
        control_hz=HZ,
        attitudes=quats,
        commands=commands.astype(np.float32),
        body_rates=rates,
    )


def square_wave(hz: float) -> np.ndarray:
    """+-1 on every motor of every episode, flipping every HZ / (2 hz) steps."""
    t = np.arange(STEPS) / HZ
    wave = np.where(np.sin(2 * np.pi * hz * t + 0.1) >= 0, 1.0, -1.0)
    return np.broadcast_to(wave[:, None, None], (STEPS, EPISODES, 4)).copy()


def test_a_constant_command_does_not_change_and_is_not_at_the_limit():
    q = quality.hover_quality(synthetic(np.full((STEPS, EPISODES, 4), 0.3)), WINDOW)
    assert set(q) == set(quality.METRICS)
    assert q["command_change_mean"] == 0.0 and q["commands_at_limit"] == 0.0
    assert q["gyro_rms_rad_s"] == 0.0 and q["tilt_mean_deg"] == 0.0 and q["tilt_p99_deg"] == 0.0
    assert math.isnan(q["command_peak_hz"])  # nothing oscillates


def test_a_25_hz_square_wave_changes_2_per_flip_sits_at_the_limit_and_peaks_at_25_hz():
    cmd = square_wave(25.0)
    q = quality.hover_quality(synthetic(cmd), WINDOW)
    window = cmd[-WINDOW:, 0, 0]
    flips = int(np.count_nonzero(np.diff(window)))
    assert flips in (49, 50)  # every 2 steps of 100: the wave is where it should be
    assert q["command_change_mean"] == pytest.approx(2.0 * flips / (WINDOW - 1))
    assert q["commands_at_limit"] == 1.0
    assert q["command_peak_hz"] == pytest.approx(25.0)  # resolution HZ / WINDOW = 1 Hz
    # The window is the last WINDOW steps: a wave before it does not count.
    calm = cmd.copy()
    calm[-WINDOW:] = 0.0
    assert quality.hover_quality(synthetic(calm), WINDOW)["command_change_mean"] == 0.0


def test_the_peak_follows_the_frequency():
    for hz in (5.0, 10.0, 20.0):
        cmd = 0.1 * square_wave(hz) + 0.2
        q = quality.hover_quality(synthetic(cmd), WINDOW)
        assert q["command_peak_hz"] == pytest.approx(hz)
        assert q["commands_at_limit"] == 0.0


def test_gyro_rms_and_tilt_from_known_rates_and_attitudes():
    rates = np.zeros((STEPS + 1, EPISODES, 3))
    rates[..., 0], rates[..., 1] = 3.0, 4.0  # |w| = 5 rad/s
    half = np.radians(10.0) / 2  # 10 degrees about x: body z 10 degrees from up
    quats = np.zeros((STEPS + 1, EPISODES, 4))
    quats[..., 0], quats[..., 1] = np.cos(half), np.sin(half)
    q = quality.hover_quality(
        synthetic(np.zeros((STEPS, EPISODES, 4)), rates=rates, quats=quats), WINDOW
    )
    assert q["gyro_rms_rad_s"] == pytest.approx(5.0)
    assert q["tilt_mean_deg"] == pytest.approx(10.0) and q["tilt_p99_deg"] == pytest.approx(10.0)


def test_crashed_episodes_are_left_out_and_all_crashed_is_nan():
    cmd = np.full((STEPS, EPISODES, 4), 0.2)
    cmd[:, 1] = square_wave(25.0)[:, 1]  # the chattering one crashed just before the end
    q = quality.hover_quality(synthetic(cmd, lengths=[STEPS, STEPS - 1, STEPS]), WINDOW)
    assert q["command_change_mean"] == 0.0 and q["commands_at_limit"] == 0.0
    # Flown to the end, the same episode counts.
    q = quality.hover_quality(synthetic(cmd), WINDOW)
    assert q["command_change_mean"] > 0.3 and q["commands_at_limit"] == pytest.approx(1 / 3)
    crashed = quality.hover_quality(synthetic(cmd, lengths=[10, STEPS - 1, 250]), WINDOW)
    assert all(math.isnan(v) for v in crashed.values()) and set(crashed) == set(quality.METRICS)


def hover_controller(task, kp=4.0, kd=3.0, k_att=100.0, k_rate=30.0):
    """A plain cascaded PD controller on the deployable observation (position error,
    rotation matrix, velocity, gyro first): hovers in the nominal world."""
    af = task.body()
    inertia = np.array(af.inertia)
    pos, spin = np.array(af.rotor_positions), np.array(af.rotor_yaw_signs)
    # Per-motor thrust -> (total thrust, roll, pitch and yaw torque), inverted.
    mix = np.linalg.inv(np.stack([np.ones(4), pos[:, 1], -pos[:, 0], spin * af.torque_to_thrust]))

    def act(obs):
        e, rot = obs[:, 0:3], obs[:, 3:12].reshape(-1, 3, 3)
        v, w = obs[:, 12:15], obs[:, 15:18]
        acc = -kp * e - kd * v + [0.0, 0.0, af.gravity]
        z_body = rot[:, :, 2]
        z_want = acc / np.linalg.norm(acc, axis=1, keepdims=True)
        tilt_err = np.einsum("nji,nj->ni", rot, np.cross(z_body, z_want))  # in body axes
        torque = inertia * (k_att * tilt_err - k_rate * w)
        torque[:, 2] = -inertia[2] * k_rate * w[:, 2]
        thrust = af.mass * np.einsum("ij,ij->i", acc, z_body)
        each = np.column_stack([thrust, torque]) @ mix.T
        speed = np.sqrt(np.maximum(each, 0.0) / af.thrust_coefficient)
        span = af.rotor_speed_max - af.rotor_speed_min
        return np.clip(2 * (speed - af.rotor_speed_min) / span - 1, -1, 1).astype(np.float32)

    return act


def test_robustness_rows_carry_the_hover_quality_of_a_hovering_policy():
    task = make_task("hover")
    names = ["nominal", "sensor noise x1"]
    results = R.run(hover_controller(task), task, episodes=4, only=names)
    assert [r["row"] for r in results] == names
    for r in results:
        assert r["success_rate"] > 0.5
        q = {k: r[k] for k in quality.METRICS}
        assert all(math.isfinite(v) for v in q.values()), q
        # Calm: small steps, far from the limits, nearly level and still.
        assert 0 < q["command_change_mean"] < 0.05 and q["commands_at_limit"] == 0.0
        assert q["tilt_mean_deg"] < 3 and q["gyro_rms_rad_s"] < 0.5
    s = R.score(results)
    assert s["nominal_command_change_mean"] == results[0]["command_change_mean"]
    assert {f"nominal_{k}" for k in quality.METRICS} <= set(s)
    assert "change limit" in R.table({"pd": results})


def test_the_hil_closed_loop_records_what_quality_needs():
    """paced.fly (the HIL's closed loop) records commands, attitudes and body rates."""
    task = R.row_task(make_task("hover"), R.rows()[0])  # the nominal row, as the HIL flies it
    r = paced.fly(paced.fixed_answer(hover_controller(task), 0), task, 2, seed=5)
    assert r.body_rates.shape == (task.max_steps + 1, 2, 3)
    q = quality.hover_quality(r, task.window_steps)
    assert all(math.isfinite(v) for v in q.values()), q
    assert q["commands_at_limit"] == 0.0 and q["tilt_mean_deg"] < 3


def test_evaluate_prints_and_records_the_hover_quality(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "run" / "checkpoint.pt")
    plot = tmp_path / "e.png"
    code = train_main(["evaluate", str(ckpt), "--episodes", "4", "--plot", str(plot)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "hover quality" in out.out and f"json            {plot.with_suffix('.json')}" in out.out
    record = json.loads(plot.with_suffix(".json").read_text())
    assert set(quality.METRICS) <= set(record) and record["episodes"] == 4
    assert 0 <= record["success_rate"] <= 1
    flown = record["episodes_flown_to_the_end"]
    assert flown == 0 or math.isfinite(record["command_change_mean"])  # NaN only with none


def test_hil_rows_give_each_flyer_its_own_quality():
    calm = synthetic(np.full((STEPS, EPISODES, 4), 0.2))
    chatter = synthetic(square_wave(25.0))
    q = closed_loop_quality({"board": chatter, "reference": calm, "float": calm}, WINDOW)
    assert set(q) == set(quality.METRICS)
    assert q["commands_at_limit"] == {"board": 1.0, "reference": 0.0, "float": 0.0}
    assert q["command_peak_hz"]["board"] == pytest.approx(25.0)
    assert q["command_change_mean"]["board"] > 0.9 and q["command_change_mean"]["float"] == 0


def test_reports_write_a_figure_with_nothing_to_measure_as_null():
    import json

    from sim import report_json

    text = report_json.dumps({"rows": [{"gyro": math.nan, "ok": 1.0, "inf": math.inf}]})
    assert json.loads(text) == {"rows": [{"gyro": None, "ok": 1.0, "inf": None}]}
    assert "NaN" not in text and "Infinity" not in text
