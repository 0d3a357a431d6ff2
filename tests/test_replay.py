"""The replay buffer's n-step returns against a plain per-environment reference."""

import numpy as np
import pytest

from train.replay import ReplayBuffer

GAMMA = 0.9


def fill(capacity: int, n_envs: int, steps: int, seed: int = 0):
    """Random episodes of n_envs environments; returns the buffer and, per environment,
    its transitions in time order as (row, reward, terminal, ended, next_obs)."""
    rng = np.random.default_rng(seed)
    buf = ReplayBuffer(capacity, obs_dim=1, act_dim=1, stride=n_envs)
    history: list[list[tuple]] = [[] for _ in range(n_envs)]
    for t in range(steps):
        rew = rng.normal(size=n_envs).astype(np.float32)
        terminal = rng.random(n_envs) < 0.05
        ended = terminal | (rng.random(n_envs) < 0.05)  # crashes and time limits
        obs = np.full((n_envs, 1), t, np.float32)
        nxt = obs + 0.5 + np.arange(n_envs)[:, None] * 1000  # unique per row
        rows = (buf.pos + np.arange(n_envs)) % capacity
        buf.add(obs, np.zeros((n_envs, 1)), rew, nxt, terminal, ended=ended)
        for e in range(n_envs):
            history[e].append((rows[e], rew[e], terminal[e], ended[e], nxt[e, 0], t))
    return buf, history


def reference(history, buf, n_step: int) -> dict:
    """row -> (return, bootstrap obs, discount), walking each environment's own history,
    limited to rows still in the buffer (the newest ``capacity``)."""
    out = {}
    newest = max(h[-1][5] for h in history)
    oldest = newest - buf.capacity // buf.stride + 1
    for h in history:
        live = [x for x in h if x[5] >= oldest]
        for i, (row, *_rest) in enumerate(live):
            ret, k = 0.0, 0
            for j in range(i, min(i + n_step, len(live))):
                _, r, term, ended, nxt, _t = live[j]
                ret += GAMMA**k * r
                k += 1
                last_term, last_next = term, nxt
                if ended:
                    break
            out[row] = (ret, last_next, GAMMA**k * (1.0 - last_term))
    return out


@pytest.mark.parametrize("n_step", [1, 3, 5])
@pytest.mark.parametrize("capacity, steps", [(400, 37), (400, 300)])  # part-filled; wrapped
def test_n_step_returns_follow_each_environment_until_its_episode_ends(n_step, capacity, steps):
    buf, history = fill(capacity, n_envs=8, steps=steps, seed=n_step)
    want = reference(history, buf, n_step)
    rng = np.random.default_rng(1)
    obs, act, ret, next_obs, discount, priv, next_priv = buf.sample(rng, 2000, GAMMA, n_step)
    rows = np.random.default_rng(1).integers(0, buf.size, size=2000)  # the rows drawn
    for i, row in enumerate(rows):
        r, nxt, d = want[row]
        assert ret[i, 0].item() == pytest.approx(r, rel=1e-5, abs=1e-5)
        assert next_obs[i, 0].item() == nxt
        assert discount[i, 0].item() == pytest.approx(d, rel=1e-6)
    if n_step > 1:  # the test would notice a chain that ignored episode ends or the stride
        assert (discount.numpy() < GAMMA**n_step - 1e-6).any()
        assert np.isclose(discount.numpy(), GAMMA**n_step).any()


def test_state_dict_round_trip_keeps_episode_ends():
    buf, _ = fill(64, n_envs=4, steps=10)
    again = ReplayBuffer(64, 1, 1, stride=4)
    again.load_state_dict(buf.state_dict())
    a = buf.sample(np.random.default_rng(3), 50, GAMMA, 4)
    b = again.sample(np.random.default_rng(3), 50, GAMMA, 4)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.numpy(), y.numpy())
