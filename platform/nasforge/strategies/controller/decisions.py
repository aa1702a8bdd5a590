"""A search space as the controller sees it: a list of decisions, each a softmax over tokens.

Zoph & Le (2017) predict every architectural choice as one token of a sequence. Here a
decision is one flat parameter of a :class:`nasforge.SearchSpace` (or one Optuna
distribution met define-by-run) and its tokens are the candidate values:

* ``choice``: its choices, exactly.
* ``int`` (and ``float`` with a ``step``): every value of the grid when it has at most
  ``bins`` values (``{int: [1, 4]}`` -> 1, 2, 3, 4); otherwise ``bins`` values spread
  evenly over the grid (geometrically for ``log: true``), rounded onto it, duplicates dropped.
* continuous ``float``: ``bins`` values from ``low`` to ``high`` inclusive, evenly spaced,
  or geometrically for ``log: true`` (``lr: {float: [1e-4, 1e-1], log: true}`` with 4 bins
  -> 1e-4, 1e-3, 1e-2, 1e-1).

``bins=None`` turns binning off: grids are enumerated exactly (up to ``MAX_TOKENS`` values)
and a continuous float is refused, naming it. Fixed values and inactive parameters (a
``when`` that does not hold, layers beyond a ``repeat`` count) are never decisions of a
trial: they are not sampled and carry no gradient.

Importing this module does not import torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from nasforge.errors import ConfigError

DEFAULT_BINS = 10
MAX_TOKENS = 1024


@dataclass(frozen=True)
class Decision:
    """One softmax of the controller: ``values[i]`` is what token ``i`` means."""

    key: str            # unique within a controller (the flat name, or name#n for a changed range)
    name: str           # the parameter's flat name, as Optuna and MLflow see it
    distribution: Any   # the optuna distribution the values satisfy
    values: tuple

    def index(self, value: Any) -> int | None:
        """The token of ``value`` (None if it is not one of the values)."""
        for i, v in enumerate(self.values):
            if type(v) is type(value) and v == value:
                return i
        for i, v in enumerate(self.values):
            if isinstance(v, float) and isinstance(value, (int, float)) and math.isclose(v, value, rel_tol=1e-9):
                return i
        return None


def check_bins(bins: Any, *, what: str = "bins") -> int | None:
    if bins is None:
        return None
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ConfigError(f"controller: {what} must be an integer >= 2 (or None for no binning), got {bins!r}")
    return bins


def candidates(name: str, distribution: Any, bins: int | None) -> tuple:
    """The token values of a parameter (see the module docstring for the rules)."""
    import optuna.distributions as d

    if isinstance(distribution, d.CategoricalDistribution):
        return tuple(distribution.choices)
    if isinstance(distribution, d.IntDistribution):
        low, high, step = distribution.low, distribution.high, distribution.step
        n = (high - low) // step + 1
        return _grid_values(name, n, lambda i: int(low + i * step), bins, distribution.log,
                            geometric=lambda k: _geometric(low, high, k, integer=True))
    if isinstance(distribution, d.FloatDistribution):
        low, high, step = distribution.low, distribution.high, distribution.step
        if step is not None:
            n = int(math.floor((high - low) / step + 1e-9)) + 1
            return _grid_values(name, n, lambda i: float(min(low + i * step, high)), bins, False, geometric=None)
        if low == high:
            return (float(low),)
        if bins is None:
            raise ConfigError(
                f"controller: parameter {name!r} is a continuous float in [{low}, {high}] and binning is "
                "off (bins=None); the controller emits discrete tokens: give it a step or choices in the "
                f"space, or let the controller bin it (e.g. strategy_options={{'bins': {DEFAULT_BINS}}})")
        if distribution.log:
            return _geometric(low, high, bins, integer=False)
        return tuple(_tidy(low + (high - low) * i / (bins - 1), low, high) for i in range(bins))
    raise ConfigError(f"controller: parameter {name!r} has a distribution it cannot express: "
                      f"{type(distribution).__name__} (expected a categorical, int or float distribution)")


def _grid_values(name, n, value_at, bins, log, *, geometric):
    if bins is None:
        if n > MAX_TOKENS:
            raise ConfigError(f"controller: parameter {name!r} has {n} values, more than one softmax should "
                              f"cover ({MAX_TOKENS}); turn binning on (e.g. strategy_options={{'bins': "
                              f"{DEFAULT_BINS}}}) or coarsen its step")
        return tuple(value_at(i) for i in range(n))
    if n <= bins:
        return tuple(value_at(i) for i in range(n))
    if log and geometric is not None:
        return geometric(bins)
    indices = sorted({round(i * (n - 1) / (bins - 1)) for i in range(bins)})
    return tuple(value_at(i) for i in indices)


def _geometric(low, high, k, *, integer):
    ratio = math.log(high / low)
    values = [low * math.exp(ratio * i / (k - 1)) for i in range(k)]
    values[0], values[-1] = low, high
    if integer:
        return tuple(sorted({min(max(int(round(v)), low), high) for v in values}))
    return tuple(_tidy(v, low, high) for v in values)


def _tidy(value: float, low: float, high: float) -> float:
    """``value`` to 12 significant digits (1e-3, not 0.0009999999999999998), kept in range."""
    return float(min(max(float(f"{value:.12g}"), low), high))


def to_controller(space, *, bins: int | None = DEFAULT_BINS,
                  param_bins: Mapping[str, int] | None = None) -> list[Decision]:
    """Every decision a space can ask for, in sampling order (repeated blocks unrolled).

    ``param_bins`` overrides ``bins`` for named int/float parameters (flat names, or the
    name inside a repeated block, e.g. ``units`` for every ``layers.i.units``).
    """
    bins = check_bins(bins)
    distributions = space.to_optuna()
    param_bins = dict(param_bins or {})
    numeric = {}
    for flat, dist in distributions.items():
        if not _is_categorical(dist):
            numeric[flat] = dist
            numeric.setdefault(flat.rsplit(".", 1)[-1], dist)
    for key, value in param_bins.items():
        if key not in numeric:
            categorical = [f for f in distributions if f == key or f.rsplit(".", 1)[-1] == key]
            if categorical:
                raise ConfigError(f"controller: param_bins names {key!r}, a choice parameter; bins apply "
                                  "to int and float ranges only")
            raise ConfigError(f"controller: param_bins names {key!r}, which is not an int or float "
                              f"parameter of {space.source}; numeric parameters: "
                              f"{', '.join(sorted(numeric)) or 'none'}")
        check_bins(value, what=f"param_bins[{key!r}]")
    decisions = []
    for flat, dist in distributions.items():
        n_bins = param_bins.get(flat, param_bins.get(flat.rsplit(".", 1)[-1], bins))
        decisions.append(Decision(key=flat, name=flat, distribution=dist, values=candidates(flat, dist, n_bins)))
    if not decisions:
        raise ConfigError(f"controller: search space {space.source} has no parameter to decide (only fixed values)")
    return decisions


def _is_categorical(distribution) -> bool:
    import optuna.distributions as d

    return isinstance(distribution, d.CategoricalDistribution)
