"""A search's sampler and pruner, built from its spec (several strategies: one that deals trials)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from nasforge.errors import NasforgeError, SpecError
from nasforge.plugins import Registry, get_registry
from nasforge.strategies.shares import strategy_seed

if TYPE_CHECKING:
    from nasforge.spec.arguments import SearchSpec


def make_sampler(spec: "SearchSpec", *, registry: Registry | None = None):
    """The spec's Optuna sampler; several strategies: a sampler that deals trials to theirs."""
    registry = registry or get_registry()
    if not spec.side_by_side:
        return _make_one_sampler(spec, spec.strategy, spec.seed, spec.strategy_options, registry)
    from nasforge.strategies.side_by_side import SideBySideSampler  # imports optuna

    samplers = {name: _make_one_sampler(spec, name, strategy_seed(spec.seed, name),
                                        spec.strategy_options.get(name, {}), registry)
                for name in spec.strategies}
    return SideBySideSampler(samplers=samplers, shares=spec.shares)


def _make_one_sampler(spec: "SearchSpec", name: str, seed: int, options: Mapping[str, Any], registry: Registry):
    strategy = registry.get("strategy", name)
    try:
        return strategy.create(space=spec.space, seed=seed, n_objectives=len(spec.objectives), **options)
    except NasforgeError:
        raise
    except (TypeError, ValueError) as exc:
        raise SpecError(f"strategy {name!r} rejected its options {dict(options)}: {exc}") from None


def make_pruner(spec: "SearchSpec", *, registry: Registry | None = None):
    """The spec's Optuna pruner; several strategies: one per strategy, each judging its own trials."""
    registry = registry or get_registry()
    if not spec.side_by_side or spec.pruner == "none":
        return _make_one_pruner(spec, registry)
    from nasforge.strategies.side_by_side import SideBySidePruner  # imports optuna

    return SideBySidePruner(pruners={name: _make_one_pruner(spec, registry) for name in spec.strategies})


def _make_one_pruner(spec: "SearchSpec", registry: Registry):
    pruner = registry.get("pruner", spec.pruner)
    budget = spec.budget[spec.budget_unit]
    try:
        return pruner.create(budget=budget, **spec.pruner_options)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"pruner {spec.pruner!r} rejected its options {spec.pruner_options}: {exc}") from None
