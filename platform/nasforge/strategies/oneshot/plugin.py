"""The weight-sharing strategies ``"enas"``, ``"rsws"`` and ``"darts"``, registered as a default plugin (no torch here).

Each is a supernet phase (:mod:`nasforge.strategies.oneshot.phase`) that the runner runs before the
trials, and a sampler (:mod:`nasforge.strategies.oneshot.retrain_sampler`) that hands the phase's
top architectures to ordinary trials, which retrain them from scratch. See docs/weight_sharing.md.
"""

from __future__ import annotations

from nasforge.errors import ConfigError
from nasforge.hookspecs import hookimpl
from nasforge.strategies.base import StrategyDef
from nasforge.strategies.oneshot.phase_options import check_options


def _creator(name: str):
    def create(*, space, seed, n_objectives, **options):
        if n_objectives > 1:
            raise ConfigError(f"strategy {name!r} learns from one number (the shared-weight validation "
                              f"{'loss' if name == 'darts' else 'accuracy'}); it cannot search {n_objectives} "
                              "objectives (use nsga2, tpe or random)")
        checked = check_options(name, options)
        from nasforge.strategies.oneshot.retrain_sampler import TopArchitecturesSampler  # imports optuna

        return TopArchitecturesSampler(space=space, strategy=name, options=checked, seed=seed)

    return create


@hookimpl
def register_strategies(register):
    register(StrategyDef(name="enas", create=_creator("enas"), weight_sharing=True,
                         description="ENAS: controller + REINFORCE on a weight-sharing supernet, top picks retrained"))
    register(StrategyDef(name="rsws", create=_creator("rsws"), weight_sharing=True,
                         description="random sampling with weight sharing (Li & Talwalkar 2019), top picks retrained"))
    register(StrategyDef(name="darts", create=_creator("darts"), weight_sharing=True,
                         description="DARTS (Liu et al. 2019; first order, arch_order=2 for second): a relaxed "
                                     "supernet learns the architecture by gradient, most likely picks retrained"))
