"""The module a trial trains and saves: every network needed to act (imports torch).

:class:`Agent` holds ``q_net`` (dqn) or ``policy``, ``value`` (the critic or learned baseline;
``None`` with the running-average baseline) and, for continuous actions, ``log_std`` (pg).
``agent(obs)`` maps a float32 observation batch ``(batch, obs_dim)`` to the action the agent
takes, in the env's own terms: the greedy action for dqn, the most likely action (discrete)
or the Gaussian mean clipped to the bounds (continuous) for pg.
It is a plain tensor function, so ``torch.export`` (the platform's MLflow model) captures it.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import nn

from nasforge.training import ACTIVATIONS


def mlp(in_dim: int, out_dim: int, *, n_layers: int, units: int, activation: str) -> nn.Sequential:
    """``[Linear -> activation] * n_layers -> Linear``."""
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(n_layers):
        layers += [nn.Linear(width, units), ACTIVATIONS[activation]()]
        width = units
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class Agent(nn.Module):
    """Networks of one rl configuration for one task (see the module docstring).

    Example (a trained agent from a search; see :class:`nasforge_rl.RLFamily`)::

        import gymnasium as gym, torch
        agent = result.best_model()                      # an Agent, weights loaded, eval mode
        env = gym.make("CartPole-v1")
        obs, _ = env.reset(seed=0)
        action = agent(torch.as_tensor(obs[None], dtype=torch.float32))[0]
        env.step(action.item())                           # continuous: env.step(action.numpy())
    """

    def __init__(self, *, algorithm: str, info: Mapping[str, Any], n_layers: int, units: int,
                 activation: str, value_net: bool = True, log_std_init: float = 0.0,
                 deterministic: bool = True, eval_episodes: int = 10, test_episodes: int = 100):
        super().__init__()
        self.algorithm = algorithm
        self.discrete = info["action"] == "discrete"
        self.action_start = int(info.get("action_start", 0))
        self.deterministic = deterministic          # how evaluate() acts (pg); dqn is always greedy
        self.eval_episodes, self.test_episodes = eval_episodes, test_episodes
        obs_dim = int(info["obs_dim"])
        n_out = int(info["n_actions"]) if self.discrete else math.prod(info["action_shape"])
        arch = dict(n_layers=n_layers, units=units, activation=activation)
        if algorithm == "dqn":
            self.q_net = mlp(obs_dim, n_out, **arch)
        else:
            self.policy = mlp(obs_dim, n_out, **arch)
            self.value = mlp(obs_dim, 1, **arch) if value_net else None
            if not self.discrete:
                self.log_std = nn.Parameter(torch.full((n_out,), float(log_std_init)))
        if not self.discrete:
            for bound in ("action_low", "action_high"):     # from the task, not saved with the weights
                self.register_buffer(bound, torch.tensor(info[bound], dtype=torch.float32), persistent=False)

    # -- acting ----------------------------------------------------------------------------
    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """The action taken in each observation: ``(batch,)`` int64 or ``(batch, action_dim)`` float."""
        if self.algorithm == "dqn":
            return self.q_net(obs).argmax(dim=-1) + self.action_start
        out = self.policy(obs)
        if self.discrete:
            return out.argmax(dim=-1) + self.action_start
        return torch.clamp(out, self.action_low, self.action_high)

    def act(self, obs: torch.Tensor, *, deterministic: bool, generator: torch.Generator | None = None) -> torch.Tensor:
        """Network-space actions (indices from 0, or unclipped Gaussian samples), no gradient."""
        with torch.no_grad():
            if self.algorithm == "dqn":
                return self.q_net(obs).argmax(dim=-1)
            out = self.policy(obs)
            if self.discrete:
                if deterministic:
                    return out.argmax(dim=-1)
                return torch.multinomial(torch.softmax(out, dim=-1), 1, generator=generator).squeeze(-1)
            if deterministic:
                return out
            noise = torch.randn(out.shape, generator=generator, device=out.device, dtype=out.dtype)
            return out + self.log_std.exp() * noise

    def log_prob_entropy(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``log pi(a|s)`` and the policy's entropy in each state (pg), with gradients."""
        out = self.policy(obs)
        if self.discrete:
            logp = torch.log_softmax(out, dim=-1)
            return logp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1), -(logp.exp() * logp).sum(-1)
        dist = torch.distributions.Normal(out, self.log_std.exp().expand_as(out))
        return dist.log_prob(actions).sum(-1), dist.entropy().sum(-1)

    def extra_repr(self) -> str:
        return f"algorithm={self.algorithm!r}, discrete={self.discrete}"
