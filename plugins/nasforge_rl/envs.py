"""Gymnasium environments as nasforge tasks, seeded episodes and a small pool of envs.

Importing this module does not import gymnasium: every function imports it when called.

A control :class:`~nasforge.data.tasks.Task` carries no data (its ``x_*``/``y_*`` fields are
``None``); ``task.info`` describes the environment: ``env_id``, ``max_episode_steps``,
``reward_threshold``, ``obs_dim``, ``action`` (``"discrete"`` or ``"continuous"``) and
``n_actions``/``action_start`` or ``action_shape``/``action_low``/``action_high``.
An env registered without a time limit gets one of ``DEFAULT_MAX_EPISODE_STEPS``.
Observations that are not a flat ``Box`` (``Discrete``, ``Tuple``, images...) are flattened
with gymnasium's ``FlattenObservation`` (one-hot for ``Discrete``).
"""

from __future__ import annotations

import difflib
import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from nasforge.errors import ConfigError
from nasforge.data.tasks import Task, TaskDef

# Registered under their own names; every other gymnasium id is registered as "gym:<id>".
BUILTIN_ENVS = {
    "CartPole-v1": "balance a pole on a cart; 2 discrete actions, solved at 475 of 500",
    "Acrobot-v1": "swing a two-link arm up; 3 discrete actions, -500 (worst) to about -60",
    "Pendulum-v1": "swing up and hold a pendulum; 1 continuous torque, about -1200 (random) to -150",
}
GYM_PREFIX = "gym:"
DEFAULT_MAX_EPISODE_STEPS = 1000   # time limit for envs registered without one
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}   # episode seeds of evaluate(split): [task seed, code]
TRAIN_SEED_KEY = 10                                # training envs: [trial seed, 10 + algorithm], never a split's


def import_gymnasium():
    try:
        import gymnasium
    except ImportError:
        raise ConfigError("the rl family needs gymnasium: pip install 'nasforge[rl]' "
                          "(or pip install gymnasium)") from None
    return gymnasium


def _unknown_env(env_id: str, reason: str) -> ConfigError:
    gym = import_gymnasium()
    ids = list(gym.registry)
    close = difflib.get_close_matches(env_id, ids, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ConfigError(
        f"unknown gymnasium environment {env_id!r} ({reason}){hint} Installed ids include: "
        f"{', '.join(list(BUILTIN_ENVS) + [i for i in ids[:12] if i not in BUILTIN_ENVS])}, ... "
        f"({len(ids)} in all; gymnasium.pprint_registry() lists them)")


def make_env(env_id: str):
    """``gym.make(env_id)`` with a flat float observation; clear errors for bad or uninstalled ids."""
    gym = import_gymnasium()
    try:
        env = gym.make(env_id)
    except gym.error.UnregisteredEnv as exc:  # NameNotFound, VersionNotFound, NamespaceNotFound
        raise _unknown_env(env_id, str(exc)) from None
    except (gym.error.Error, ImportError) as exc:
        raise ConfigError(f"gymnasium environment {env_id!r} cannot be created here: "
                          f"{type(exc).__name__}: {exc}") from None
    if env.spec is None or env.spec.max_episode_steps is None:
        env = gym.wrappers.TimeLimit(env, DEFAULT_MAX_EPISODE_STEPS)  # no endless evaluation episodes
    space = env.observation_space
    if not (isinstance(space, gym.spaces.Box) and len(space.shape) == 1):
        env = gym.wrappers.FlattenObservation(env)
    return env


def describe_env(env_id: str, env) -> dict[str, Any]:
    """``task.info`` for an env (see the module docstring); rejects action spaces we cannot act in."""
    gym = import_gymnasium()
    action = env.action_space
    info: dict[str, Any] = {
        "env_id": env_id,
        "max_episode_steps": env.spec.max_episode_steps if env.spec else None,
        "reward_threshold": env.spec.reward_threshold if env.spec else None,
        "obs_dim": int(np.prod(env.observation_space.shape)),
        "action_space": str(action),
    }
    if isinstance(action, gym.spaces.Discrete):
        info.update(action="discrete", n_actions=int(action.n), action_start=int(action.start))
    elif isinstance(action, gym.spaces.Box):
        info.update(action="continuous", action_shape=tuple(action.shape),
                    action_low=np.asarray(action.low, np.float32).reshape(-1).tolist(),
                    action_high=np.asarray(action.high, np.float32).reshape(-1).tolist())
    else:
        raise ConfigError(f"gymnasium environment {env_id!r} has action space {action}; the rl family "
                          "acts in Discrete (dqn, pg) and Box (pg) action spaces only")
    return info


def load_control_task(env_id: str, seed: int, *, name: str | None = None) -> Task:
    """A control task for a gymnasium id (the env is made once to read its spaces)."""
    env = make_env(env_id)
    try:
        info = describe_env(env_id, env)
    finally:
        env.close()
    return Task(name=name or env_id, kind="control", seed=seed, input_shape=(info["obs_dim"],), info=info)


def gym_task(env_id: str, name: str | None = None, description: str = "") -> TaskDef:
    """A :class:`TaskDef` for any gymnasium id, e.g. one your own package registers.

    ``env_id`` may use gymnasium's ``"module:EnvName-v0"`` form, which imports ``module``
    (and so its registrations) when the env is made.
    """
    name = name or GYM_PREFIX + env_id
    load = functools.partial(load_control_task, env_id, name=name)   # picklable, unlike a closure
    return TaskDef(name=name, kind="control", load=load, description=description or f"gymnasium {env_id}")


def task_defs() -> list[TaskDef]:
    """The built-in tasks, then ``gym:<id>`` for every id in gymnasium's registry (if installed).

    Ids that can never be made (gymnasium's placeholders for removed envs) are left out; ids
    whose dependencies are missing here (Box2D, MuJoCo, JAX) stay, and loading one says what
    to install.

    Listing the registry imports gymnasium (measured ~0.05 s once numpy is loaded, ~0.25 s
    cold); without gymnasium only the built-in names are registered and loading one says
    how to install it.
    """
    defs = [gym_task(env_id, name=env_id, description=text) for env_id, text in BUILTIN_ENVS.items()]
    try:
        import gymnasium
    except ImportError:
        return defs
    return defs + [gym_task(env_id) for env_id, spec in gymnasium.registry.items() if not _placeholder(spec)]


def _placeholder(spec) -> bool:
    """gymnasium's own stand-ins for removed envs (mujoco-py v2/v3, gym shims): they only raise."""
    entry = spec.entry_point
    return callable(entry) and getattr(entry, "__module__", "").startswith("gymnasium") and \
        getattr(entry, "__name__", "").startswith("_raise")


def split_seeds(task_seed: int, split: str, n: int) -> list[int]:
    """``n`` episode seeds for a split, fixed by the task seed (the same for every trial)."""
    if split not in SPLIT_CODES:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLIT_CODES)}")
    return [int(s) for s in np.random.SeedSequence([task_seed, SPLIT_CODES[split]]).generate_state(n)]


# -- actions ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ActionMap:
    """Network actions -> env actions: ``index + start`` (discrete) or clipped, reshaped (continuous)."""

    discrete: bool
    start: int = 0
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    shape: tuple[int, ...] = ()

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> "ActionMap":
        if info["action"] == "discrete":
            return cls(discrete=True, start=info["action_start"])
        return cls(discrete=False, low=np.asarray(info["action_low"], np.float32),
                   high=np.asarray(info["action_high"], np.float32), shape=tuple(info["action_shape"]))

    def to_env(self, action: np.ndarray):
        if self.discrete:
            return int(action) + self.start
        return np.clip(action, self.low, self.high).reshape(self.shape)


# -- a pool of envs -----------------------------------------------------------------------
@dataclass
class Transitions:
    """What one :meth:`EnvPool.step` returned for the envs it stepped (arrays over those envs)."""

    next_obs: np.ndarray      # the observation after the action (the final one when an episode ended)
    rewards: np.ndarray
    terminated: np.ndarray    # a terminal state: no bootstrapping
    truncated: np.ndarray     # time limit: bootstrap from next_obs
    done: np.ndarray          # terminated | truncated; the env was reset


class EnvPool:
    """``n`` envs stepped together, any subset at a time, resetting each one when its episode ends.

    A sync vector env (``gym.make_vec(..., vectorization_mode="sync")`` also loops over its
    envs in Python) that can step a subset, so whole episodes and exact step budgets are
    easy, and keeps the true final observation of every episode. ``obs`` always holds the
    observation each env will act on next. Finished episodes land in ``finished`` as
    ``(return, length)``.
    """

    def __init__(self, make: Callable[[], Any], seeds: Sequence[int]):
        self.envs = [make() for _ in seeds]
        self.obs = np.zeros((len(self.envs), 0), np.float32)
        self.finished: list[tuple[float, int]] = []
        self.reset(seeds)

    def __len__(self) -> int:
        return len(self.envs)

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        """Reset every env with its seed (also seeding its action space); clears the episode stats."""
        first = []
        for env, seed in zip(self.envs, seeds):
            first.append(env.reset(seed=int(seed))[0])
            env.action_space.seed(int(seed))
        self.obs = np.asarray(first, dtype=np.float32).reshape(len(self.envs), -1)
        self.returns = np.zeros(len(self.envs))
        self.lengths = np.zeros(len(self.envs), dtype=np.int64)
        self.finished = []
        return self.obs

    def sample_actions(self, indices: Sequence[int]) -> list:
        """A random env action for each env in ``indices`` (from its seeded action space)."""
        return [self.envs[i].action_space.sample() for i in indices]

    def step(self, indices: Sequence[int], actions: Sequence[Any]) -> Transitions:
        n = len(indices)
        next_obs = np.empty((n, self.obs.shape[1]), np.float32)
        rewards = np.empty(n, np.float32)
        terminated = np.zeros(n, bool)
        truncated = np.zeros(n, bool)
        for k, (i, action) in enumerate(zip(indices, actions)):
            env = self.envs[i]
            obs, reward, term, trunc, _ = env.step(action)
            next_obs[k] = np.asarray(obs, np.float32).reshape(-1)
            rewards[k], terminated[k], truncated[k] = reward, term, trunc
            self.returns[i] += reward
            self.lengths[i] += 1
            if term or trunc:
                self.finished.append((float(self.returns[i]), int(self.lengths[i])))
                self.returns[i], self.lengths[i] = 0.0, 0
                obs, _ = env.reset()
            self.obs[i] = np.asarray(obs, np.float32).reshape(-1)
        return Transitions(next_obs, rewards, terminated, truncated, terminated | truncated)

    def close(self) -> None:
        for env in self.envs:
            env.close()


def mean_finished(pool: EnvPool, last: int = 10) -> float:
    """Mean return of the last ``last`` finished episodes (NaN when none finished)."""
    if not pool.finished:
        return math.nan
    return float(np.mean([r for r, _ in pool.finished[-last:]]))
