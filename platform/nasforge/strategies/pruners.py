"""Optuna's pruners, fed by the per-step reports of each trial (a default plugin).

Defaults scale with the budget, so they mean the same for 20 epochs and for 20,000 env steps:
warm-up is a tenth of the budget, the smallest rung of successive halving a 27th (three halvings).
"""

from __future__ import annotations

from nasforge.hookspecs import hookimpl
from nasforge.strategies.base import PrunerDef


def _none(*, budget, **options):
    import optuna

    return optuna.pruners.NopPruner()


def _median(*, budget, **options):
    import optuna

    options = {"n_startup_trials": 5, "n_warmup_steps": max(1, budget // 10), **options}
    return optuna.pruners.MedianPruner(**options)


def _percentile(*, budget, **options):
    import optuna

    options = {"percentile": 25.0, "n_startup_trials": 5, "n_warmup_steps": max(1, budget // 10), **options}
    return optuna.pruners.PercentilePruner(**options)


def _sha(*, budget, **options):
    import optuna

    options = {"min_resource": max(1, budget // 27), "reduction_factor": 3, **options}
    return optuna.pruners.SuccessiveHalvingPruner(**options)


def _hyperband(*, budget, **options):
    import optuna

    options = {"min_resource": max(1, budget // 27), "max_resource": budget, "reduction_factor": 3, **options}
    return optuna.pruners.HyperbandPruner(**options)


@hookimpl
def register_pruners(register):
    register(PrunerDef(name="none", create=_none, description="never prune"))
    register(PrunerDef(name="median", create=_median, description="stop below the median of earlier trials"))
    register(PrunerDef(name="percentile", create=_percentile, description="stop below a percentile"))
    register(PrunerDef(name="sha", create=_sha, description="asynchronous successive halving"))
    register(PrunerDef(name="hyperband", create=_hyperband, description="Hyperband (max resource = budget)"))
