"""Configuration of the rl family: one dataclass for DQN and policy gradient (no torch here).

Fields of the algorithm that is not chosen are ignored (a search space makes them
conditional with ``when: {algorithm: ...}``), but every field is checked, so a bad value
is reported before training whatever the algorithm. Five shared fields default to
``None``, meaning "the chosen algorithm's own default" (:data:`ALGORITHM_DEFAULTS`).

DQN's cost grows with the number of gradient steps, ``budget / train_freq * gradient_steps``;
search spaces therefore sample ``replay_ratio`` (gradient steps per env step, Fedus et al.
2020) with ``train_freq``, which keeps a trial's cost bounded, instead of ``gradient_steps``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nasforge.checks import check_bool, check_choice, check_int, check_number, fail

ALGORITHMS = ("dqn", "pg")
PG_VARIANTS = ("reinforce", "actor_critic")
BASELINES = ("value", "average")
# Kept in step with nasforge.training.ACTIVATIONS (which imports torch).
ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "selu", "silu")

# DQN: the rl-baselines3-zoo CartPole-v1 settings (net [256, 256], lr 2.3e-3, one env).
# PG: small tanh networks and several parallel episodes per update, as in common REINFORCE/A2C setups.
ALGORITHM_DEFAULTS: dict[str, dict[str, Any]] = {
    "dqn": {"units": 256, "lr": 2.3e-3, "n_envs": 1, "max_grad_norm": 10.0, "activation": "relu"},
    "pg": {"units": 64, "lr": 3e-3, "n_envs": 8, "max_grad_norm": 1.0, "activation": "tanh"},
}


@dataclass(kw_only=True)
class RLConfig:
    """An agent (its networks) and how it is trained. See the module docstring for ``None``."""

    algorithm: str = "dqn"                 # dqn (discrete actions only) | pg (discrete or continuous)

    # -- networks: every network (Q, policy, value) is an MLP of n_layers x units ---------------
    n_layers: int = 2
    units: int | None = None               # None: 256 for dqn, 64 for pg
    activation: str | None = None          # None: relu for dqn, tanh for pg
    lr: float | None = None                # Adam step size; None: 2.3e-3 for dqn, 3e-3 for pg
    gamma: float = 0.99                    # discount factor
    max_grad_norm: float | None = None     # global gradient-norm clip; None: 10 for dqn, 1 for pg
    n_envs: int | None = None              # parallel training envs; None: 1 for dqn, 8 for pg

    # -- evaluation: n_evals evenly spaced over the budget, eval_episodes each ------------------
    n_evals: int = 10
    eval_episodes: int = 10                # seeds fixed per task seed: every trial sees the same episodes
    test_episodes: int = 100               # evaluate(split="test"): CartPole's "solved" is a 100-episode mean
    eval_deterministic: bool = True        # pg: act with the mode (argmax / Gaussian mean); False samples
    restore_best: bool = True              # keep the weights of the best evaluation (like SB3's EvalCallback)

    # -- DQN (Mnih et al. 2015); defaults = rl-baselines3-zoo CartPole-v1 ------------------------
    buffer_size: int = 100_000
    batch_size: int = 64
    learning_starts: int = 1000            # env steps of pure exploration before the first update
    target_update_interval: int = 10       # env steps between hard target updates (SB3 counts env steps)
    train_freq: int = 256                  # env steps between training phases
    gradient_steps: int | None = None      # gradient steps per training phase; None: 128 (or from replay_ratio)
    replay_ratio: float | None = None      # gradient steps per env step; sets gradient_steps = ratio * train_freq
    exploration_fraction: float = 0.16     # share of the budget over which epsilon decays linearly
    exploration_initial_eps: float = 1.0
    final_eps: float = 0.04
    double_dqn: bool = False               # van Hasselt et al. (2016) target

    # -- policy gradient (Williams 1992; actor-critic with GAE, Schulman et al. 2016) -----------
    pg_variant: str = "reinforce"          # reinforce: n_envs whole episodes per update; actor_critic
    baseline: str = "value"                # reinforce: learned value network or running average of returns
    baseline_decay: float = 0.9            # average baseline: b <- decay * b + (1 - decay) * mean(G)
    n_steps: int = 16                      # actor_critic: rollout length per env between updates
    gae_lambda: float = 0.95               # actor_critic: 0 = one-step TD advantage, 1 = Monte Carlo
    normalize_returns: bool = True         # standardize (G_t - b) / advantages within each batch
    entropy_coef: float = 0.0              # entropy bonus weight
    vf_coef: float = 0.5                   # value-loss weight (value baseline / critic)
    log_std_init: float = 0.0              # continuous actions: initial state-independent log std

    def __post_init__(self):
        check_choice("algorithm", self.algorithm, ALGORITHMS)
        for name, value in ALGORITHM_DEFAULTS[self.algorithm].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        check_int("n_layers", self.n_layers, low=1)
        check_int("units", self.units, low=1)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_number("lr", self.lr, low=0.0, low_open=True)
        check_number("gamma", self.gamma, low=0.0, high=1.0)
        check_number("max_grad_norm", self.max_grad_norm, low=0.0, low_open=True)
        check_int("n_envs", self.n_envs, low=1)
        check_int("n_evals", self.n_evals, low=1)
        check_int("eval_episodes", self.eval_episodes, low=1)
        check_int("test_episodes", self.test_episodes, low=1)
        check_bool("eval_deterministic", self.eval_deterministic)
        check_bool("restore_best", self.restore_best)
        # DQN
        check_int("buffer_size", self.buffer_size, low=1)
        check_int("batch_size", self.batch_size, low=1)
        if self.batch_size > self.buffer_size:
            raise fail("batch_size", self.batch_size, f"it must not exceed buffer_size = {self.buffer_size}")
        check_int("learning_starts", self.learning_starts, low=0)
        check_int("target_update_interval", self.target_update_interval, low=1)
        check_int("train_freq", self.train_freq, low=1)
        if self.replay_ratio is not None:
            check_number("replay_ratio", self.replay_ratio, low=0.0, low_open=True)
            if self.gradient_steps is not None:
                raise fail("replay_ratio", self.replay_ratio, "give gradient_steps or replay_ratio, not both")
            self.gradient_steps = max(1, round(self.replay_ratio * self.train_freq))
        elif self.gradient_steps is None:
            self.gradient_steps = 128
        check_int("gradient_steps", self.gradient_steps, low=1)
        check_number("exploration_fraction", self.exploration_fraction, low=0.0, high=1.0)
        check_number("exploration_initial_eps", self.exploration_initial_eps, low=0.0, high=1.0)
        check_number("final_eps", self.final_eps, low=0.0, high=1.0)
        if self.final_eps > self.exploration_initial_eps:
            raise fail("final_eps", self.final_eps,
                        f"it must not exceed exploration_initial_eps = {self.exploration_initial_eps}")
        check_bool("double_dqn", self.double_dqn)
        # PG
        check_choice("pg_variant", self.pg_variant, PG_VARIANTS)
        check_choice("baseline", self.baseline, BASELINES)
        check_number("baseline_decay", self.baseline_decay, low=0.0, high=1.0, high_open=True)
        check_int("n_steps", self.n_steps, low=1)
        check_number("gae_lambda", self.gae_lambda, low=0.0, high=1.0)
        check_bool("normalize_returns", self.normalize_returns)
        check_number("entropy_coef", self.entropy_coef, low=0.0)
        check_number("vf_coef", self.vf_coef, low=0.0)
        check_number("log_std_init", self.log_std_init, low=-20.0, high=2.0)
