"""Options of ``scheduler="pbt"`` (Population Based Training), checked up front without importing ray.

PBT (Jaderberg et al., 2017) trains a population of trials; at every ``perturbation_interval``
steps a trial in the bottom ``quantile_fraction`` copies a top trial (its config and its latest
checkpoint: weights, optimizer state, epoch) and perturbs the mutable hyperparameters (x0.8 or
x1.2, or with ``resample_probability`` a fresh sample), clipped to their range. Only config
fields the family lists in ``training_hyperparameters`` may mutate: anything that shapes the
module (units, dropout, layers) cannot change on a built model.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from nasforge.errors import SpecError

OPTIONS = ("perturbation_interval", "hyperparam_mutations", "resample_probability", "quantile_fraction")
PBT_STRATEGIES = ("random", "qmc", "grid")


def check_pbt(options: Mapping[str, Any], *, family: Any, space: Any, strategies: tuple[str, ...],
              max_budget: int) -> dict[str, Any]:
    """Validate ``scheduler_options`` for PBT and return them normalized (JSON-friendly)."""
    if family is None or space is None:
        raise SpecError("scheduler='pbt' needs the family and the search space to check its options")
    if not getattr(family, "supports_checkpoints", False):
        raise SpecError(f"scheduler='pbt' copies checkpoints between trials, and family {family.name!r} does not "
                        f"save or restore checkpoints; families that do: {', '.join(_checkpointing_families())} "
                        "(or use scheduler asha, hyperband or median)")
    learning = [s for s in strategies if s not in PBT_STRATEGIES]
    if learning:
        raise SpecError(f"scheduler='pbt' changes a trial's hyperparameters while it trains, so the params the study "
                        f"sampled are only its starting point and a model-based strategy would learn from the wrong "
                        f"ones; strategy {learning[0]!r} cannot run with pbt, use one of: {', '.join(PBT_STRATEGIES)}")
    for key in options:
        if key not in OPTIONS:
            raise SpecError(f"scheduler 'pbt' has no option {key!r}; valid options: {', '.join(OPTIONS)}")
    interval = options.get("perturbation_interval", max(1, max_budget // 4))
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise SpecError(f"scheduler_options.perturbation_interval must be an integer >= 1, got {interval!r}")
    if interval >= max_budget:
        raise SpecError(f"scheduler_options.perturbation_interval={interval} must be below the budget "
                        f"({max_budget} {family.budget_unit}): trials perturb between steps, never after the last")
    resample = _fraction("resample_probability", options.get("resample_probability", 0.25), high=1.0)
    quantile = _fraction("quantile_fraction", options.get("quantile_fraction", 0.25), high=0.5, low_open=True)
    return {"perturbation_interval": interval, "hyperparam_mutations": _mutations(options, family, space),
            "resample_probability": resample, "quantile_fraction": quantile}


def _fraction(name: str, value: Any, *, high: float, low_open: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or not (0 < value <= high if low_open else 0 <= value <= high):
        low = "0 <" if low_open else "0 <="
        raise SpecError(f"scheduler_options.{name} must be a number with {low} {name} <= {high:g}, got {value!r}")
    return float(value)


def _mutations(options: Mapping[str, Any], family: Any, space: Any) -> dict[str, dict[str, Any]]:
    from nasforge.spec.space import FloatParam

    mutable = tuple(getattr(family, "training_hyperparameters", ()))
    floats = {p.name: p for p in space.params if isinstance(p, FloatParam)}
    given = options.get("hyperparam_mutations")
    if given is None:
        names = [n for n in mutable if n in floats]
        if not names:
            raise SpecError(f"scheduler='pbt': the search space samples none of family {family.name!r}'s training "
                            f"hyperparameters ({', '.join(mutable) or 'none'}) as a float, so PBT has nothing to "
                            "mutate; sample one (e.g. lr: {float: [1.0e-4, 1.0e-1], log: true})")
        given = {n: None for n in names}
    elif isinstance(given, (list, tuple)):
        given = {n: None for n in given}
    if not isinstance(given, Mapping) or not given:
        raise SpecError(f"scheduler_options.hyperparam_mutations must map parameter names to a range [low, high] "
                        f"(or null for the space's range), or list names; got {given!r}")
    out: dict[str, dict[str, Any]] = {}
    for name, bounds in given.items():
        where = f"scheduler_options.hyperparam_mutations.{name}"
        if name not in mutable:
            raise SpecError(f"{where}: family {family.name!r} cannot change {name!r} on a built model (it shapes the "
                            f"module or is not a training hyperparameter); mutable: {', '.join(mutable) or 'none'}")
        if name not in floats:
            raise SpecError(f"{where}: the search space does not sample {name!r} as a float (it is fixed, a choice or "
                            f"absent); PBT perturbs sampled floats: {', '.join(n for n in mutable if n in floats)}")
        param = floats[name]
        low, high, log = param.low, param.high, param.log
        if isinstance(bounds, Mapping):
            low, high = bounds.get("low", low), bounds.get("high", high)
            log = bounds.get("log", log)
        elif isinstance(bounds, (list, tuple)) and len(bounds) == 2:
            low, high = bounds
        elif bounds is not None:
            raise SpecError(f"{where} must be [low, high], {{low, high, log}} or null, got {bounds!r}")
        numbers = all(not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) for v in (low, high))
        if not numbers or not low < high or (log and low <= 0) or not isinstance(log, bool):
            raise SpecError(f"{where} needs finite low < high (low > 0 with log: true), got {bounds!r}")
        out[name] = {"low": float(low), "high": float(high), "log": log}
    return out


def _checkpointing_families() -> list[str]:
    from nasforge.plugins import get_registry

    registry = get_registry()
    return sorted(n for n in registry.names("family") if getattr(registry.get("family", n), "supports_checkpoints",
                                                                   False))
