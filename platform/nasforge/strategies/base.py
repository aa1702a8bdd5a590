"""What a strategy or pruner plugin registers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True, kw_only=True)
class StrategyDef:
    """A named way to build an ``optuna.samplers.BaseSampler``.

    ``create(space=, seed=, n_objectives=, **options)`` returns the sampler.
    ``multi_objective`` says whether it handles several objectives natively. ``weight_sharing``:
    the search first trains the family's supernet (:meth:`nasforge.Family.supernet`) and the
    sampler then hands out the architectures that phase picked (``enas``, ``rsws``).
    """

    name: str
    create: Callable[..., Any]
    multi_objective: bool = False
    single_objective: bool = True
    weight_sharing: bool = False
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class PrunerDef:
    """A named way to build an ``optuna.pruners.BasePruner``: ``create(budget=, **options)``."""

    name: str
    create: Callable[..., Any]
    description: str = ""
