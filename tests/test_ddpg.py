"""The actor update the user asked about, and the rest of one DDPG/TD3 update."""

import copy

import pytest
import torch

from sim.tasks import ACT_DIM, OBS_DIM
from train.config import make_config
from train.ddpg import Agent, actor_loss, soft_update, target_action, update


def make_agent(algo="ddpg", seed=0, **overrides):
    torch.manual_seed(seed)
    cfg = make_config("hover", algo=algo, **overrides)
    agent = Agent(cfg, OBS_DIM, ACT_DIM)
    # Non-trivial normalisation, so that the tests cover it too.
    agent.actor.obs_mean.uniform_(-0.5, 0.5)
    agent.actor.obs_std.uniform_(0.5, 2.0)
    return cfg, agent


def batch(n=64, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, OBS_DIM, generator=g),
        torch.rand(n, ACT_DIM, generator=g) * 2 - 1,
        torch.randn(n, 1, generator=g),
        torch.randn(n, OBS_DIM, generator=g),
        # The discount of each target: gamma, or 0 where the transition crashed.
        0.99 * (torch.rand(n, 1, generator=g) >= 0.1).float(),
    )


def actor_grads(agent, obs, form):
    agent.actor.zero_grad(set_to_none=True)
    agent.critics.requires_grad_(False)
    actor_loss(agent, obs, form).backward()
    agent.critics.requires_grad_(True)
    return [p.grad.clone() for p in agent.actor.parameters()]


def test_keras_form_is_the_ddpg_gradient_divided_by_the_action_dimension():
    _, agent = make_agent()
    obs = batch()[0]
    g_auto = actor_grads(agent, obs, "autograd")
    g_keras = actor_grads(agent, obs, "keras")
    for a, k in zip(g_auto, g_keras, strict=True):
        assert a.abs().max() > 0
        torch.testing.assert_close(k * ACT_DIM, a, rtol=0, atol=1e-6)


def test_keras_form_evaluates_dq_da_at_mu_s_not_at_replay_actions():
    # Evaluated at replay actions (the Udacity code's slip) the gradient differs.
    _, agent = make_agent()
    obs, act = batch()[:2]
    g_auto = actor_grads(agent, obs, "autograd")
    agent.actor.zero_grad(set_to_none=True)
    probe = act.clone().requires_grad_(True)
    obs_n = agent.actor.normalise(obs)
    (dq_da,) = torch.autograd.grad(agent.critics[0](obs_n, probe).sum(), probe)
    (-(dq_da * agent.actor(obs)).mean() * ACT_DIM).backward()
    wrong = [p.grad for p in agent.actor.parameters()]
    assert max((w - a).abs().max().item() for w, a in zip(wrong, g_auto, strict=True)) > 1e-4


@pytest.mark.parametrize("form", ["autograd", "keras"])
@pytest.mark.parametrize("algo", ["ddpg", "td3"])
def test_actor_step_leaves_every_critic_parameter_bit_identical(form, algo):
    cfg, agent = make_agent(algo, actor_loss=form)
    obs = batch()[0]
    before = copy.deepcopy(agent.critics.state_dict())
    actor_before = copy.deepcopy(agent.actor.state_dict())
    agent.critics.requires_grad_(False)
    loss = actor_loss(agent, obs, form)
    agent.actor_opt.zero_grad()
    loss.backward()
    agent.actor_opt.step()
    agent.critics.requires_grad_(True)
    for name, t in agent.critics.state_dict().items():
        assert torch.equal(t, before[name]), name
    assert all(p.grad is None for p in agent.critics.parameters())
    moved = [not torch.equal(t, actor_before[k]) for k, t in agent.actor.state_dict().items()]
    assert any(moved)


def test_full_update_moves_critic_then_actor_and_not_critic_during_actor_step():
    cfg, agent = make_agent("ddpg")
    critic_before = copy.deepcopy(agent.critics.state_dict())
    stats = update(agent, batch(), cfg)
    assert set(stats) == {"critic_loss", "actor_loss"}
    # The critic moved exactly once, by its own optimiser: replaying the critic step alone
    # from the same start gives bit-identical critic parameters.
    _, twin = make_agent("ddpg")
    twin.critics.load_state_dict(critic_before)
    obs, act, rew, next_obs, discount = batch()
    obs_n, next_n = twin.actor.normalise(obs), twin.actor.normalise(next_obs)
    with torch.no_grad():
        next_act = twin.actor_target.net(next_n)
        y = rew + discount * twin.critic_targets[0](next_n, next_act)
    loss = torch.nn.functional.mse_loss(twin.critics[0](obs_n, act), y)
    twin.critic_opt.zero_grad()
    loss.backward()
    twin.critic_opt.step()
    for name, t in agent.critics.state_dict().items():
        assert torch.equal(t, twin.critics.state_dict()[name]), name


def test_target_networks_move_exactly_by_tau():
    cfg, agent = make_agent("ddpg", tau=0.01)
    with torch.no_grad():
        for p in agent.actor.parameters():
            p.add_(torch.randn_like(p))
    target_before = [p.clone() for p in agent.actor_target.parameters()]
    online = [p.clone() for p in agent.actor.parameters()]
    soft_update(agent.actor_target, agent.actor, cfg.tau)
    for t0, o, t1 in zip(target_before, online, agent.actor_target.parameters(), strict=True):
        torch.testing.assert_close(t1, t0 + cfg.tau * (o - t0), rtol=0, atol=1e-7)
        assert (t1 - t0).abs().max() > 0
    # Normalisation buffers are copied, not averaged.
    assert torch.equal(agent.actor_target.obs_std, agent.actor.obs_std)


def test_td3_target_noise_is_clipped_as_configured():
    cfg, agent = make_agent("td3", target_noise=10.0, target_noise_clip=0.3)
    with torch.no_grad():
        agent.actor_target.net[-2].weight.zero_()
        agent.actor_target.net[-2].bias.zero_()  # mu'(s') = tanh(0) = 0
    next_n = agent.actor.normalise(batch(n=4096)[3])
    a = target_action(agent, next_n, cfg)
    assert a.abs().max().item() == pytest.approx(0.3)
    assert ((a.abs() - 0.3).abs() < 1e-6).float().mean() > 0.9  # std 10: nearly all clipped
    cfg_ddpg = make_config("hover", algo="ddpg", target_noise=10.0)
    assert torch.equal(target_action(agent, next_n, cfg_ddpg), torch.zeros_like(a))


def test_td3_delays_the_actor():
    cfg, agent = make_agent("td3", policy_delay=2)
    first = update(agent, batch(seed=1), cfg)
    second = update(agent, batch(seed=2), cfg)
    assert "actor_loss" not in first and "actor_loss" in second


def test_averaged_policy_trails_the_actor_by_policy_average_per_actor_update():
    cfg, agent = make_agent("td3", policy_average=0.01, policy_delay=2)
    assert agent.policy is not agent.actor
    before = [p.clone() for p in agent.policy.parameters()]
    update(agent, batch(seed=1), cfg)  # critic only (delayed actor): the average waits
    assert all(torch.equal(a, b) for a, b in zip(before, agent.policy.parameters(), strict=True))
    update(agent, batch(seed=2), cfg)
    actor = list(agent.actor.parameters())
    for p0, a, p1 in zip(before, actor, agent.policy.parameters(), strict=True):
        torch.testing.assert_close(p1, p0 + cfg.policy_average * (a - p0), rtol=0, atol=1e-7)
        assert not torch.equal(p1, a)
    assert torch.equal(agent.policy.obs_std, agent.actor.obs_std)
    # Without averaging the deployed policy is the actor itself.
    plain = make_agent("ddpg", policy_average=0.0)[1]
    assert plain.policy is plain.actor


def test_asymmetric_critic_learns_from_the_privileged_state_the_actor_never_sees():
    torch.manual_seed(0)
    cfg = make_config("hover", critic_privileged=True)
    agent = Agent(cfg, OBS_DIM, ACT_DIM, priv_dim=5)
    assert agent.critics[0].net[0].in_features == OBS_DIM + 5 + ACT_DIM
    assert agent.actor.linear_layers()[0].in_features == OBS_DIM
    g = torch.Generator().manual_seed(3)
    priv_a = torch.randn(64, 5, generator=g)
    priv_b = torch.randn(64, 5, generator=g)
    twin = copy.deepcopy(agent)
    update(agent, (*batch(), priv_a, priv_a), cfg)
    update(twin, (*batch(), priv_b, priv_b), cfg)
    pa, pb = agent.critics.state_dict(), twin.critics.state_dict()
    assert any(not torch.equal(pa[k], pb[k]) for k in pa)  # the critic used what it saw
    with pytest.raises(RuntimeError):  # and needs it: the observation alone does not fit
        update(copy.deepcopy(agent), batch(), cfg)


def test_command_change_penalty_pulls_the_actor_toward_its_last_command():
    """smooth_temporal: with a weight that outweighs the critic's pull, mu(s) moves toward
    the last command the observation holds (without it, it does not: tried)."""
    from sim import observation
    from sim.tasks import make_task

    at = observation.offsets(make_task("hover"))[observation.O_PAST]
    torch.manual_seed(0)
    cfg = make_config("hover", smooth_temporal=1e4, smooth_spatial=0.0, actor_lr=1e-3)
    agent = Agent(cfg, OBS_DIM, ACT_DIM, previous_action=at)
    obs, *rest = batch()
    obs[:, at : at + ACT_DIM] = 0.5  # the last command, in [-1, 1]

    def gap():
        with torch.no_grad():
            mu = agent.actor.net(agent.actor.normalise(obs))
        return (mu - 0.5).pow(2).sum(dim=-1).mean().item()

    before = gap()
    for _ in range(20):
        update(agent, (obs, *rest), cfg)
    assert gap() < 0.5 * before


def test_command_change_penalty_needs_an_observed_history():
    cfg = make_config("hover", smooth_temporal=1.0)
    with pytest.raises(ValueError, match="action_history"):
        Agent(cfg, OBS_DIM, ACT_DIM)
