"""Policy gradient: REINFORCE with a baseline (Williams 1992) and an actor-critic variant.

``reinforce``: each update uses ``n_envs`` whole episodes of the current policy (one per
env, played side by side). The loss is ``-log pi(a_t|s_t) * (G_t - b_t)`` with ``G_t`` the
discounted return from ``t`` (reward to go) and ``b_t`` either a learned value network
``V(s_t)`` (fitted to ``G_t`` by mean squared error) or a running average of the returns
(``b <- decay * b + (1 - decay) * mean(G)``, Williams' reinforcement comparison).

``actor_critic``: each update uses ``n_steps`` steps of each of ``n_envs`` envs and the
generalized advantage estimate of Schulman et al. (2016), ``A_t = sum_l (gamma lambda)^l
delta_{t+l}`` with ``delta_t = r_t + gamma V(s_{t+1}) - V(s_t)``; ``gae_lambda = 0`` is the
one-step actor-critic (TD error) advantage, ``1`` the Monte Carlo one. The critic is fitted
to ``A_t + V(s_t)``. Only ``terminated`` stops bootstrapping; a time-limit cut bootstraps
from the last observation.

Both: ``normalize_returns`` standardizes the weights (``G_t - b_t`` or ``A_t``) in each batch,
``entropy_coef`` adds an entropy bonus, the gradients of the policy and of the value network
are each clipped to a global norm of ``max_grad_norm`` (apart, so that the value loss, whose
scale follows the rewards, does not shrink the policy's step), and the
policy is a softmax over logits (discrete) or a Gaussian with a state-independent learned
log standard deviation (continuous; samples are clipped to the action bounds by the env
step only, the log-probability is of the unclipped sample).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from nasforge_rl.envs import TRAIN_SEED_KEY, ActionMap, EnvPool, make_env, mean_finished


class _Run:
    """State shared by both variants: envs, optimizer, counters, sampling generator."""

    def __init__(self, agent, task, config, *, budget, evaluator, seed, device):
        self.agent, self.config, self.budget, self.evaluator, self.device = agent, config, budget, evaluator, device
        seeds = np.random.SeedSequence([seed, TRAIN_SEED_KEY + 1]).generate_state(config.n_envs + 1)
        self.generator = torch.Generator(device=device).manual_seed(int(seeds[-1]))
        self.pool = EnvPool(lambda: make_env(task.info["env_id"]), seeds[:-1])
        self.actions_map = ActionMap.from_info(task.info)
        self.optimizer = torch.optim.Adam(agent.parameters(), lr=config.lr)
        value = list(agent.value.parameters()) if agent.value is not None else []
        value_ids = {id(p) for p in value}
        self.param_groups = [g for g in ([p for p in agent.parameters() if id(p) not in value_ids], value) if g]
        self.steps = self.updates = 0
        self.last_loss = math.nan

    def step(self, active: list[int]):
        """Sample actions for ``active`` envs and step them; returns ``(obs, actions, transitions)``."""
        obs = self.pool.obs[active].copy()
        actions = self.agent.act(torch.as_tensor(obs, device=self.device), deterministic=False,
                                 generator=self.generator).cpu().numpy()
        n_finished = len(self.pool.finished)
        out = self.pool.step(active, [self.actions_map.to_env(a) for a in actions])
        self.steps += len(active)
        self.evaluator.train_episodes += [(self.steps, r) for r, _ in self.pool.finished[n_finished:]]
        if self.evaluator.due(self.steps):
            self.evaluator(self.steps, self.updates, lambda: {"train_return": mean_finished(self.pool),
                                                              "loss": self.last_loss})
        return obs, actions, out

    def update(self, obs, actions, weights, value_targets) -> None:
        """One gradient step on ``-log pi * weights - entropy_coef * H + vf_coef * value MSE``."""
        config, dev = self.config, self.device
        obs = torch.as_tensor(obs, device=dev)
        actions = torch.as_tensor(actions, device=dev)
        weights = torch.as_tensor(weights, dtype=torch.float32, device=dev)
        if config.normalize_returns and len(weights) > 1:
            weights = (weights - weights.mean()) / (weights.std() + 1e-8)
        log_prob, entropy = self.agent.log_prob_entropy(obs, actions)
        loss = -(log_prob * weights).mean() - config.entropy_coef * entropy.mean()
        if value_targets is not None:
            values = self.agent.value(obs).squeeze(-1)
            targets = torch.as_tensor(value_targets, dtype=torch.float32, device=dev)
            loss = loss + config.vf_coef * nn.functional.mse_loss(values, targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for group in self.param_groups:           # the value loss's scale must not shrink the policy step
            nn.utils.clip_grad_norm_(group, config.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        self.last_loss = loss.item()
        if not math.isfinite(self.last_loss):
            raise FloatingPointError(f"policy-gradient loss is {self.last_loss} after {self.steps} env steps")

    def values(self, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.agent.value(torch.as_tensor(obs, device=self.device)).squeeze(-1).cpu().numpy()

    def result(self) -> dict:
        return {"env_steps": self.steps, "episodes": len(self.pool.finished),
                "train_return": mean_finished(self.pool)}


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """``G_t = r_t + gamma * G_{t+1}`` over one whole episode."""
    out = np.zeros(len(rewards), np.float64)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def gae(rewards, values, next_values, terminated, done, *, gamma: float, lam: float) -> np.ndarray:
    """Generalized advantage estimates over one env's rollout (arrays over time)."""
    adv = np.zeros(len(rewards), np.float64)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        delta = rewards[t] + gamma * (1.0 - terminated[t]) * next_values[t] - values[t]
        running = delta + gamma * lam * (1.0 - done[t]) * running
        adv[t] = running
    return adv


def train_reinforce(agent, task, config, *, budget, evaluator, seed, device) -> dict:
    run = _Run(agent, task, config, budget=budget, evaluator=evaluator, seed=seed, device=device)
    baseline = None                                   # running average of returns (baseline="average")
    try:
        while run.steps < budget:
            episodes = [([], [], []) for _ in range(config.n_envs)]     # obs, actions, rewards per env
            active = list(range(config.n_envs))
            while active and run.steps < budget:
                stepped = active[:budget - run.steps]
                obs, actions, out = run.step(stepped)
                for k, i in enumerate(stepped):
                    episodes[i][0].append(obs[k])
                    episodes[i][1].append(actions[k])
                    episodes[i][2].append(out.rewards[k])
                ended = {i for i, done in zip(stepped, out.done) if done}
                active = [i for i in active if i not in ended]
            if active:                                # the budget ran out mid-batch: no update
                break
            obs = np.concatenate([np.asarray(e[0]) for e in episodes])
            actions = np.concatenate([np.asarray(e[1]) for e in episodes])
            returns = np.concatenate([discounted_returns(np.asarray(e[2]), config.gamma) for e in episodes])
            if config.baseline == "value":
                weights, targets = returns - run.values(obs), returns
            else:
                baseline = returns.mean() if baseline is None else baseline
                weights, targets = returns - baseline, None
                baseline = config.baseline_decay * baseline + (1 - config.baseline_decay) * returns.mean()
            run.update(obs, actions, weights, targets)
    finally:
        run.pool.close()
    return run.result()


def train_actor_critic(agent, task, config, *, budget, evaluator, seed, device) -> dict:
    run = _Run(agent, task, config, budget=budget, evaluator=evaluator, seed=seed, device=device)
    n = config.n_envs
    try:
        while run.steps < budget:
            rows = {key: [] for key in ("obs", "actions", "rewards", "next_obs", "terminated", "done")}
            for _ in range(config.n_steps):
                if budget - run.steps < n:           # too few steps left for a full rollout
                    run.step(list(range(budget - run.steps)))
                    break
                obs, actions, out = run.step(list(range(n)))
                for key, value in (("obs", obs), ("actions", actions), ("rewards", out.rewards),
                                   ("next_obs", out.next_obs), ("terminated", out.terminated), ("done", out.done)):
                    rows[key].append(value)
            if len(rows["obs"]) < config.n_steps:
                break
            data = {key: np.stack(value) for key, value in rows.items()}     # (n_steps, n_envs, ...)
            values = run.values(data["obs"].reshape(-1, data["obs"].shape[-1])).reshape(config.n_steps, n)
            next_values = run.values(data["next_obs"].reshape(-1, data["obs"].shape[-1])).reshape(config.n_steps, n)
            adv = np.stack([gae(data["rewards"][:, i], values[:, i], next_values[:, i], data["terminated"][:, i],
                                data["done"][:, i], gamma=config.gamma, lam=config.gae_lambda)
                            for i in range(n)], axis=1)
            flat = lambda a: a.reshape(config.n_steps * n, *a.shape[2:])  # noqa: E731
            run.update(flat(data["obs"]), flat(data["actions"]), flat(adv), flat(adv + values))
    finally:
        run.pool.close()
    return run.result()
