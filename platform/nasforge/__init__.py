"""nasforge: plugin-based AutoML and neural architecture search on PyTorch, Optuna and MLflow.

Heavy packages (torch, optuna, mlflow) are imported only when a search runs.
"""

from nasforge.errors import (
    ConfigError,
    DataError,
    ExportError,
    NasforgeError,
    RegistrationError,
    ScaffoldError,
    SpaceError,
    SpecError,
    StoreError,
    SupernetWarning,
    TrialPruned,
    UnknownNameError,
    UnknownSearchError,
)
from nasforge.family import Family, NullReporter, Reporter
from nasforge.hookspecs import hookimpl
from nasforge.plugins import get_registry, register, unregister
from nasforge.data.tasks import Task, TaskDef
from nasforge.spec.space import Objective, SearchSpace
from nasforge.strategies.base import PrunerDef, StrategyDef

__version__ = "0.1.0"


def search(family, **kwargs):
    """Run a search; see :func:`nasforge.api.search` for every argument."""
    from nasforge.api import search as _search

    return _search(family, **kwargs)


def load(study_name=None, **kwargs):
    """Reopen a past search; see :func:`nasforge.results.load.load` for every argument."""
    from nasforge.results.load import load as _load

    return _load(study_name, **kwargs)


__all__ = [
    "ConfigError",
    "DataError",
    "ExportError",
    "Family",
    "NasforgeError",
    "NullReporter",
    "Objective",
    "PrunerDef",
    "RegistrationError",
    "Reporter",
    "ScaffoldError",
    "SearchSpace",
    "SpaceError",
    "SpecError",
    "StoreError",
    "StrategyDef",
    "SupernetWarning",
    "Task",
    "TaskDef",
    "TrialPruned",
    "UnknownNameError",
    "UnknownSearchError",
    "get_registry",
    "hookimpl",
    "load",
    "register",
    "search",
    "unregister",
]
