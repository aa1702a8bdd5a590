"""Deep Q-learning (Mnih et al. 2015, "Human-level control through deep reinforcement learning").

Experience replay (uniform, with replacement), a target network copied every
``target_update_interval`` env steps (a hard update), epsilon-greedy exploration with
epsilon decaying linearly from ``exploration_initial_eps`` to ``final_eps`` over
``exploration_fraction`` of the budget, the Huber loss (smooth L1, Mnih et al.'s error
clipping) and optionally the double-DQN target of van Hasselt et al. (2016), which picks
the next action with the online network and values it with the target network.

The counting follows Stable-Baselines3 (whose rl-baselines3-zoo settings are the
defaults): every ``train_freq`` env steps, once more than ``learning_starts`` steps were
taken, ``gradient_steps`` updates run; the target is refreshed on the env-step clock
(Mnih et al. count parameter updates instead; with ``train_freq = gradient_steps = 1``
the two agree). Only ``terminated`` stops bootstrapping: an episode cut by a time limit
bootstraps from its last observation.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from nasforge_rl.envs import TRAIN_SEED_KEY, ActionMap, EnvPool, make_env, mean_finished


class ReplayBuffer:
    """A ring buffer of ``(obs, action, reward, next_obs, terminated)`` in numpy arrays."""

    def __init__(self, capacity: int, obs_dim: int):
        self.capacity, self.size, self.pos = capacity, 0, 0
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.actions = np.zeros(capacity, np.int64)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)

    def add(self, obs, actions, rewards, next_obs, terminated) -> None:
        for k in range(len(actions)):
            i = self.pos
            self.obs[i], self.next_obs[i] = obs[k], next_obs[k]
            self.actions[i], self.rewards[i], self.terminated[i] = actions[k], rewards[k], terminated[k]
            self.pos = (i + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def sample(self, rng: np.random.Generator, n_batches: int, batch_size: int, device) -> tuple[torch.Tensor, ...]:
        """``n_batches`` minibatches at once, each tensor shaped ``(n_batches, batch_size, ...)``."""
        idx = rng.integers(0, self.size, size=(n_batches, batch_size))
        arrays = (self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx], self.terminated[idx])
        return tuple(torch.as_tensor(a, device=device) for a in arrays)


def epsilon(config, steps: int, budget: int) -> float:
    """Linear decay over ``exploration_fraction * budget`` env steps, then ``final_eps``."""
    span = config.exploration_fraction * budget
    progress = 1.0 if span <= 0 else min(1.0, steps / span)
    return config.exploration_initial_eps + progress * (config.final_eps - config.exploration_initial_eps)


def train_dqn(agent, task, config, *, budget: int, evaluator, seed: int, device) -> dict:
    """Train ``agent.q_net`` for ``budget`` env steps; returns counters for the final metrics."""
    q_net = agent.q_net
    target = copy.deepcopy(q_net).requires_grad_(False)
    optimizer = torch.optim.Adam(q_net.parameters(), lr=config.lr)
    seeds = np.random.SeedSequence([seed, TRAIN_SEED_KEY]).generate_state(config.n_envs + 1)
    rng = np.random.default_rng(int(seeds[-1]))
    pool = EnvPool(lambda: make_env(task.info["env_id"]), seeds[:-1])
    actions_map = ActionMap.from_info(task.info)
    buffer = ReplayBuffer(config.buffer_size, task.info["obs_dim"])
    steps = updates = 0
    last_loss = math.nan
    try:
        while steps < budget:
            eps = epsilon(config, steps, budget)
            active = list(range(min(config.n_envs, budget - steps)))
            obs = pool.obs[active].copy()
            chosen = agent.act(torch.as_tensor(obs, device=device), deterministic=True).cpu().numpy()
            explore = rng.random(len(active)) < eps
            env_actions = [actions_map.to_env(a) for a in chosen]
            for k, random_action in zip(np.flatnonzero(explore), pool.sample_actions(np.flatnonzero(explore))):
                env_actions[k] = random_action
                chosen[k] = int(random_action) - actions_map.start
            n_finished = len(pool.finished)
            step = pool.step(active, env_actions)
            buffer.add(obs, chosen, step.rewards, step.next_obs, step.terminated)
            before, steps = steps, steps + len(active)
            evaluator.train_episodes += [(steps, r) for r, _ in pool.finished[n_finished:]]
            if steps // config.target_update_interval > before // config.target_update_interval:
                target.load_state_dict(q_net.state_dict())
            if steps > config.learning_starts and steps // config.train_freq > before // config.train_freq:
                last_loss = _train(q_net, target, optimizer, buffer, rng, config, device)
                updates += config.gradient_steps
            if evaluator.due(steps):
                evaluator(steps, updates, lambda: {"train_return": mean_finished(pool), "epsilon": eps,
                                                   "loss": last_loss})
    finally:
        pool.close()
    return {"env_steps": steps, "episodes": len(pool.finished), "train_return": mean_finished(pool)}


def _train(q_net, target, optimizer, buffer: ReplayBuffer, rng, config, device) -> float:
    """``gradient_steps`` Huber-loss updates on minibatches from the replay buffer; mean loss."""
    obs, actions, rewards, next_obs, terminated = buffer.sample(rng, config.gradient_steps, config.batch_size, device)
    total = torch.zeros((), device=device)
    for g in range(config.gradient_steps):
        with torch.no_grad():
            next_q = target(next_obs[g])
            if config.double_dqn:
                next_v = next_q.gather(1, q_net(next_obs[g]).argmax(dim=1, keepdim=True)).squeeze(1)
            else:
                next_v = next_q.max(dim=1).values
            y = rewards[g] + config.gamma * (1.0 - terminated[g]) * next_v
        q = q_net(obs[g]).gather(1, actions[g].unsqueeze(1)).squeeze(1)
        loss = nn.functional.smooth_l1_loss(q, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(q_net.parameters(), config.max_grad_norm)
        optimizer.step()
        total += loss.detach()
    value = (total / config.gradient_steps).item()
    if not math.isfinite(value):
        raise FloatingPointError(f"DQN loss is {value}")
    return value
