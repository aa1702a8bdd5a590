"""The ``"evolution"`` strategy (regularized evolution, Real et al. 2019), registered as a default plugin.

The sampler is :class:`nasforge.strategies.evolution_sampler.RegularizedEvolutionSampler`;
it is imported on first use, so registering the strategy does not import optuna.
"""

from __future__ import annotations

from nasforge.errors import ConfigError
from nasforge.hookspecs import hookimpl
from nasforge.strategies.base import StrategyDef


def _create(*, space, seed, n_objectives, **options):
    if n_objectives > 1:
        raise ConfigError(f"strategy 'evolution' compares models on one objective; it cannot search "
                          f"{n_objectives} objectives (use nsga2, tpe or random)")
    from nasforge.strategies.evolution_sampler import RegularizedEvolutionSampler

    return RegularizedEvolutionSampler(seed=seed, **options)


@hookimpl
def register_strategies(register):
    register(StrategyDef(name="evolution", create=_create,
                         description="regularized (aging) evolution, Real et al. 2019"))
