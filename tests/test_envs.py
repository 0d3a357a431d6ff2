"""Tasks and Gymnasium environments: API, reward, termination, success, bad input."""

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sim
from sim import layout as L
from sim.batch import QuadBatch
from sim.contract.spec import PolicySpec
from sim.tasks import OBS_DIM, OBS_LAYOUT, make_task


def put_at_hover(batch, offset=(0.0, 0.0, 0.0)):
    """Every environment level, at rest, at target + offset, rotors at hover speed."""
    batch.reset()
    batch.state[:] = 0.0
    batch.state[:, L.POS : L.POS + 3] = batch.target + np.asarray(offset)
    batch.state[:, L.QUAT] = 1.0
    batch.state[:, L.ROTOR : L.ROTOR + 4] = batch.hover_speed
    batch.observe()


@pytest.mark.parametrize("env_id", ["quadpilot/Hover-v0", "quadpilot/Takeoff-v0"])
def test_registered_envs_pass_the_gymnasium_checker(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # infinite Box bounds are deliberate
        check_env(env.unwrapped)
    obs, _ = env.reset(seed=3)
    assert obs.shape == (env.unwrapped.task.obs_dim,) and obs.dtype == np.float32


def test_observation_layout_is_consistent():
    assert OBS_DIM == sum(size for _, size, _ in OBS_LAYOUT) == 3 + 9 + 3 + 3 + 3 + 4 * 8
    assert [n for n, *_ in OBS_LAYOUT] == [
        "position_error",
        "rotation_matrix",
        "velocity",
        "body_rates",
        "position_integral",
        "past_actions",
    ]
    b = QuadBatch(make_task("hover-nominal"), 1)
    put_at_hover(b, offset=(0.1, -0.2, 0.3))
    b.state[0, L.VEL : L.VEL + 3] = (1, 2, 3)
    b.state[0, L.OMEGA : L.OMEGA + 3] = (4, 5, 6)
    o = b.observe()[0]
    np.testing.assert_allclose(o[0:3], (0.1, -0.2, 0.3), atol=1e-7)
    np.testing.assert_allclose(o[3:12], np.eye(3).ravel())
    np.testing.assert_allclose(o[12:15], (1, 2, 3))
    np.testing.assert_allclose(o[15:18], (4, 5, 6))
    hover = b.body.hover_action()
    np.testing.assert_allclose(o[18:22], hover, atol=1e-6)
    spec = PolicySpec.of_task(b.task)
    assert spec.obs_dim == b.task.obs_dim == 22
    assert [n for n, *_ in spec.obs_layout][-1] == "rotor_speeds"
    assert PolicySpec.of_task(make_task("hover")).obs_dim == OBS_DIM


def test_reward_at_perfect_hover_and_its_terms():
    task = make_task("hover-nominal")
    b = QuadBatch(task, 1)
    put_at_hover(b)
    a = np.full((1, 4), b.body.hover_action())
    b.step(a)
    assert b.reward[0] == pytest.approx(task.reward_alive + task.reward_precision, abs=1e-6)
    # Offset by 0.2 m and a non-hover action: each term as documented.
    put_at_hover(b, offset=(0.2, 0.0, 0.0))
    a2 = a + 0.1
    b.step(a2)
    st = b.state[0]
    err = np.linalg.norm(st[:3] - b.target)
    speed = np.linalg.norm(st[L.VEL : L.VEL + 3])
    rate = np.linalg.norm(st[L.OMEGA : L.OMEGA + 3])
    assert 0.19 < err < 0.21 and speed > 0  # the extra thrust has started to lift it
    up = b.obs[0, 11]
    expected = (
        task.reward_alive
        + task.reward_precision * np.exp(-err / task.precision_scale)
        - task.reward_position * err
        - task.reward_velocity * speed
        - task.reward_rate * rate
        - task.reward_tilt * (1 - up)
        - task.reward_action * 4 * 0.1**2
    )
    assert b.reward[0] == pytest.approx(expected, abs=1e-6)


def test_perfect_hover_truncates_at_time_limit_with_success():
    env = sim.QuadEnv("hover-nominal")
    env.reset(seed=0)
    put_at_hover(env.batch)
    a = np.full(4, env.batch.body.hover_action(), dtype=np.float32)
    for step in range(1, env.task.max_steps + 1):
        _, _, terminated, truncated, info = env.step(a)
        assert not terminated
        if step < env.task.max_steps:
            assert not truncated and "is_success" not in info
    assert truncated and info["is_success"] is True


def test_survival_outside_success_radius_is_not_success():
    env = sim.QuadEnv("hover-nominal")
    env.reset(seed=0)
    put_at_hover(env.batch, offset=(0.15, 0.0, 0.0))  # equilibrium holds 0.15 m away
    a = np.full(4, env.batch.body.hover_action(), dtype=np.float32)
    for _ in range(env.task.max_steps):
        _, _, terminated, truncated, info = env.step(a)
    assert truncated and not terminated and info["is_success"] is False


def test_leaving_the_box_terminates_with_penalty_and_no_success():
    task = make_task("hover-nominal")
    env = sim.QuadEnv(task)
    env.reset(seed=0)
    put_at_hover(env.batch, offset=(task.max_position_error + 0.05, 0.0, 0.0))
    a = np.full(4, env.batch.body.hover_action(), dtype=np.float32)
    _, reward, terminated, truncated, info = env.step(a)
    assert terminated and not truncated and info["is_success"] is False
    assert reward < -task.termination_penalty + task.reward_alive


def test_flipping_terminates():
    env = sim.QuadEnv("hover-nominal")
    env.reset(seed=0)
    put_at_hover(env.batch)
    env.batch.state[0, L.QUAT : L.QUAT + 4] = (0.0, 1.0, 0.0, 0.0)  # upside down
    _, _, terminated, _, _ = env.step(np.zeros(4, dtype=np.float32))
    assert terminated


def test_takeoff_starts_on_the_ground_and_idle_rotors_stay_there():
    env = sim.QuadEnv("takeoff")
    obs, _ = env.reset(seed=1)
    assert obs[2] == pytest.approx(-10.0, abs=0.6)  # 10 m below the target
    assert env.batch.state[0, L.POS + 2] >= 0.0
    for _ in range(env.task.max_steps):
        obs, _, terminated, truncated, info = env.step(-np.ones(4, dtype=np.float32))
        assert env.batch.state[0, L.POS + 2] >= 0.0
    assert truncated and not terminated and info["is_success"] is False


def test_initial_states_respect_configured_ranges():
    task = make_task("hover-nominal")
    b = QuadBatch(task, 4000, seed=0)
    b.reset()
    s = b.state
    assert np.linalg.norm(s[:, :3] - b.target, axis=1).max() <= task.init_position + 1e-12
    assert np.linalg.norm(s[:, L.VEL : L.VEL + 3], axis=1).max() <= task.init_speed + 1e-12
    assert np.linalg.norm(s[:, L.OMEGA : L.OMEGA + 3], axis=1).max() <= task.init_rate + 1e-12
    tilt = np.degrees(np.arccos(np.clip(b.obs[:, 11], -1, 1)))
    assert tilt.max() <= task.init_tilt_deg + 1e-3 and tilt.max() > 0.9 * task.init_tilt_deg


def test_vector_env_same_step_autoreset_and_seeding():
    env = sim.make_vec("hover-nominal", num_envs=64, seed=5)
    obs0, _ = env.reset(seed=5)
    again, _ = sim.make_vec("hover-nominal", num_envs=64).reset(seed=5)
    np.testing.assert_array_equal(obs0, again)
    actions = np.full((64, 4), -1.0, dtype=np.float32)  # motors off: everyone falls out
    for _ in range(200):
        obs, reward, terminated, truncated, info = env.step(actions)
        if terminated.any():
            break
    done = terminated | truncated
    assert done.any() and info["_final_obs"].tolist() == done.tolist()
    i = int(np.flatnonzero(done)[0])
    assert np.linalg.norm(info["final_obs"][i, :3]) > env.task.max_position_error
    assert np.linalg.norm(obs[i, :3]) <= env.task.init_position + 1e-6  # already reset
    assert info["is_success"][i] == False  # noqa: E712


def test_batched_env_matches_single_envs():
    vec = sim.make_vec("hover-nominal", num_envs=8, seed=11)
    vec.reset(seed=11)
    singles = []
    for e in range(8):
        s = sim.QuadEnv("hover-nominal")
        s.reset(seed=0)
        s.batch.state[:] = vec.batch.state[e]
        singles.append(s)
    rng = np.random.default_rng(0)
    for _ in range(20):
        # Near hover, so that no episode ends (and autoresets) within the 20 steps.
        a = (vec.batch.body.hover_action() + rng.uniform(-0.05, 0.05, (8, 4))).astype(np.float32)
        vobs, vrew, *_ = vec.step(a)
        for e, s in enumerate(singles):
            obs, rew, *_ = s.step(a[e])
            np.testing.assert_array_equal(obs, vobs[e])
            assert rew == vrew[e]


def test_domain_randomisation_is_off_by_default_and_in_range_when_on():
    b = QuadBatch(make_task("hover", randomise=False), 500, seed=0)
    b.reset()
    assert np.all(b.params == b.params[0])
    task = make_task("hover-nominal", randomise=True, mass_scale=(0.8, 1.2))
    b = QuadBatch(task, 500, seed=0)
    b.reset()
    ratio = b.params[:, L.P_MASS] / b.body.mass
    assert ratio.min() >= 0.8 and ratio.max() <= 1.2 and ratio.std() > 0.05
    tau = b.params[:, L.P_TAU_UP] / b.body.motor_time_constant
    lo, hi = task.motor_tau_up_scale
    assert tau.min() >= lo and tau.max() <= hi and tau.std() > 0


# Bad input ------------------------------------------------------------------------------


def test_non_finite_action_names_the_environment_index():
    env = sim.make_vec("hover", num_envs=16, seed=0)
    env.reset()
    actions = np.zeros((16, 4), dtype=np.float32)
    actions[7, 2] = np.nan
    with pytest.raises(ValueError, match="environment index 7"):
        env.step(actions)
    single = sim.QuadEnv("hover")
    single.reset(seed=0)
    with pytest.raises(ValueError, match="environment index 0"):
        single.step(np.array([0, math.inf, 0, 0], dtype=np.float32))


def test_actions_outside_the_box_are_clipped():
    a, b = (sim.QuadEnv("hover-nominal") for _ in range(2))
    a.reset(seed=2)
    b.reset(seed=2)
    oa, *_ = a.step(np.array([5, -7, 1, -1], dtype=np.float32))
    ob, *_ = b.step(np.array([1, -1, 1, -1], dtype=np.float32))
    np.testing.assert_array_equal(oa, ob)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"control_hz": 0.0}, "control_hz"),
        ({"physics_hz": -100.0}, "physics_hz"),
        ({"physics_hz": 150.0}, "physics_hz"),  # not a whole multiple of 100 Hz
        ({"airframe": "blimp"}, "airframe"),
        ({"airframe_overrides": {"mass": 0.0}}, "mass"),
        ({"airframe_overrides": {"motor_time_constant": -1.0}}, "motor_time_constant"),
        ({"success_window_s": 9.0}, "success_window_s"),
        ({"mass_scale": (1.2, 0.8)}, "mass_scale"),
        # The weakest draw could not lift the vehicle (thrust-to-weight 0.78).
        ({"thrust_scale": (0.5, 1.0)}, "thrust_scale"),
        ({"mass_scale": (1.0, 1.4), "thrust_scale": (0.75, 1.0)}, "thrust_scale"),
        ({"latency_s": (0.0, 0.0125)}, "latency_s"),  # not on the 1 ms grid
        ({"wingspan": 3.0}, "wingspan"),
    ],
)
def test_invalid_configuration_names_the_field_and_allowed_values(overrides, field):
    with pytest.raises(ValueError, match=field) as err:
        make_task("hover", **overrides)
    assert "allowed" in str(err.value)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ValueError, match="allowed: hover, hover-nominal, takeoff"):
        make_task("loop")
