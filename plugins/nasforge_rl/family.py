"""The reinforcement-learning family: DQN and policy-gradient agents on gymnasium environments."""

from __future__ import annotations

from typing import Any, Mapping

from nasforge.errors import ConfigError
from nasforge.family import Family, Reporter
from nasforge.data.tasks import Task
from nasforge_rl.config import RLConfig


class RLFamily(Family):
    """Agents for gymnasium control tasks; the budget is counted in environment steps.

    ``algorithm="dqn"`` trains a Q-network (Mnih et al. 2015; discrete actions only),
    ``algorithm="pg"`` a softmax or Gaussian policy with REINFORCE (Williams 1992) or an
    actor-critic with GAE (Schulman et al. 2016); see :mod:`nasforge_rl.dqn` and
    :mod:`nasforge_rl.pg`. ``fit`` evaluates ``n_evals`` times, evenly over the budget,
    on ``eval_episodes`` fixed-seed episodes, and reports ``eval_return`` (the mean return)
    with ``step`` = env steps, so pruners can stop weak trials early. With
    ``restore_best`` (default) the agent ends with the weights of its best evaluation,
    and ``eval_return`` is that evaluation's mean (``final_eval_return`` is the last one);
    ``evaluate(split="test")`` plays ``test_episodes`` fresh-seed episodes.

    ``build`` returns an :class:`nasforge_rl.agent.Agent`, which holds every network needed
    to act: ``agent(obs_batch)`` gives the env actions. A search saves its ``state_dict``;
    ``result.best_model()`` rebuilds it with the weights loaded.

    Example::

        import torch
        from nasforge.family import NullReporter
        from nasforge_rl import RLFamily, load_control_task

        family, task = RLFamily(), load_control_task("CartPole-v1", seed=0)
        config = family.make_config({"algorithm": "dqn"})
        torch.manual_seed(0)
        agent = family.build(config, task)
        family.fit(agent, task, config, {"env_steps": 20_000}, NullReporter())
        family.evaluate(agent, task)          # {"test_return": ..., "test_return_std": ...}
    """

    name = "rl"
    task_kinds = ("control",)
    config_class = RLConfig
    default_space = "rl"
    default_task = "CartPole-v1"
    data_layouts = ()             # it learns from an environment, not from a data set
    budget_unit = "env_steps"
    default_budget = 20_000

    def metrics(self, task: Task) -> dict[str, str]:
        return {"eval_return": "maximize", "final_eval_return": "maximize", "eval_return_std": "minimize"}

    # -- model -----------------------------------------------------------------------
    def check_config(self, config: RLConfig, task: Task) -> None:
        """Raise :class:`ConfigError` when the algorithm cannot act in the task's action space."""
        self.check_task(task.name, task.kind)
        if config.algorithm == "dqn" and task.info["action"] != "discrete":
            raise ConfigError(
                f"algorithm='dqn' needs a discrete action space, but task {task.name!r} has "
                f"{task.info['action_space']}; use algorithm='pg' (e.g. space='rl_pg')")

    def check_space(self, space, task: Task) -> None:
        """Refuse, before any trial, a space that can sample ``dqn`` for a continuous-action task.

        ``algorithm`` fixed to ``dqn``, a choice that includes it, or no ``algorithm`` (the
        default is ``dqn``) cannot act in a ``Box`` action space.
        """
        if task.info.get("action") == "discrete":
            return
        param = next((p for p in space.params if p.name == "algorithm"), None)
        values = getattr(param, "choices", None) or (getattr(param, "value", "dqn"),)
        if "dqn" in values:
            raise ConfigError(
                f"search space {space.source} can sample algorithm='dqn', which needs a discrete action "
                f"space, but task {task.name!r} has {task.info['action_space']}; use space='rl_pg' or "
                "fix algorithm: pg")

    def build(self, config: RLConfig, task: Task):
        """An :class:`~nasforge_rl.agent.Agent`; seed torch before calling for reproducible weights."""
        from nasforge_rl.agent import Agent

        self.check_config(config, task)
        return Agent(algorithm=config.algorithm, info=task.info, n_layers=config.n_layers, units=config.units,
                     activation=config.activation, log_std_init=config.log_std_init,
                     value_net=config.pg_variant == "actor_critic" or config.baseline == "value",
                     deterministic=config.eval_deterministic, eval_episodes=config.eval_episodes,
                     test_episodes=config.test_episodes)

    # -- training --------------------------------------------------------------------
    def fit(self, model, task: Task, config: RLConfig, budget: Mapping[str, Any],
            reporter: Reporter) -> dict[str, float]:
        """Train for ``budget["env_steps"]`` env steps (never more), evaluating along the way.

        Environments, exploration, replay sampling and policy sampling are seeded from
        ``torch.initial_seed()``, so the caller's ``torch.manual_seed`` fixes the whole run
        (on CPU, the same seed gives the same curve). Attaches ``learning_curve.png``. On CPU,
        torch runs with one intra-op thread meanwhile (see
        :func:`nasforge_rl.evaluation.one_thread_on_cpu`).
        """
        import torch

        from nasforge.errors import TrialPruned
        from nasforge.training import pick_device
        from nasforge_rl import evaluation

        self.check_config(config, task)
        steps = self.budget_amount(budget)
        device = pick_device()
        model.to(device)
        seed = torch.initial_seed() % 2**63
        evaluator = evaluation.Evaluator(agent=model, task=task, config=config, budget=steps, reporter=reporter)
        train = self._trainer(config)
        variant = f" ({config.pg_variant})" if config.algorithm == "pg" else ""
        title = f"{config.algorithm}{variant} on {task.info['env_id']}"
        try:
            with evaluation.one_thread_on_cpu(device):
                result = train(model, task, config, budget=steps, evaluator=evaluator, seed=seed, device=device)
        except TrialPruned:
            evaluation.log_learning_curve(reporter, evaluator, title=title + " (pruned)")
            raise
        finally:
            evaluator.close()
        evaluation.log_learning_curve(reporter, evaluator, title=title)
        return evaluation.final_metrics(evaluator, restore_best=config.restore_best, env_steps=result["env_steps"],
                                        episodes=result["episodes"], train_return=result["train_return"])

    def evaluate(self, model, task: Task, split: str = "test") -> dict[str, float]:
        """``{split}_return`` and ``{split}_return_std`` over fixed-seed episodes of the split.

        ``"val"`` replays the ``eval_episodes`` episodes ``fit`` evaluates on; ``"test"`` (and
        ``"train"``) play ``test_episodes`` episodes from seeds no evaluation during ``fit`` used.
        """
        from nasforge_rl.envs import split_seeds
        from nasforge_rl.evaluation import one_thread_on_cpu, run_episodes

        n = model.eval_episodes if split == "val" else model.test_episodes
        with one_thread_on_cpu(next(model.parameters()).device):
            returns = run_episodes(model, task.info["env_id"], split_seeds(task.seed, split, n), info=task.info,
                                   deterministic=model.algorithm == "dqn" or model.deterministic)
        return {f"{split}_return": float(returns.mean()), f"{split}_return_std": float(returns.std())}

    def example_input(self, task: Task):
        """Two start observations (float32, ``(2, obs_dim)``) from the test seeds."""
        import numpy as np

        from nasforge_rl.envs import make_env, split_seeds

        env = make_env(task.info["env_id"])
        try:
            return np.stack([np.asarray(env.reset(seed=s)[0], np.float32).reshape(-1)
                             for s in split_seeds(task.seed, "test", 2)])
        finally:
            env.close()

    # -- helpers ---------------------------------------------------------------------
    @staticmethod
    def _trainer(config: RLConfig):
        if config.algorithm == "dqn":
            from nasforge_rl.dqn import train_dqn

            return train_dqn
        from nasforge_rl.pg import train_actor_critic, train_reinforce

        return train_reinforce if config.pg_variant == "reinforce" else train_actor_critic
