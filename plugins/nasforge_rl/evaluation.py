"""Evaluation episodes, the evaluation schedule of a trial and its learning curve (imports torch).

Evaluations run whole episodes from fixed seeds (:func:`nasforge_rl.envs.split_seeds`):
every evaluation of every trial of a search sees the same start states, so curves are
compared on common random numbers. dqn acts greedily; pg acts with the mode of its policy
(``eval_deterministic=True``, the default) or samples from it with a generator seeded per
evaluation, so an evaluation of the same weights always gives the same returns.
"""

from __future__ import annotations

import contextlib
import copy
import math
from typing import Callable, Sequence

import numpy as np
import torch

from nasforge.family import Reporter
from nasforge_rl.envs import ActionMap, EnvPool, make_env, split_seeds


@contextlib.contextmanager
def one_thread_on_cpu(device):
    """Run torch with one intra-op thread on CPU (restored on exit); a no-op on other devices.

    The networks and batches here are small: threads cost more than they give, and far
    more on a busy machine (an update of the default Q-network: 1.7 ms with 1 thread,
    87 ms with 2 on the shared 2-core test machine under load).
    """
    if torch.device(device).type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_episodes(agent, env_id: str, seeds: Sequence[int], *, info: dict, deterministic: bool,
                 envs: EnvPool | None = None) -> np.ndarray:
    """Returns of one episode per seed, all played side by side with batched forward passes."""
    device = next(agent.parameters()).device
    pool = envs if envs is not None else EnvPool(lambda: make_env(env_id), seeds)
    if envs is not None:
        pool.reset(seeds)
    actions = ActionMap.from_info(info)
    generator = torch.Generator(device=device).manual_seed(int(seeds[0]))
    active = list(range(len(pool)))
    returns = np.zeros(len(pool))
    was_training = agent.training
    agent.eval()
    try:
        while active:
            obs = torch.as_tensor(pool.obs[active], device=device)
            chosen = agent.act(obs, deterministic=deterministic, generator=generator).cpu().numpy()
            step = pool.step(active, [actions.to_env(a) for a in chosen])
            returns[active] += step.rewards
            active = [i for i, done in zip(active, step.done) if not done]
    finally:
        agent.train(was_training)
        if envs is None:
            pool.close()
    return returns


class Evaluator:
    """Evaluates at ``n_evals`` evenly spaced env steps and reports to the trial.

    The reported step is the grid point (``round(k * budget / n_evals)``), identical for
    every trial so that pruners compare like with like; the policy evaluated there has
    taken at most ``n_envs - 1`` more steps. When the weights have not changed since the
    previous evaluation (e.g. before DQN's ``learning_starts``), the result is reused: it
    would be identical. Keeps a copy of the best weights.
    """

    def __init__(self, *, agent, task, config, budget: int, reporter: Reporter):
        self.agent, self.task, self.reporter = agent, task, reporter
        self.info = task.info
        self.points = sorted({round(k * budget / config.n_evals) for k in range(1, config.n_evals + 1)} - {0})
        self.seeds = split_seeds(task.seed, "val", config.eval_episodes)
        self.deterministic = config.eval_deterministic
        self.pool = EnvPool(lambda: make_env(self.info["env_id"]), self.seeds)
        self.history: list[tuple[int, float, float]] = []      # (step, mean, std)
        self.train_episodes: list[tuple[int, float]] = []      # (env steps when it ended, return)
        self.best_mean, self.best_step, self.best_state = -math.inf, 0, None
        self._last: tuple[int, float, float] | None = None     # (updates, mean, std)

    def due(self, steps: int) -> bool:
        return bool(self.points) and steps >= self.points[0]

    def __call__(self, steps: int, updates: int, extra: Callable[[], dict[str, float]] | None = None) -> None:
        """Evaluate if a grid point was reached; report each grid point passed (may raise TrialPruned)."""
        while self.points and steps >= self.points[0]:
            point = self.points.pop(0)
            if self._last is None or self._last[0] != updates:
                returns = run_episodes(self.agent, self.info["env_id"], self.seeds, info=self.info,
                                       deterministic=self.deterministic, envs=self.pool)
                self._last = (updates, float(returns.mean()), float(returns.std()))
            _, mean, std = self._last
            self.history.append((point, mean, std))
            if mean > self.best_mean:
                self.best_mean, self.best_step = mean, point
                self.best_state = copy.deepcopy(self.agent.state_dict())
            metrics = {"eval_return": mean, "eval_return_std": std}
            metrics.update({k: v for k, v in (extra() if extra else {}).items() if math.isfinite(v)})
            self.reporter.report(point, metrics)

    def close(self) -> None:
        self.pool.close()


def final_metrics(evaluator: Evaluator, *, restore_best: bool, env_steps: int,
                  episodes: int, train_return: float) -> dict[str, float]:
    """What ``fit`` returns; loads the best weights into the agent when ``restore_best``."""
    _, last_mean, last_std = evaluator.history[-1]
    if restore_best and evaluator.best_state is not None:
        evaluator.agent.load_state_dict(evaluator.best_state)
        mean, std = evaluator.best_mean, next(s for p, m, s in evaluator.history if p == evaluator.best_step)
    else:
        mean, std = last_mean, last_std
    out = {"eval_return": mean, "eval_return_std": std, "final_eval_return": last_mean,
           "best_eval_step": float(evaluator.best_step), "env_steps": float(env_steps),
           "episodes": float(episodes)}
    if math.isfinite(train_return):
        out["train_return"] = train_return
    return out


def log_learning_curve(reporter: Reporter, evaluator: Evaluator, *, title: str) -> None:
    """Attach ``learning_curve.png``: evaluation mean +- std and training episode returns vs env steps."""
    if type(reporter).log_figure is Reporter.log_figure or not evaluator.history:
        return  # the reporter keeps no figures (NullReporter): skip importing matplotlib
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    if evaluator.train_episodes:
        steps, returns = zip(*evaluator.train_episodes)
        ax.plot(steps, returns, ".", ms=2, alpha=0.3, color="tab:gray", label="training episodes")
    steps, means, stds = (np.asarray(v, dtype=float) for v in zip(*evaluator.history))
    ax.plot(steps, means, "o-", color="tab:blue", label="evaluation mean")
    ax.fill_between(steps, means - stds, means + stds, color="tab:blue", alpha=0.2, label="+- std")
    ax.set(xlabel="environment steps", ylabel="episode return", title=title)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    reporter.log_figure(fig, "learning_curve.png")


