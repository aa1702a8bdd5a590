"""The Zoph & Le (2017) RNN controller as a nasforge strategy (``strategy="controller"``).

A default plugin: it registers the strategy and, through the ``search_finished`` hook, logs
the controller's curves (one point per REINFORCE update) and its most probable architecture
on the search's parent MLflow run. Importing it does not import torch.
"""

from __future__ import annotations

from nasforge.errors import ConfigError
from nasforge.hookspecs import hookimpl
from nasforge.strategies.base import StrategyDef

def _create(*, space, seed, n_objectives, **options):
    if n_objectives > 1:
        raise ConfigError("strategy 'controller' learns from one reward; it cannot search "
                          f"{n_objectives} objectives (use nsga2, tpe or random)")
    from nasforge.strategies.controller.sampler import ControllerSampler

    return ControllerSampler(space=space, seed=seed, **options)


@hookimpl
def register_strategies(register):
    register(StrategyDef(name="controller", create=_create,
                         description="Zoph & Le LSTM controller trained with REINFORCE"))


@hookimpl
def search_finished(result):
    import warnings

    from nasforge.strategies.controller.curves import log_controller

    try:
        log_controller(result)
    except Exception as exc:  # the search itself succeeded: the curves are a convenience
        warnings.warn(f"could not log the controller's curves to MLflow: {type(exc).__name__}: {exc}", stacklevel=2)
