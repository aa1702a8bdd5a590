"""DQN on CartPole-v1: env steps and wall time to "solved", and what a short search finds.

1. ``solve``: the rl family's default DQN (the rl-baselines3-zoo CartPole-v1 settings: lr 2.3e-3,
   batch 64, buffer 1e5, learning_starts 1000, gamma 0.99, target_update_interval 10,
   train_freq 256, gradient_steps 128, exploration_fraction 0.16, final_eps 0.04, net
   [256, 256]; the zoo trains 50k steps) trains for ``--max-steps`` env steps with an
   evaluation every ``--check-every`` steps on 10 fixed episodes; whenever that mean reaches
   475, the agent plays 100 fresh test episodes, and the first time their mean reaches 475
   CartPole counts as solved. Printed: env steps, training wall time (evaluations excluded)
   and CPU time, per seed. ``exploration_fraction`` is rescaled so that epsilon decays over
   the zoo's 8k steps whatever ``--max-steps`` is.
2. ``search``: ``nasforge.search("rl", task="CartPole-v1", space=--space, strategy="tpe")``
   with ``--trials`` trials of ``--budget`` env steps each, against the default DQN at the
   same budget; printed: each trial, the best configuration, its 100-episode test return.

3. ``stepping``: microseconds per CartPole-v1 step with random actions for one ``gym.make`` env,
   ``gym.make_vec(..., vectorization_mode="sync")`` and the family's ``EnvPool`` with 1-16
   envs, and of one forward pass of a 64x64 policy per (batched) step: why training and
   evaluation step several envs side by side.

Prints figures only (no asserts). The machine's load changes wall times a lot: the CPU time
of the process is printed too.

Usage::

    python benchmarks/rl_dqn_cartpole.py solve [--seeds 0 1 2] [--max-steps 60000]
    python benchmarks/rl_dqn_cartpole.py search [--trials 12] [--budget 10000] [--space rl_dqn]
    python benchmarks/rl_dqn_cartpole.py stepping [--steps 20000]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time

import torch

from nasforge.family import NullReporter
from nasforge_rl import RLFamily, load_control_task

SOLVED = 475.0
ZOO_DECAY_STEPS = 0.16 * 50_000


class Solved(Exception):
    pass


class SolveReporter(NullReporter):
    """Checks the 100-episode test mean whenever the 10-episode evaluation reaches 475."""

    def __init__(self, family, agent, task):
        super().__init__()
        self.family, self.agent, self.task = family, agent, task
        self.check_s = 0.0
        self.checks: list[tuple[int, float]] = []

    def report(self, step, metrics):
        super().report(step, metrics)
        if metrics["eval_return"] >= SOLVED:
            t = time.perf_counter()
            test = self.family.evaluate(self.agent, self.task, "test")["test_return"]
            self.check_s += time.perf_counter() - t
            self.checks.append((step, test))
            if test >= SOLVED:
                raise Solved(step)


def solve(seeds: list[int], max_steps: int, check_every: int) -> None:
    family = RLFamily()
    task = load_control_task("CartPole-v1", seed=0)
    print(f"default DQN on CartPole-v1: solved = mean return >= {SOLVED} over 100 test episodes "
          f"(checked when the 10-episode evaluation every {check_every} steps reaches it)")
    print(f"{'seed':>4} {'solved at':>10} {'wall s':>8} {'cpu s':>7}  evaluations (step: 10-ep mean) / 100-ep checks")
    for seed in seeds:
        config = family.make_config({"algorithm": "dqn", "n_evals": max_steps // check_every, "eval_episodes": 10,
                                     "exploration_fraction": ZOO_DECAY_STEPS / max_steps, "restore_best": False})
        torch.manual_seed(seed)
        agent = family.build(config, task)
        reporter = SolveReporter(family, agent, task)
        wall, cpu = time.perf_counter(), time.process_time()
        solved_at = None
        try:
            family.fit(agent, task, config, {"env_steps": max_steps}, reporter)
        except Solved as exc:
            solved_at = exc.args[0]
        wall, cpu = time.perf_counter() - wall - reporter.check_s, time.process_time() - cpu
        curve = " ".join(f"{s // 1000}k:{m['eval_return']:.0f}" for s, m in reporter.history)
        checks = " ".join(f"{s // 1000}k:{r:.0f}" for s, r in reporter.checks)
        print(f"{seed:>4} {solved_at or 'no':>10} {wall:>8.1f} {cpu:>7.1f}  {curve} / {checks or '-'}", flush=True)


def search(trials: int, budget: int, space: str, seed: int) -> None:
    import nasforge

    family = RLFamily()
    task = load_control_task("CartPole-v1", seed=seed)
    config = family.make_config({"algorithm": "dqn"})
    torch.manual_seed(seed)
    agent = family.build(config, task)
    t = time.perf_counter()
    metrics = family.fit(agent, task, config, {"env_steps": budget}, NullReporter())
    test = family.evaluate(agent, task, "test")
    print(f"default DQN, {budget} env steps: eval_return {metrics['eval_return']:.1f}, "
          f"100-episode test {test['test_return']:.1f}  ({time.perf_counter() - t:.0f} s)")

    with tempfile.TemporaryDirectory() as tmp:
        t, cpu = time.perf_counter(), time.process_time()
        result = nasforge.search("rl", task="CartPole-v1", space=space, strategy="tpe", trials=trials,
                                 budget=budget, seed=seed, tracking_uri=f"sqlite:///{tmp}/mlflow.db",
                                 storage=f"sqlite:///{tmp}/optuna.db", progress=False)
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    print(f"search: {trials} TPE trials of {budget} env steps on space {space!r}: {wall:.0f} s wall, {cpu:.0f} s CPU")
    for trial in result.trials:
        value = f"{trial.values[0]:7.1f}" if trial.values else f"{trial.state.name:>7}"
        print(f"  trial {trial.number:>2}: eval_return {value}  {_short(trial.params)}")
    print(f"best: trial {result.best_trial.number}, eval_return {result.best_value:.1f}, "
          f"100-episode test {result.test_metrics['test_return']:.1f}")
    print(f"best params: {result.best_params}")


def stepping(steps: int) -> None:
    import gymnasium as gym
    import numpy as np

    from nasforge_rl.agent import mlp
    from nasforge_rl.envs import EnvPool, make_env

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)

    def single() -> float:
        env = gym.make("CartPole-v1")
        env.reset(seed=0)
        t = time.perf_counter()
        for _ in range(steps):
            _, _, terminated, truncated, _ = env.step(int(rng.integers(2)))
            if terminated or truncated:
                env.reset()
        return time.perf_counter() - t

    def vector(n: int) -> float:
        env = gym.make_vec("CartPole-v1", n, vectorization_mode="sync")
        env.reset(seed=0)
        t = time.perf_counter()
        for _ in range(steps // n):
            env.step(rng.integers(2, size=n))
        return time.perf_counter() - t

    def pool(n: int) -> float:
        envs = EnvPool(lambda: make_env("CartPole-v1"), range(n))
        everyone = list(range(n))
        t = time.perf_counter()
        for _ in range(steps // n):
            envs.step(everyone, [int(a) for a in rng.integers(2, size=n)])
        return time.perf_counter() - t

    net = mlp(4, 2, n_layers=2, units=64, activation="tanh")

    def forward(n: int) -> float:
        obs = np.zeros((n, 4), np.float32)
        t = time.perf_counter()
        with torch.no_grad():
            for _ in range(steps // n):
                net(torch.as_tensor(obs)).argmax(dim=1).numpy()
        return time.perf_counter() - t

    print(f"CartPole-v1, random actions, {steps} steps each; microseconds per env step")
    print(f"one gym.make env: {1e6 * single() / steps:.1f}")
    print(f"{'envs':>4} {'make_vec sync':>14} {'EnvPool':>8} {'64x64 forward':>14}")
    for n in (1, 4, 8, 16):
        print(f"{n:>4} {1e6 * vector(n) / steps:>14.1f} {1e6 * pool(n) / steps:>8.1f} {1e6 * forward(n) / steps:>14.1f}")


def _short(params: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
                     if not (isinstance(v, float) and math.isnan(v)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("solve")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--max-steps", type=int, default=60_000)
    p.add_argument("--check-every", type=int, default=2_000)
    p = sub.add_parser("search")
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--budget", type=int, default=10_000)
    p.add_argument("--space", default="rl_dqn")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("stepping")
    p.add_argument("--steps", type=int, default=20_000)
    args = parser.parse_args()
    if args.command == "solve":
        solve(args.seeds, args.max_steps, args.check_every)
    elif args.command == "search":
        search(args.trials, args.budget, args.space, args.seed)
    else:
        stepping(args.steps)


if __name__ == "__main__":
    main()
