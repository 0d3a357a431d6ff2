"""DDPG (Lillicrap et al. 2016) and TD3 (Fujimoto et al. 2018): networks and one update.

The update reads top to bottom: critic(s) toward the TD target, then the actor up the
critic's slope, then the target networks. docs/actor-loss.md explains the actor step and
why the critic must not move during it.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from sim.contract.actor import Actor
from train.config import TrainConfig


class Critic(nn.Module):
    """Q(s, a): an MLP over the concatenation [s, a], s the critic's input (critic_input)."""

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], layer_norm: bool = False
    ):
        super().__init__()
        layers: list[nn.Module] = []
        width = obs_dim + act_dim
        for h in hidden:
            # LayerNorm keeps the critic's features bounded, which tames the value
            # overestimation that makes single-critic DDPG unstable (Bjorck et al. 2022).
            layers += [nn.Linear(width, h), *([nn.LayerNorm(h)] if layer_norm else []), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, obs_n: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs_n, act], dim=-1))


class Agent(nn.Module):
    """The actor, one (DDPG) or two (TD3) critics, their targets and optimisers.

    With ``priv_dim`` > 0 the critics are asymmetric: they see the normalised observation
    and the simulator's privileged state (true state, the episode's draws), which the
    actor never does. A critic that knows the mass and the wind need not infer them from
    the noisy history, so its targets are sharper; only the actor is deployed.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        obs_dim: int,
        act_dim: int,
        priv_dim: int = 0,
        previous_action: int | None = None,
    ):
        """``previous_action``: where the observation holds the last command (the first
        of the past actions), for cfg.smooth_temporal."""
        super().__init__()
        if cfg.smooth_temporal > 0 and previous_action is None:
            raise ValueError(
                "smooth_temporal needs a task that observes its past actions (action_history >= 1)"
            )
        self.previous_action = previous_action
        self.actor = Actor(obs_dim, act_dim, cfg.actor_hidden, cfg.activation)
        n_critics = 2 if cfg.algo == "td3" else 1
        self.critics = nn.ModuleList(
            Critic(obs_dim + priv_dim, act_dim, cfg.critic_hidden, cfg.critic_layer_norm)
            for _ in range(n_critics)
        )
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        # The deployed policy: the actor itself, or a slow average of its weights
        # (cfg.policy_average). DDPG's actor keeps chasing the critic's latest errors, so
        # successive actors fly well, then badly; their average flies steadily.
        self.policy = (
            copy.deepcopy(self.actor).requires_grad_(False)
            if cfg.policy_average > 0
            else self.actor
        )
        self.critic_targets = copy.deepcopy(self.critics).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, fused=True)
        self.critic_opt = torch.optim.Adam(self.critics.parameters(), lr=cfg.critic_lr, fused=True)
        self.updates = 0


def critic_input(obs_n: torch.Tensor, priv: torch.Tensor | None) -> torch.Tensor:
    """What the critics see: the normalised observation, plus the privileged state."""
    return obs_n if priv is None or priv.shape[-1] == 0 else torch.cat([obs_n, priv], dim=-1)


def actor_loss(
    agent: Agent, obs: torch.Tensor, form: str, priv: torch.Tensor | None = None
) -> torch.Tensor:
    """The loss whose gradient moves mu(s) toward higher Q(s, mu(s)).

    "autograd": -Q(s, mu(s)).mean(). Backpropagation runs through the critic into the
    actor, so d loss / d theta = -mean_b dQ/da(s_b, mu(s_b)) . dmu(s_b)/d theta.

    "keras": the Udacity project's form. First g = dQ/da at a = mu(s), as a constant
    (detached); then loss = -(g * mu(s)).mean() over batch x action elements. Its
    gradient is the same chain rule divided by the action dimension (the element-wise
    mean), so it is DDPG with the actor's learning rate scaled by 1 / act_dim.
    """
    obs_n = agent.actor.normalise(obs)
    return _actor_loss(agent, critic_input(obs_n, priv), agent.actor.net(obs_n), form)


def _actor_loss(agent: Agent, state: torch.Tensor, action: torch.Tensor, form: str):
    """actor_loss for the action mu(s) already computed (the update reuses it)."""
    if form == "autograd":
        return -agent.critics[0](state, action).mean()
    probe = action.detach().requires_grad_(True)
    (dq_da,) = torch.autograd.grad(agent.critics[0](state, probe).sum(), probe)
    return -(dq_da * action).mean()


def target_action(agent: Agent, next_n: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """mu'(s'); for TD3 (or DDPG with smooth_targets) plus clipped Gaussian noise.

    Target policy smoothing averages the critic's target over nearby actions, so a narrow
    spike in Q cannot be learned as the value of mu'(s').
    """
    next_act = agent.actor_target.net(next_n)
    if cfg.algo == "td3" or cfg.smooth_targets:
        noise = torch.randn_like(next_act) * cfg.target_noise
        noise = noise.clamp(-cfg.target_noise_clip, cfg.target_noise_clip)
        next_act = (next_act + noise).clamp(-1.0, 1.0)
    return next_act


def update(agent: Agent, batch: tuple[torch.Tensor, ...], cfg: TrainConfig) -> dict:
    """One gradient step on a replay batch (obs, action, return, next_obs, discount, and
    optionally the privileged state and next privileged state); returns the losses (0-d
    tensors). ``discount`` is gamma^k for a return of k rewards (ReplayBuffer.sample),
    0 when the last of them ended in a crash."""
    obs, act, rew, next_obs, discount, *privileged = batch
    priv, next_priv = privileged if privileged else (None, None)
    obs_n, next_n = agent.actor.normalise(obs), agent.actor.normalise(next_obs)
    state, next_state = critic_input(obs_n, priv), critic_input(next_n, next_priv)

    # 1. Critics regress onto r + gamma * Q'(s', mu'(s')) (with n-step returns, the sum of
    #    n discounted rewards + gamma^n Q'); no bootstrap past a terminal state (a crash),
    #    but through a time-limit truncation (stored as non-terminal).
    with torch.no_grad():
        next_act = target_action(agent, next_n, cfg)
        next_q = torch.stack([c(next_state, next_act) for c in agent.critic_targets]).min(dim=0)[0]
        target = rew + discount * next_q
    critic_loss = sum(F.mse_loss(c(state, act), target) for c in agent.critics)
    agent.critic_opt.zero_grad(set_to_none=True)
    critic_loss.backward()
    agent.critic_opt.step()
    agent.updates += 1
    # Losses stay tensors: the loop reads them only when it logs, not once per update.
    stats = {"critic_loss": critic_loss.detach()}

    # 2. The actor climbs Q(s, mu(s)). The critic is frozen: gradients flow through it
    #    to the action, but none of its parameters get a gradient or move.
    if agent.updates % (cfg.policy_delay if cfg.algo == "td3" else 1) == 0:
        agent.critics.requires_grad_(False)
        action = agent.actor.net(obs_n)  # mu(s), shared by the loss and the penalty
        loss = _actor_loss(agent, state, action, cfg.actor_loss)
        if cfg.smooth_spatial > 0:  # CAPS-style: nearby states should get nearby actions
            near = obs_n + cfg.smooth_sigma * torch.randn_like(obs_n)
            diff = action - agent.actor.net(near)
            loss = loss + cfg.smooth_spatial * diff.pow(2).sum(dim=-1).mean()
        if cfg.smooth_temporal > 0:  # calm commands: little change from the last one
            at = agent.previous_action
            diff = action - obs[:, at : at + action.shape[-1]]
            loss = loss + cfg.smooth_temporal * diff.pow(2).sum(dim=-1).mean()
        agent.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        agent.actor_opt.step()
        agent.critics.requires_grad_(True)
        stats["actor_loss"] = loss.detach()

        # 3. Targets trail the online networks: theta' <- (1 - tau) theta' + tau theta;
        #    the deployed policy, if averaged, trails the actor the same way, more slowly.
        soft_update(agent.actor_target, agent.actor, cfg.tau)
        soft_update(agent.critic_targets, agent.critics, cfg.tau)
        if agent.policy is not agent.actor:
            soft_update(agent.policy, agent.actor, cfg.policy_average)
    return stats


@torch.no_grad()
def soft_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """Polyak averaging of parameters; buffers (normalisation statistics) are copied."""
    torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), tau)
    for tb, ob in zip(target.buffers(), online.buffers(), strict=True):
        tb.copy_(ob)
