"""Optuna's samplers as nasforge strategies (a default plugin)."""

from __future__ import annotations

import warnings

from nasforge.hookspecs import hookimpl
from nasforge.strategies.base import StrategyDef


def _quietly(make):
    """Build a sampler without Optuna's 'experimental feature' warning (we chose it on purpose)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return make()


def _random(*, space, seed, n_objectives, **options):
    import optuna

    return optuna.samplers.RandomSampler(seed=seed, **options)


def _tpe(*, space, seed, n_objectives, **options):
    import optuna

    # multivariate TPE handles the dependencies between parameters of a layer;
    # group=True lets it model conditional / repeated (define-by-run) parameters.
    options = {"multivariate": True, "group": True, "constant_liar": True, **options}
    return _quietly(lambda: optuna.samplers.TPESampler(seed=seed, **options))


def _cmaes(*, space, seed, n_objectives, **options):
    import optuna

    options.setdefault("warn_independent_sampling", False)
    return optuna.samplers.CmaEsSampler(seed=seed, **options)


def _gp(*, space, seed, n_objectives, **options):
    import optuna

    return optuna.samplers.GPSampler(seed=seed, **options)


def _grid(*, space, seed, n_objectives, **options):
    import optuna

    return optuna.samplers.GridSampler(space.grid(), seed=seed, **options)


def _bruteforce(*, space, seed, n_objectives, **options):
    import optuna

    space.grid()  # raises, naming the parameter, if something is continuous
    return _quietly(lambda: optuna.samplers.BruteForceSampler(seed=seed, **options))


def _nsga2(*, space, seed, n_objectives, **options):
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed, **options)


def _qmc(*, space, seed, n_objectives, **options):
    import optuna

    return _quietly(lambda: optuna.samplers.QMCSampler(seed=seed, **options))


@hookimpl
def register_strategies(register):
    register(StrategyDef(name="random", create=_random, multi_objective=True,
                         description="uniform random sampling"))
    register(StrategyDef(name="tpe", create=_tpe, multi_objective=True,
                         description="Tree-structured Parzen Estimator (multivariate, grouped)"))
    register(StrategyDef(name="cmaes", create=_cmaes, description="CMA-ES (falls back to random for categoricals)"))
    register(StrategyDef(name="gp", create=_gp, multi_objective=True, description="Gaussian-process Bayesian optimization"))
    register(StrategyDef(name="grid", create=_grid, multi_objective=True,
                         description="every combination of a discrete space"))
    register(StrategyDef(name="bruteforce", create=_bruteforce, multi_objective=True,
                         description="every combination, following conditional parameters"))
    register(StrategyDef(name="qmc", create=_qmc, multi_objective=True, description="quasi-Monte Carlo (Sobol)"))
    register(StrategyDef(name="nsga2", create=_nsga2, multi_objective=True, single_objective=True,
                         description="NSGA-II genetic algorithm, for multi-objective searches"))
