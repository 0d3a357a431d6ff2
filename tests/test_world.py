"""The world the policy meets: latency, motor lags, mismatch, disturbances, sensor noise,
and what the flight controller keeps (integral, past actions); each checked against what
it must do, one at a time."""

import math

import numpy as np
import pytest

from sim import dynamics as D
from sim import layout as L
from sim import observation as OB
from sim import robustness as R
from sim.batch import QuadBatch
from sim.tasks import make_task

# Every randomised quantity pinned at its nominal value (the robustness suite's base
# world): a test then moves one of them.
STILL = R.STILL


def level_at_target(b):
    """Every environment level, at rest, on the target, rotors at hover speed."""
    b.state[:] = 0.0
    b.state[:, L.POS : L.POS + 3] = b.target
    b.state[:, L.QUAT] = 1.0
    b.state[:, L.ROTOR : L.ROTOR + 4] = b.hover_speed


def batch(n=1, seed=0, **changes):
    b = QuadBatch(make_task("hover", **{**STILL, **changes}), n, seed=seed)
    b.reset()
    return b


def rotor_after_steps(latency_s, physics_hz=100.0, steps=3):
    """Rotor 0's speed after each control step: hover commands, then full throttle."""
    b = batch(latency_s=latency_s, physics_hz=physics_hz)
    level_at_target(b)
    full = np.ones((1, 4))
    out = []
    for _ in range(steps):
        b.step(full)
        out.append(b.state[0, L.ROTOR])
    return np.array(out)


def test_latency_delays_the_command():
    hover = batch().hover_speed
    now = rotor_after_steps((0.0, 0.0))
    late = rotor_after_steps((0.01, 0.01))  # one physics step = one control step at 100 Hz
    later = rotor_after_steps((0.02, 0.02))
    assert now[0] > hover * 1.01
    assert late[0] == pytest.approx(hover) and late[1] == pytest.approx(now[0])
    assert later[1] == pytest.approx(hover) and later[2] == pytest.approx(now[0])
    # At 200 Hz physics, 5 ms is half a control step: the first half still hovers.
    half = rotor_after_steps((0.005, 0.005), physics_hz=200.0)
    whole = rotor_after_steps((0.0, 0.0), physics_hz=200.0)
    assert hover < half[0] < whole[0]


def test_latency_between_physics_steps_switches_the_command_on_time():
    """5 ms at 100 Hz physics: the step is split where the late command arrives, so the
    rotor follows the exact first-order response from that instant (not 0 or 10 ms)."""
    b = batch(latency_s=(0.005, 0.005), physics_hz=100.0)
    full = b.lo + b.span
    tau = b.params[0, L.P_TAU_UP]
    rotor = rotor_after_steps((0.005, 0.005), physics_hz=100.0, steps=1)[0]
    exact = full + (b.hover_speed - full) * math.exp(-0.005 / tau)
    assert rotor == pytest.approx(exact, rel=1e-6)


def test_motor_lags_differ_speeding_up_and_slowing_down():
    tau = make_task("hover").body().motor_time_constant
    b = batch(n=2, motor_tau_up_scale=(0.5, 0.5), motor_tau_down_scale=(2.0, 2.0))
    level_at_target(b)
    lo, span = b.lo, b.span
    w0 = b.hover_speed
    b.step(np.array([[1.0] * 4, [-1.0] * 4]))
    t = 1.0 / b.task.control_hz
    up = (lo + span) + (w0 - lo - span) * math.exp(-t / (0.5 * tau))
    down = lo + (w0 - lo) * math.exp(-t / (2.0 * tau))
    assert b.state[0, L.ROTOR] == pytest.approx(up, rel=1e-6)
    assert b.state[1, L.ROTOR] == pytest.approx(down, rel=1e-6)


def body_derivative(b):
    s = b.state.copy()
    return D.derivative(s, s[:, L.ROTOR : L.ROTOR + 4].copy(), b.params, b.frame)


def test_motor_mismatch_arm_force_and_torque_enter_the_equations():
    b = batch(n=1)
    level_at_target(b)
    base = body_derivative(b)[0]
    assert abs(base[L.VEL + 2]) < 1e-9 and np.allclose(base[L.OMEGA : L.OMEGA + 3], 0)
    p = b.params[0]
    m, g = p[L.P_MASS], b.body.gravity
    # One rotor 10% stronger: extra lift of a quarter of 10% of the weight, and a moment.
    p[L.P_MOTOR] = 1.1
    d = body_derivative(b)[0]
    assert d[L.VEL + 2] == pytest.approx(0.1 * g / 4, rel=1e-9)
    hub = np.asarray(b.body.rotor_positions[0])
    extra = 0.1 * m * g / 4
    assert d[L.OMEGA] == pytest.approx(hub[1] * extra / p[L.P_IXX], rel=1e-9)
    # A longer arm scales that moment by the same factor.
    p[L.P_ARM] = 1.2
    assert body_derivative(b)[0][L.OMEGA] == pytest.approx(1.2 * d[L.OMEGA], rel=1e-9)
    p[L.P_MOTOR], p[L.P_ARM] = 1.0, 1.0
    # A constant force (world) and torque (body).
    p[L.P_FORCE : L.P_FORCE + 3] = (0.01, -0.02, 0.03)
    p[L.P_TORQUE : L.P_TORQUE + 3] = (1e-5, 2e-5, -3e-5)
    d = body_derivative(b)[0]
    np.testing.assert_allclose(d[L.VEL : L.VEL + 3], np.array([0.01, -0.02, 0.03]) / m)
    inertia = p[L.P_IXX : L.P_IZZ + 1]
    np.testing.assert_allclose(d[L.OMEGA : L.OMEGA + 3], np.array([1e-5, 2e-5, -3e-5]) / inertia)


def test_per_episode_draws_stay_in_their_ranges():
    t = make_task("hover", latency_s=(0.0, 0.02))
    b = QuadBatch(t, 4000, seed=1)
    b.reset()
    p, body = b.params, b.body
    for col, (lo, hi), nominal in (
        (L.P_MASS, t.mass_scale, body.mass),
        (L.P_IXX, t.inertia_scale, body.inertia[0]),
        (L.P_IZZ, t.inertia_scale, body.inertia[2]),
        (L.P_KF, t.thrust_scale, body.thrust_coefficient),
        (L.P_TAU_UP, t.motor_tau_up_scale, body.motor_time_constant),
        (L.P_TAU_DOWN, t.motor_tau_down_scale, body.motor_time_constant),
    ):
        r = p[:, col] / nominal
        assert lo <= r.min() < lo + 0.05 * (hi - lo) and hi - 0.05 * (hi - lo) < r.max() <= hi
    np.testing.assert_array_equal(p[:, L.P_IXX], p[:, L.P_IYY])  # one draw for x and y
    motors = p[:, L.P_MOTOR : L.P_MOTOR + 4]
    assert np.abs(motors - 1).max() <= t.motor_mismatch
    weight = p[:, L.P_MASS] * body.gravity
    force = np.linalg.norm(p[:, L.P_FORCE : L.P_FORCE + 3], axis=1)
    assert (force <= t.disturbance_force * weight + 1e-15).all()
    assert force.max() > 0.9 * t.disturbance_force * weight.min()
    torque = np.linalg.norm(p[:, L.P_TORQUE : L.P_TORQUE + 3], axis=1)
    assert (torque <= t.com_offset * weight + 1e-15).all()
    assert np.abs(p[:, L.P_GYRO_BIAS : L.P_GYRO_BIAS + 3]).max() <= t.gyro_bias
    delay_ms = p[:, L.P_DELAY] * 1000 / t.physics_hz  # physics steps, fractions allowed
    assert set(np.unique(delay_ms)) == set(range(21))  # 0-20 ms on a 1 ms grid


def test_a_new_stage_draws_new_episodes_from_its_ranges_and_keeps_the_running_ones():
    t = make_task("hover")
    b = QuadBatch(t.replace(latency_s=(0.0, 0.005), mass_scale=(1.0, 1.0)), 500, seed=3)
    b.reset()
    before = b.params.copy()
    b.set_task(t)
    np.testing.assert_array_equal(b.params, before)  # episodes under way keep their world
    assert (b.tp == t.packed()).all()
    b.reset(np.arange(250))
    delay_ms = b.params[:, L.P_DELAY] * 1000 / t.physics_hz
    assert delay_ms[250:].max() <= 5 and delay_ms[:250].max() > 15  # the new range
    assert (b.params[250:, L.P_MASS] == b.body.mass).all()
    assert b.params[:250, L.P_MASS].std() > 0
    for fixed in ({"physics_hz": 500.0}, {"action_history": 4}, {"target": (0.0, 0.0, 1.0)}):
        with pytest.raises(ValueError, match=f"set_task: {next(iter(fixed))} cannot change"):
            b.set_task(t.replace(**fixed))


def test_observation_noise_has_the_configured_spread_and_the_gyro_its_bias():
    b = batch(n=20000, seed=3, noise_position=0.01, noise_velocity=0.02, noise_gyro=0.03)
    b.state[:] = b.state[0]  # one true state, many estimates of it
    b.params[:, L.P_GYRO_BIAS : L.P_GYRO_BIAS + 3] = (0.1, -0.1, 0.0)
    o = b.observe().astype(np.float64)
    oo = b.oo
    s = b.state[0]
    pos = o[:, oo[OB.O_POS] : oo[OB.O_POS] + 3] - (s[:3] - b.target)
    vel = o[:, oo[OB.O_VEL] : oo[OB.O_VEL] + 3] - s[L.VEL : L.VEL + 3]
    gyro = o[:, oo[OB.O_RATES] : oo[OB.O_RATES] + 3] - s[L.OMEGA : L.OMEGA + 3]
    for err, std in ((pos, 0.01), (vel, 0.02), (gyro, 0.03)):
        np.testing.assert_allclose(err.std(axis=0), std, rtol=0.03)
    np.testing.assert_allclose(gyro.mean(axis=0), (0.1, -0.1, 0.0), atol=0.002)
    np.testing.assert_allclose(pos.mean(axis=0), 0.0, atol=5e-4)


def test_attitude_noise_keeps_a_rotation_matrix_close_to_the_true_one():
    b = batch(n=5000, seed=4, noise_attitude=0.02)
    b.state[:] = b.state[0]
    o = b.observe().astype(np.float64)
    r = o[:, 3:12].reshape(-1, 3, 3)
    true = D.rotation_matrices(b.state[:1, L.QUAT : L.QUAT + 4])[0]
    np.testing.assert_allclose(
        r @ r.transpose(0, 2, 1), np.broadcast_to(np.eye(3), r.shape), atol=1e-5
    )
    angle = np.arccos(np.clip((np.einsum("nij,ij->n", r, true) - 1) / 2, -1, 1))
    # Three axes of std 0.02 rad: the angle is Maxwell-distributed, mean 0.02 * sqrt(8/pi).
    assert angle.mean() == pytest.approx(0.02 * math.sqrt(8 / math.pi), rel=0.05)


def test_the_board_side_state_integral_and_past_actions():
    b = batch(n=1, integral_limit=0.02)
    level_at_target(b)
    b.state[0, L.POS] += 0.5  # hold it 0.5 m off in x (re-placed every step)
    # The reset's own first board step integrated the random start's error: start at 0.
    np.testing.assert_array_equal(
        b.obs[0, b.oo[OB.O_INTEGRAL] :][:3], b.fc[0, L.FC_INTEGRAL : L.FC_INTEGRAL + 3]
    )
    b.fc[0, L.FC_INTEGRAL : L.FC_INTEGRAL + 3] = 0.0
    oo, a0 = b.oo, b.task.initial_action()
    np.testing.assert_allclose(b.obs[0, oo[OB.O_PAST] :], a0)  # before the first step
    acts = [np.full((1, 4), v) for v in (0.1, 0.2, 0.3, 0.4, 0.5)]
    for a in acts:
        b.step(a)
        b.state[0, L.POS : L.POS + 3] = b.target + (0.5, 0.0, 0.0)
        b.state[0, L.VEL : L.OMEGA + 3] = (0, 0, 0, 1, 0, 0, 0, 0, 0, 0)
    o = b.obs[0]
    # Newest first: 0.5 ... 0.1, then the initial command for the rest of the history.
    n = b.task.action_history
    want = np.concatenate(
        [np.repeat([0.5, 0.4, 0.3, 0.2, 0.1], 4), np.broadcast_to(a0, (n - 5, 4)).ravel()]
    )
    np.testing.assert_allclose(o[oo[OB.O_PAST] :], want, atol=1e-7)
    # 0.5 m x 0.01 s per step would reach 0.025 m s; the limit clips it at 0.02.
    assert o[oo[OB.O_INTEGRAL]] == np.float32(0.02) and o[oo[OB.O_INTEGRAL] + 1] == 0.0


def test_same_seed_same_episodes_serial_and_parallel_and_after_a_save():
    t = make_task("hover")
    runs = []
    for parallel in (False, True):
        b = QuadBatch(t, 80, seed=9, parallel=parallel)
        b.reset()
        rng = np.random.default_rng(0)
        for _ in range(30):
            b.step(rng.uniform(-0.2, 0.6, (80, 4)))
        runs.append(b)
    np.testing.assert_array_equal(runs[0].obs, runs[1].obs)
    np.testing.assert_array_equal(runs[0].state, runs[1].state)
    saved = runs[0].state_dict()
    copy = QuadBatch(t, 80, seed=123)
    copy.load_state_dict(saved)
    a = np.full((80, 4), 0.3)
    for b in (runs[0], copy):
        b.step(a)
        b.reset(np.arange(0, 80, 7))
        b.step(a)
    np.testing.assert_array_equal(runs[0].obs, copy.obs)
    np.testing.assert_array_equal(runs[0].params, copy.params)


def test_randomise_off_is_the_nominal_world_seen_exactly():
    b = QuadBatch(make_task("hover", randomise=False), 50, seed=0)
    b.reset()
    assert (b.params == b.body.params_row()).all()
    o = b.obs
    np.testing.assert_allclose(o[:, :3], b.state[:, :3] - b.target, atol=1e-6)
    np.testing.assert_allclose(o[:, 15:18], b.state[:, L.OMEGA : L.OMEGA + 3], atol=1e-6)


@pytest.mark.parametrize(
    "overrides, field, allowed",
    [
        ({"latency_s": (0.0, 0.0155)}, "latency_s", "whole milliseconds"),
        ({"latency_s": (0.02, 0.01)}, "latency_s", "low <= high"),
        ({"mass_scale": (0.0, 1.2)}, "mass_scale", "0 < low <= high"),
        ({"inertia_scale": (2.0, 1.0)}, "inertia_scale", "0 < low <= high"),
        ({"noise_scale": 0.0}, "noise_scale", "> 0"),
        ({"noise_gyro": -0.1}, "noise_gyro", ">= 0"),
        ({"motor_mismatch": 1.5}, "motor_mismatch", "[0, 1)"),
        ({"action_history": 20}, "action_history", "0 to 8"),
        ({"observe_integral": 1}, "observe_integral", "True or False"),
    ],
)
def test_bad_world_configuration_names_the_field_and_allowed_values(overrides, field, allowed):
    with pytest.raises(ValueError, match=field) as err:
        make_task("hover", **overrides)
    assert "allowed" in str(err.value) and allowed in str(err.value)
