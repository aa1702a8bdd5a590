"""Zero-cost rankings of architectures: what a weight-sharing score must beat to be worth its training.

A network's forward FLOPs (and its parameter count) need no training at all. On NAS benchmarks
they rank architectures about as well as the proposed zero-cost proxies and often as well as
weight sharing (Abdelfattah et al. 2021, "Zero-Cost Proxies for Lightweight NAS", ICLR; White et al.
2022, "A Deeper Look at Zero-Cost Proxies for Lightweight NAS", ICLR Blog Track), so the
benchmarks print them next to the supernet's ranking. Used by ``supernet_accuracy.py`` and
``weight_sharing.py``.
"""

from __future__ import annotations

from typing import Any, Mapping

from nasforge.hookspecs import hookimpl


def config_of(family, space, flat: Mapping[str, Any]):
    """The family's config of architecture ``flat``."""
    return family.make_config(space.config_from_flat(dict(flat)))


def _stand_alone(family, task, space, flat: Mapping[str, Any]):
    """The family's stand-alone network of architecture ``flat`` (untrained)."""
    return family.build(config_of(family, space, flat), task)


def flops(family, task, space, flat: Mapping[str, Any]) -> int:
    """Forward FLOPs of the stand-alone network of architecture ``flat`` on one validation row
    (:func:`nasforge.size_limit.count_flops`, what ``max_flops`` caps)."""
    from nasforge.size_limit import count_flops

    return count_flops(_stand_alone(family, task, space, flat), task.x_val)


def n_params(family, task, space, flat: Mapping[str, Any]) -> int:
    """Parameters of the stand-alone network of architecture ``flat`` (what ``max_params`` caps)."""
    from nasforge.size_limit import count_params

    return count_params(_stand_alone(family, task, space, flat))


def flops_picks(family, task, space, *, seed: int, candidates: int, top: int,
                limit=None) -> list[dict[str, Any]]:
    """The ``top`` architectures with the most FLOPs among ``candidates`` seeded uniform draws of
    ``space`` (as many as an ``rsws`` phase rates), one per network: a search with no supernet.
    ``limit`` (a :class:`nasforge.size_limit.SizeLimit`): draw only architectures within its caps,
    as ``rsws`` does."""
    import numpy as np

    from nasforge.size_limit import NetworkSizes
    from nasforge.strategies.oneshot.paths import UniformPaths, network_key

    accept = None
    if limit:
        sizes = NetworkSizes(family=family, space=space, task=task, limit=limit)
        accept = lambda flat: limit.broken(sizes(flat)) is None  # noqa: E731
    drawn = UniformPaths(space=space, accept=accept).draw(np.random.default_rng([seed, 0x5EA5]), candidates)
    unique: dict[str, dict[str, Any]] = {}
    for flat, _ in drawn:
        unique.setdefault(network_key(flat, config_of(family, space, flat)), flat)
    return sorted(unique.values(), key=lambda flat: -flops(family, task, space, flat))[:top]


def patch_zero_cost_warmup(steps: int) -> None:
    """Give every ENAS supernet phase of this process :func:`warm_controller_on_flops` before its first
    epoch (once per process; ``weight_sharing.py --zero-cost-warmup``). Not a strategy option:
    benchmarks/README.md ("A zero-cost warm-up of the controller") says what it bought and why it
    stays out of the platform. A phase resumed past its first epoch is not warmed again (the warm-up
    lives in the checkpointed controller)."""
    from nasforge.strategies.oneshot.phase import SupernetPhase

    restore = SupernetPhase._restore
    if getattr(restore, "zero_cost_warmup", None) is not None:
        return

    def _restore(self) -> None:
        restore(self)
        if not self.epoch and self.paths.learns:   # not resumed, and a controller (not RS-WS / DARTS)
            warm_controller_on_flops(self, steps)

    _restore.zero_cost_warmup = steps
    SupernetPhase._restore = _restore


def warm_controller_on_flops(phase, steps: int) -> list[float]:
    """Abdelfattah et al. 2021 (Sec. 5, "zero-cost warmup") train an RL controller on a zero-cost
    proxy before the search proper. Here ENAS's controller (``phase.paths``) takes ``steps``
    REINFORCE steps, each on ``controller_batch`` draws rewarded by their forward FLOPs' percentile
    among 1,024 seeded uniform draws (0-1, the scale of the accuracies that follow), drawn with the
    phase's own generator. Returns each step's mean reward."""
    import numpy as np

    from nasforge.size_limit import NetworkSizes, SizeLimit

    sizes = NetworkSizes(family=phase.family, space=phase.job.space, task=phase.task,
                         limit=SizeLimit(max_flops=2 ** 62))   # measures FLOPs, caps nothing
    pool = phase.uniform.draw(np.random.default_rng([phase.job.seed, 0x2C0]), 1024)
    ordered = np.sort([sizes(flat)["flops"] for flat, _ in pool])
    means = []
    for _ in range(steps):
        rewards = []
        for flat, tokens in phase.paths.draw(phase.rng, phase.options.controller_batch):
            rewards.append(float(np.searchsorted(ordered, sizes(flat)["flops"], "right") / len(ordered)))
            phase.paths.learn(tokens, rewards[-1])
        means.append(float(np.mean(rewards)))
    return means


def register_fixed_picks() -> None:
    """Register :class:`FixedPicks` in this process, once."""
    from nasforge.plugins import get_registry, register

    if "fixed-picks" not in get_registry().names("strategy"):
        register(FixedPicks(), name="benchmark-fixed-picks")


class FixedPicks:
    """A plugin with strategy ``fixed-picks``: trial ``i`` trains ``picks[i]`` (``strategy_options={"picks": [...]}``),
    so a list of architectures chosen outside nasforge trains through the same trial function as any search."""

    @hookimpl
    def register_strategies(self, register):
        from nasforge.strategies.base import StrategyDef

        register(StrategyDef(name="fixed-picks", create=_fixed_sampler, description="the given architectures, in order"))


def _fixed_sampler(*, space, seed, n_objectives, picks):
    from optuna.samplers import BaseSampler

    class Sampler(BaseSampler):
        def infer_relative_search_space(self, study, trial):
            return space.to_optuna()

        def sample_relative(self, study, trial, search_space):
            return {k: v for k, v in picks[trial.number].items() if k in search_space}

        def sample_independent(self, study, trial, param_name, param_distribution):
            raise RuntimeError(f"fixed-picks: {param_name!r} is not in pick {trial.number}")

    return Sampler()
