"""Physics of sim.dynamics against closed forms and an independent integrator."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from sim import dynamics as D
from sim import layout as L
from sim.airframes import get_airframe

NO_FLOOR = -np.inf


def rest_state(n, body, rotor=None):
    s = np.zeros((n, L.N_STATE))
    s[:, L.QUAT] = 1.0
    s[:, L.ROTOR : L.ROTOR + 4] = body.hover_rotor_speed() if rotor is None else rotor
    return s


def fly(body, state, cmd, dt, steps, floor=NO_FLOOR):
    """Integrate ``steps`` RK4 steps; returns the list of states after each step."""
    state = state.copy()
    params = np.tile(body.params_row(), (state.shape[0], 1))
    cmd = np.broadcast_to(cmd, (state.shape[0], 4)).copy()
    out = []
    for _ in range(steps):
        D.step(state, cmd, params, body.frame(), dt, 1, floor)
        out.append(state.copy())
    return out


@pytest.mark.parametrize("name", ["crazyflie", "udacity"])
def test_hover_rotor_speed_holds_position_for_5_s(name):
    body = get_airframe(name)
    s0 = rest_state(1, body)
    s0[0, L.POS : L.POS + 3] = (0.3, -0.2, 2.0)
    traj = fly(body, s0, body.hover_rotor_speed(), 0.01, 500)
    drift = np.abs(traj[-1][0, L.POS : L.POS + 3] - s0[0, L.POS : L.POS + 3]).max()
    assert drift < 1e-3
    assert drift < 1e-9  # the analytic hover speed balances exactly, to rounding


def test_reference_hover_speeds():
    # Figures quoted in ../shared/reference.md: ~14,476 RPM and ~403.9 rev/s.
    assert get_airframe("crazyflie").hover_rotor_speed() == pytest.approx(14476, abs=1)
    assert get_airframe("udacity").hover_rotor_speed() == pytest.approx(403.9, abs=0.1)


def test_free_fall_matches_g_t2_over_2():
    body = get_airframe("crazyflie")
    s0 = rest_state(1, body, rotor=0.0)
    s0[0, L.POS + 2] = 100.0
    dt, steps = 0.01, 200
    traj = fly(body, s0, 0.0, dt, steps)
    t = dt * np.arange(1, steps + 1)
    z = np.array([s[0, L.POS + 2] for s in traj])
    np.testing.assert_allclose(z, 100.0 - 0.5 * body.gravity * t**2, rtol=0, atol=1e-9)
    vz = traj[-1][0, L.VEL + 2]
    assert vz == pytest.approx(-body.gravity * t[-1], abs=1e-9)


def angular_acceleration(body, rotor):
    s = rest_state(1, body, rotor=np.asarray(rotor, dtype=float))
    d = D.derivative(s, s[:, L.ROTOR : L.ROTOR + 4].copy(), body.params_row()[None], body.frame())
    return d[0, L.OMEGA : L.OMEGA + 3]


def test_pure_roll_pitch_yaw_torques_give_analytic_angular_acceleration():
    body = get_airframe("crazyflie")
    kf, km, a = body.thrust_coefficient, body.torque_to_thrust, 0.028
    ixx, iyy, izz = body.inertia
    hi, lo = 15000.0, 14000.0
    t_hi, t_lo = kf * hi**2, kf * lo**2
    # Rotors 2, 3 sit at y = +a, rotors 0, 1 at y = -a: a roll torque 2a(T_hi - T_lo).
    roll = angular_acceleration(body, [lo, lo, hi, hi])
    np.testing.assert_allclose(roll, [2 * a * (t_hi - t_lo) / ixx, 0, 0], rtol=1e-12, atol=1e-9)
    # Rotors 1, 2 sit at x = -a: tau_y = -sum(x_i T_i) = 2a(T_hi - T_lo).
    pitch = angular_acceleration(body, [lo, hi, hi, lo])
    np.testing.assert_allclose(pitch, [0, 2 * a * (t_hi - t_lo) / iyy, 0], rtol=1e-12, atol=1e-9)
    # Yaw signs are (-1, +1, -1, +1): raising rotors 1 and 3 yaws positively.
    yaw = angular_acceleration(body, [lo, hi, lo, hi])
    np.testing.assert_allclose(yaw, [0, 0, 2 * km * (t_hi - t_lo) / izz], rtol=1e-12, atol=1e-9)


def test_udacity_pitch_moment_is_t1_minus_t0_times_arm():
    body = get_airframe("udacity")
    n0, n1 = 400.0, 450.0
    acc = angular_acceleration(body, [n0, n1, 420.0, 420.0])
    expected = (body.thrust_coefficient * (n1**2 - n0**2)) * 0.4 / body.inertia[1]
    assert acc[1] == pytest.approx(expected, rel=1e-12)
    assert acc[0] == pytest.approx(0.0, abs=1e-12)


def test_torque_free_spin_conserves_angular_momentum_and_orthonormality():
    body = get_airframe("crazyflie").replace(inertia=(1e-5, 2e-5, 3e-5), gravity=0.0)
    s0 = rest_state(1, body, rotor=0.0)
    s0[0, L.OMEGA : L.OMEGA + 3] = (0.3, 4.0, 0.2)  # near the unstable intermediate axis
    J = np.diag(body.inertia)

    def momentum(s):
        R = D.rotation_matrices(s[:, L.QUAT : L.QUAT + 4])[0]
        return R @ J @ s[0, L.OMEGA : L.OMEGA + 3]

    L0 = momentum(s0)
    traj = fly(body, s0, 0.0, 1e-3, 10_000)
    worst_l, worst_orth = 0.0, 0.0
    for s in traj[::100] + [traj[-1]]:
        worst_l = max(worst_l, np.linalg.norm(momentum(s) - L0) / np.linalg.norm(L0))
        R = D.rotation_matrices(s[:, L.QUAT : L.QUAT + 4])[0]
        worst_orth = max(worst_orth, np.abs(R.T @ R - np.eye(3)).max())
    assert worst_l < 1e-6
    assert worst_orth < 1e-9
    # The tumble really happened: the body rates changed a lot.
    assert np.abs(traj[-1][0, L.OMEGA : L.OMEGA + 3] - s0[0, L.OMEGA : L.OMEGA + 3]).max() > 1


def test_rk4_global_error_falls_about_16x_when_step_halves():
    body = get_airframe("crazyflie")
    s0 = rest_state(1, body)
    s0[0, L.VEL : L.VEL + 3] = (0.3, -0.2, 0.1)
    s0[0, L.OMEGA : L.OMEGA + 3] = (2.0, -1.0, 0.5)
    cmd = np.array([15000.0, 14000.0, 14800.0, 14300.0])
    T = 0.5

    def final(dt):
        return fly(body, s0, cmd, dt, int(round(T / dt)))[-1][0]

    ref = final(0.02 / 64)
    errors = [np.abs(final(dt) - ref)[: L.ROTOR].max() for dt in (0.02, 0.01, 0.005)]
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    assert all(12 < r < 20 for r in ratios), (errors, ratios)


def test_batched_step_equals_n_single_steps():
    body = get_airframe("udacity")
    rng = np.random.default_rng(0)
    n = 200
    s = rest_state(n, body)
    s[:, L.POS : L.POS + 3] = rng.normal(size=(n, 3)) + (0, 0, 20)
    s[:, L.VEL : L.VEL + 3] = rng.normal(size=(n, 3))
    q = rng.normal(size=(n, 4))
    s[:, L.QUAT : L.QUAT + 4] = q / np.linalg.norm(q, axis=1, keepdims=True)
    s[:, L.OMEGA : L.OMEGA + 3] = rng.normal(size=(n, 3))
    s[:, L.ROTOR : L.ROTOR + 4] = rng.uniform(0, 900, size=(n, 4))
    cmd = rng.uniform(0, 900, size=(n, 4))
    params = np.tile(body.params_row(), (n, 1)) * rng.uniform(0.9, 1.1, size=(n, L.N_PARAMS))
    batched = s.copy()
    D.step(batched, cmd, params, body.frame(), 0.01, 2, 0.0)
    for e in range(n):
        single = s[e : e + 1].copy()
        D.step_serial(single, cmd[e : e + 1], params[e : e + 1], body.frame(), 0.01, 2, 0.0)
        np.testing.assert_array_equal(single[0], batched[e])


def test_udacity_vertical_climb_matches_independent_1d_ode():
    body = get_airframe("udacity")
    kf, tau, m, g = body.thrust_coefficient, body.motor_time_constant, body.mass, body.gravity
    c0, c1, c2 = body.thrust_fit
    D_prop, drag_z = body.propeller_diameter, body.linear_drag[2]
    cmd = 600.0

    def rhs(_, y):
        z, vz, n = y
        ct = c0
        if vz > 0 and n > 0:
            j = vz / (n * D_prop)
            ct = max(c0 - c1 * j - c2 * j * j, 0.0)
        thrust = 4 * kf * n * n * ct / c0
        return [vz, (thrust - drag_z * vz * abs(vz)) / m - g, (cmd - n) / tau]

    T, dt = 3.0, 0.005
    t_eval = dt * np.arange(1, int(T / dt) + 1)
    ode = solve_ivp(
        rhs, (0, T), [10.0, 0.0, 0.0], t_eval=t_eval, rtol=1e-11, atol=1e-11, method="DOP853"
    )
    s0 = rest_state(1, body, rotor=0.0)
    s0[0, L.POS + 2] = 10.0
    traj = fly(body, s0, cmd, dt, len(t_eval))
    z = np.array([s[0, L.POS + 2] for s in traj])
    vz = np.array([s[0, L.VEL + 2] for s in traj])
    assert z[-1] > 30  # it really climbed, with inflow reducing thrust
    np.testing.assert_allclose(z, ode.y[0], atol=1e-5)
    np.testing.assert_allclose(vz, ode.y[1], atol=1e-5)
    # Level flight throughout: no sideways motion or rotation from equal rotors.
    assert np.abs(traj[-1][0, [L.POS, L.POS + 1, L.OMEGA, L.OMEGA + 1, L.OMEGA + 2]]).max() < 1e-9


def test_floor_stops_the_vehicle():
    body = get_airframe("udacity")
    s0 = rest_state(1, body, rotor=0.0)
    s0[0, L.POS + 2] = 0.5
    traj = fly(body, s0, 0.0, 0.01, 100, floor=0.0)
    assert traj[-1][0, L.POS + 2] == 0.0
    assert np.all(traj[-1][0, L.VEL : L.VEL + 3] == 0.0)


def test_degenerate_quaternion_is_reset_not_divided_by_zero():
    # A crashed vehicle held for hundreds of steps in an evaluation can spin up until its
    # quaternion underflows; the step must stay finite instead of raising.
    body = get_airframe("crazyflie")
    s0 = rest_state(2, body)
    s0[0, L.QUAT : L.QUAT + 4] = 0.0
    s0[1, L.QUAT : L.QUAT + 4] = 1e-200
    traj = fly(body, s0, body.hover_rotor_speed(), 0.01, 3)
    assert np.all(np.isfinite(traj[-1]))
    assert np.allclose(np.linalg.norm(traj[-1][:, L.QUAT : L.QUAT + 4], axis=1), 1.0)


def test_kernel_cache_is_dropped_when_a_source_changes(tmp_path, monkeypatch):
    from sim import kernel_cache

    (tmp_path / "batch.cpython-311.nbi").write_bytes(b"index")
    (tmp_path / "batch._step-1.py311.nbc").write_bytes(b"code")
    assert kernel_cache.drop_if_stale(tmp_path)  # no stamp yet: stale
    assert not list(tmp_path.glob("*.nb?"))
    (tmp_path / "batch.cpython-311.nbi").write_bytes(b"index")
    assert not kernel_cache.drop_if_stale(tmp_path)  # same sources: kept
    monkeypatch.setattr(kernel_cache, "sources_hash", lambda: "edited")
    assert kernel_cache.drop_if_stale(tmp_path)
    assert not (tmp_path / "batch.cpython-311.nbi").exists()
