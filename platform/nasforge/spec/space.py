"""Search spaces: a YAML file or dict turned into a typed tree of parameters.

A space file::

    family: mlp                                   # optional: the family it is for
    objective: {metric: val_accuracy, direction: maximize}   # optional default objective
    budget: {epochs: 20}                          # optional: max fidelity for pruners
    params:
      n_layers: {int: [1, 4]}
      layers:                                     # a repeated block: choices per layer
        repeat: n_layers
        params:
          units: {int: [16, 512], log: true}
          activation: {choice: [relu, tanh]}
      lr: {float: [1.0e-4, 1.0e-1], log: true}
      optimizer: {choice: [adam, sgd]}
      momentum: {float: [0.0, 0.99], when: {optimizer: sgd}}   # conditional
      batch_size: 64                              # fixed value

Parameters are sampled in the order they are written; ``when`` and ``repeat`` refer to
parameters written before them. A sampled configuration is a nested dict (a list of
dicts for a repeated block); inactive parameters are absent. Flat names join the path
with dots (``layers.0.units``), which is what Optuna and MLflow see.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Union

from nasforge.errors import SpaceError, UnknownNameError

Scalar = Union[str, int, float, bool, None]
SCALAR_TYPES = (str, int, float, bool, type(None))
DIRECTIONS = ("maximize", "minimize")
TOP_LEVEL_KEYS = ("family", "objective", "budget", "params", "description")
# Limits that keep a malformed space from exhausting memory or time (far above any real space).
MAX_INT = 2**53              # Optuna keeps parameter values as float64: larger integers lose digits
MAX_REPEAT = 1000            # copies of a repeated block
MAX_FLAT_PARAMS = 10_000     # leaf parameters once repeated blocks are expanded
MAX_GRID_VALUES = 100_000    # values of one parameter in a grid
MAX_GRID_POINTS = 1_000_000  # configurations in a grid (Optuna's GridSampler lists them all)
MAX_STEPS = 10**12           # (high - low) / step of a stepped float (Optuna rounds it with decimals)
SHIPPED_NAME = re.compile(r"[A-Za-z0-9_][\w.-]*")


@dataclass(frozen=True)
class Condition:
    """Active only when each named parameter has one of the listed values."""

    requires: tuple[tuple[str, tuple[Scalar, ...]], ...]

    def holds(self, scope: Mapping[str, Any]) -> bool:
        return all(name in scope and scope[name] in values for name, values in self.requires)


@dataclass(frozen=True)
class Param:
    name: str
    when: Condition | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class IntParam(Param):
    low: int
    high: int
    log: bool = False
    step: int = 1

    def grid(self) -> list[int]:
        _check_grid_size((self.high - self.low) // self.step + 1, self.name)
        return list(range(self.low, self.high + 1, self.step))


@dataclass(frozen=True)
class FloatParam(Param):
    low: float
    high: float
    log: bool = False
    step: float | None = None

    def grid(self) -> list[float]:
        if self.step is None:
            raise SpaceError(
                "a continuous float cannot be enumerated; give it a 'step' or make it a choice",
                path=self.name,
            )
        n = int(math.floor((self.high - self.low) / self.step + 1e-9))
        _check_grid_size(n + 1, self.name)
        return [round(self.low + i * self.step, 12) for i in range(n + 1)]


@dataclass(frozen=True)
class ChoiceParam(Param):
    choices: tuple[Scalar, ...]

    def grid(self) -> list[Scalar]:
        return list(self.choices)


@dataclass(frozen=True)
class FixedParam(Param):
    value: Any

    def grid(self) -> list[Any]:
        return [self.value]


@dataclass(frozen=True)
class RepeatBlock(Param):
    """``count`` copies of ``params``, where ``count`` is an earlier int parameter."""

    count: str
    max_count: int
    params: tuple[Param, ...]


@dataclass(frozen=True)
class Objective:
    """A metric to optimize; ``direction=None`` takes the family's own direction for it."""

    metric: str
    direction: str | None = None


class Suggester:
    """Where sampled values come from (an Optuna trial, a dict of flat values, ...)."""

    def suggest(self, flat_name: str, param: Param) -> Any:  # pragma: no cover - interface
        raise NotImplementedError


class OptunaSuggester(Suggester):
    """Suggests through an ``optuna.Trial`` (define-by-run)."""

    def __init__(self, trial):
        self.trial = trial

    def suggest(self, flat_name: str, param: Param) -> Any:
        if isinstance(param, IntParam):
            return self.trial.suggest_int(flat_name, param.low, param.high, step=param.step, log=param.log)
        if isinstance(param, FloatParam):
            return self.trial.suggest_float(flat_name, param.low, param.high, step=param.step, log=param.log)
        if isinstance(param, ChoiceParam):
            return self.trial.suggest_categorical(flat_name, list(param.choices))
        raise TypeError(param)


class DictSuggester(Suggester):
    """Reads values from flat parameters (e.g. ``FrozenTrial.params``)."""

    def __init__(self, flat: Mapping[str, Any], source: str = "parameters"):
        self.flat = flat
        self.source = source

    def suggest(self, flat_name: str, param: Param) -> Any:
        if flat_name not in self.flat:
            raise SpaceError(f"missing value for active parameter {flat_name!r}", source=self.source)
        return self.flat[flat_name]


@dataclass(frozen=True)
class SearchSpace:
    """A typed, validated search space. Build it with :meth:`load` or :meth:`from_dict`."""

    params: tuple[Param, ...]
    family: str | None = None
    objectives: tuple[Objective, ...] = ()
    budget: Mapping[str, Any] = field(default_factory=dict)
    source: str = "<dict>"
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    # -- construction ----------------------------------------------------------------
    @classmethod
    def load(cls, name_or_path: str | Path) -> "SearchSpace":
        """Load a shipped space by name (``"mlp"``) or a YAML file by path."""
        import yaml

        if not isinstance(name_or_path, (str, Path)):
            raise SpaceError(f"a search space is a shipped name or a YAML path, got {name_or_path!r}")
        path = Path(name_or_path)
        try:
            if path.suffix in (".yaml", ".yml") or path.exists() or not SHIPPED_NAME.fullmatch(str(name_or_path)):
                if not path.is_file():
                    raise SpaceError(f"search-space file not found: {path} (shipped spaces: "
                                     f"{', '.join(shipped_space_names())})")
                text, source = path.read_text(encoding="utf-8"), str(path)
            else:
                text, source = read_shipped(str(name_or_path)), f"{name_or_path}.yaml (shipped)"
        except (OSError, ValueError) as exc:  # unreadable, not UTF-8, a NUL in the path, a name too long
            raise SpaceError(f"cannot read the search space {str(name_or_path)!r}: {exc}") from None
        try:
            data = yaml.safe_load(text)
        except RecursionError:
            raise SpaceError("invalid YAML: nested too deeply", source=source) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise SpaceError(f"invalid YAML: {where}{problem}", source=source) from None
        return cls.from_dict(data, source=source)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<dict>") -> "SearchSpace":
        """Parse a space dict: a full file (with ``params``) or just the params mapping."""
        if not isinstance(data, Mapping):
            raise SpaceError(f"a search space must be a mapping, got {type(data).__name__}", source=source)
        if "params" not in data:
            data = {"params": data}
        unknown = [k for k in data if k not in TOP_LEVEL_KEYS]
        if unknown:
            raise SpaceError(
                f"unknown top-level key {unknown[0]!r}; valid keys: {', '.join(TOP_LEVEL_KEYS)}",
                source=source,
            )
        family = data.get("family")
        if family is not None and not isinstance(family, str):
            raise SpaceError("must be a family name (a string)", source=source, path="family")
        if not isinstance(data.get("description", ""), (str, type(None))):
            raise SpaceError("must be a string", source=source, path="description")
        budget = data.get("budget")
        budget = {} if budget is None else budget
        if not isinstance(budget, Mapping):
            raise SpaceError(f"must be a mapping like {{epochs: 20}}, got {budget!r}", source=source, path="budget")
        for key, value in budget.items():
            if not isinstance(key, str):
                raise SpaceError(f"a budget key must be a unit name like 'epochs', got {key!r}", source=source,
                                 path="budget")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value) or value <= 0:
                raise SpaceError(f"must be a positive number, got {value!r}", source=source, path=f"budget.{key}")
        objectives = parse_objectives(data.get("objective"), source=source)
        params = _parse_params(data["params"], source=source, prefix="params", outer={})
        if not params:
            raise SpaceError("a search space needs at least one parameter", source=source, path="params")
        n_flat = _count_flat(params)
        if n_flat > MAX_FLAT_PARAMS:
            raise SpaceError(f"expands to {n_flat} parameters once repeated blocks are unrolled; at most "
                             f"{MAX_FLAT_PARAMS} are allowed", source=source, path="params")
        return cls(params=params, family=family, objectives=objectives, budget=dict(budget),
                   source=source, raw=dict(data))

    # -- sampling --------------------------------------------------------------------
    def sample(self, suggester: Suggester | Any) -> dict[str, Any]:
        """Sample a nested configuration. Accepts a :class:`Suggester` or an Optuna trial."""
        if not isinstance(suggester, Suggester):
            suggester = OptunaSuggester(suggester)
        return _sample(self.params, suggester, prefix="", outer={})

    def config_from_flat(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        """Rebuild the nested configuration from flat values (e.g. ``trial.params``)."""
        return self.sample(DictSuggester(flat))

    def to_optuna(self) -> dict[str, Any]:
        """Every parameter that can be active, as flat name -> Optuna distribution."""
        import optuna.distributions as d

        out: dict[str, Any] = {}
        for flat_name, param in self.iter_flat():
            if isinstance(param, IntParam):
                out[flat_name] = d.IntDistribution(param.low, param.high, log=param.log, step=param.step)
            elif isinstance(param, FloatParam):
                out[flat_name] = d.FloatDistribution(param.low, param.high, log=param.log, step=param.step)
            elif isinstance(param, ChoiceParam):
                out[flat_name] = d.CategoricalDistribution(list(param.choices))
        return out

    def grid(self) -> dict[str, list[Any]]:
        """Flat name -> every value, for grid search; fails on continuous parameters."""
        out = {}
        points = 1
        searched = [(n, p) for n, p in self.iter_flat() if not isinstance(p, FixedParam)]
        continuous = [(n, p) for n, p in searched if isinstance(p, FloatParam) and p.step is None]
        for flat_name, param in continuous[:1] + searched:  # a continuous parameter is the first thing to say
            try:
                out[flat_name] = param.grid()
            except SpaceError as exc:
                raise SpaceError(str(exc).split(": ", 1)[-1], source=self.source, path=flat_name) from None
            points *= max(len(out[flat_name]), 1)
            if points > MAX_GRID_POINTS:
                raise SpaceError(f"the grid has more than {MAX_GRID_POINTS:,} configurations (at {flat_name}); "
                                 "use fewer values, steps or repeats, or another strategy", source=self.source)
        return out

    def iter_flat(self) -> Iterator[tuple[str, Param]]:
        """Every leaf parameter that can be active, repeated blocks expanded to their maximum."""
        yield from _iter_flat(self.params, prefix="")

    def names(self) -> list[str]:
        return [name for name, _ in self.iter_flat()]

    def with_params(self, params: tuple[Param, ...]) -> "SearchSpace":
        return SearchSpace(params=params, family=self.family, objectives=self.objectives,
                           budget=self.budget, source=self.source, raw=self.raw)


# -- helpers ---------------------------------------------------------------------------
def shipped_space_names() -> list[str]:
    from importlib.resources import files

    return sorted(p.name[: -len(".yaml")] for p in files("nasforge.search_spaces").iterdir()
                  if p.name.endswith(".yaml"))


def read_shipped(name: str) -> str:
    from importlib.resources import files

    if not SHIPPED_NAME.fullmatch(name):  # no path separators: shipped names never leave the package
        raise UnknownNameError("search space", name, shipped_space_names())
    resource = files("nasforge.search_spaces").joinpath(f"{name}.yaml")
    if not resource.is_file():
        raise UnknownNameError("search space", name, shipped_space_names())
    return resource.read_text()


def parse_objectives(value: Any, *, source: str = "<spec>", path: str = "objective") -> tuple[Objective, ...]:
    """``None``, ``"metric"``, ``{metric, direction}`` or a list of those."""
    if value is None:
        return ()
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for i, item in enumerate(items):
        where = f"{path}[{i}]" if isinstance(value, (list, tuple)) else path
        if isinstance(item, Objective):
            metric, direction = item.metric, item.direction
        elif isinstance(item, str):
            metric, direction = item, None
        elif isinstance(item, Mapping):
            extra = set(item) - {"metric", "direction"}
            if extra:
                raise SpaceError(f"unknown key {sorted(extra)[0]!r}; valid keys: metric, direction",
                                 source=source, path=where)
            metric, direction = item.get("metric"), item.get("direction")
        else:
            raise SpaceError(f"must be a metric name or {{metric, direction}}, got {item!r}",
                             source=source, path=where)
        if not isinstance(metric, str) or not metric:
            raise SpaceError("needs a metric name", source=source, path=f"{where}.metric")
        if direction is not None and direction not in DIRECTIONS:
            raise SpaceError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}",
                             source=source, path=f"{where}.direction")
        out.append(Objective(metric, direction))
    if not out:
        raise SpaceError("needs at least one objective", source=source, path=path)
    return tuple(out)


_PARAM_KINDS = ("int", "float", "choice", "value", "repeat")
_MODIFIERS = {"int": ("log", "step", "when"), "float": ("log", "step", "when"),
              "choice": ("when",), "value": ("when",), "repeat": ("params", "when")}


def _parse_params(data: Any, *, source: str, prefix: str, outer: dict[str, Param]) -> tuple[Param, ...]:
    if not isinstance(data, Mapping):
        raise SpaceError("must be a mapping of parameter name -> definition", source=source, path=prefix)
    scope = dict(outer)
    params: list[Param] = []
    for name, spec in data.items():
        path = f"{prefix}.{name}"
        if not isinstance(name, str) or not name.isidentifier():
            raise SpaceError("a parameter name must be an identifier (letters, digits, _)",
                             source=source, path=path)
        param = _parse_param(name, spec, source=source, path=path, scope=scope)
        scope[name] = param
        params.append(param)
    return tuple(params)


def _parse_param(name: str, spec: Any, *, source: str, path: str, scope: dict[str, Param]) -> Param:
    def fail(msg: str, sub: str = "") -> SpaceError:
        return SpaceError(msg, source=source, path=f"{path}.{sub}" if sub else path)

    if isinstance(spec, SCALAR_TYPES):
        return FixedParam(name, value=spec)
    if isinstance(spec, list):
        raise fail(f"a list is ambiguous; write {{choice: {spec!r}}} for a categorical parameter")
    if not isinstance(spec, Mapping):
        raise fail(f"must be a value or a mapping, got {type(spec).__name__}")
    kinds = [k for k in _PARAM_KINDS if k in spec]
    if len(kinds) != 1:
        found = f"found {', '.join(kinds)}" if kinds else "found none"
        raise fail(f"needs exactly one of {', '.join(_PARAM_KINDS)} ({found})")
    kind = kinds[0]
    unknown = [k for k in spec if k != kind and k not in _MODIFIERS[kind]]
    if unknown:
        valid = ", ".join((kind,) + _MODIFIERS[kind])
        raise fail(f"unknown key {unknown[0]!r} for a {kind} parameter; valid keys: {valid}")
    when = _parse_when(spec.get("when"), fail=fail, scope=scope)
    value = spec[kind]

    if kind == "value":
        return FixedParam(name, value=value, when=when)
    if kind == "choice":
        if not isinstance(value, list) or not value:
            raise fail("must be a non-empty list of values", "choice")
        for v in value:
            if not isinstance(v, SCALAR_TYPES):
                raise fail(f"choices must be strings, numbers, booleans or null, got {v!r}", "choice")
            if isinstance(v, float) and math.isnan(v):
                raise fail("a choice cannot be NaN (it equals nothing, not even itself)", "choice")
            if isinstance(v, int) and abs(v) > 1e308:  # Optuna compares choices as floats
                raise fail(f"the choice {_short(v)} is too large a number", "choice")
        for i, v in enumerate(value):
            same = [w for w in value[:i] if w == v]  # 1, 1.0 and true are one value to Optuna
            if same:
                raise fail(f"choices must be distinct: {same[0]!r} and {v!r} are equal", "choice")
        return ChoiceParam(name, choices=tuple(value), when=when)
    if kind == "repeat":
        count = scope.get(value) if isinstance(value, str) else None
        if not isinstance(count, (IntParam, FixedParam)) or (
            isinstance(count, FixedParam) and (not isinstance(count.value, int) or isinstance(count.value, bool))
        ):
            ints = [n for n, p in scope.items() if isinstance(p, IntParam)]
            raise fail(f"must name an int parameter written before it; got {value!r} "
                       f"(int parameters so far: {', '.join(ints) or 'none'})", "repeat")
        low = count.low if isinstance(count, IntParam) else count.value
        max_count = count.high if isinstance(count, IntParam) else count.value
        if low < 0:
            raise fail(f"the count {value!r} must not go below 0", "repeat")
        if max_count > MAX_REPEAT:
            raise fail(f"the count {value!r} can reach {max_count}; a repeated block allows at most "
                       f"{MAX_REPEAT} copies", "repeat")
        if "params" not in spec:
            raise fail("a repeated block needs 'params'")
        inner = _parse_params(spec["params"], source=source, prefix=f"{path}.params", outer=scope)
        return RepeatBlock(name, count=value, max_count=max_count, params=inner, when=when)

    # int / float
    if not isinstance(value, list) or len(value) != 2:
        raise fail(f"must be [low, high], got {value!r}", kind)
    low, high = value
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise fail(f"must be true or false, got {log!r}", "log")
    step = spec.get("step")
    numbers = (int,) if kind == "int" else (int, float)
    for label, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, numbers) or not _finite(v):
            raise fail(f"{label} must be {'an integer' if kind == 'int' else 'a finite number'}, got {_short(v)}",
                       kind)
        if kind == "int" and abs(v) > MAX_INT:
            raise fail(f"{label} ({_short(v)}) is too large: integers are kept as float64 by Optuna, so at most "
                       f"2**53 = {MAX_INT} in size", kind)
    if low > high:
        raise fail(f"low ({low}) must not exceed high ({high})", kind)
    if kind == "float" and not math.isfinite(float(high) - float(low)):
        raise fail(f"the range [{low}, {high}] is too wide to sample (high - low overflows)", kind)
    if log and low <= 0:
        raise fail(f"a log-scaled range needs low > 0, got {low}", kind)
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, numbers) or not _finite(step) or step <= 0:
            raise fail(f"must be a positive {'integer' if kind == 'int' else 'number'}, got {_short(step)}", "step")
        if log and (kind == "float" or step != 1):
            raise fail("log and step cannot be combined", "step")
        _check_step(low, high, step, fail=fail)
    if kind == "int":
        return IntParam(name, low=low, high=high, log=log, step=step or 1, when=when)
    return FloatParam(name, low=float(low), high=float(high), log=log,
                      step=None if step is None else float(step), when=when)


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 12]}...({len(text)} chars)"


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _check_step(low: float, high: float, step: float, *, fail: Callable[..., SpaceError]) -> None:
    """``step`` must divide ``high - low`` (Optuna would silently move ``high`` otherwise)."""
    if isinstance(step, int) and isinstance(low, int) and isinstance(high, int):
        if (high - low) % step:
            nearest = low + (high - low) // step * step
            raise fail(f"step {step} does not divide high - low ({high - low}); use high {nearest} or "
                       f"{nearest + step}", "step")
        return
    steps = (high - low) / step
    if steps > MAX_STEPS:
        raise fail(f"step {step} is too small for [{low}, {high}]: {steps:.3g} steps (at most {MAX_STEPS:.0e})",
                   "step")
    from decimal import Decimal  # the test Optuna makes before it moves high

    span, d_step = Decimal(str(high)) - Decimal(str(low)), Decimal(str(step))
    if span % d_step != 0:
        nearest = float(span // d_step * d_step + Decimal(str(low)))
        raise fail(f"step {step} does not divide high - low ({float(span):g}); use high {nearest:g} or "
                   f"{nearest + step:g}", "step")


def _check_grid_size(n: int, name: str) -> None:
    if n > MAX_GRID_VALUES:
        raise SpaceError(f"has {n:,} values, too many for a grid (at most {MAX_GRID_VALUES:,}); give it a "
                         "larger step or make it a choice", path=name)


def _count_flat(params: tuple[Param, ...]) -> int:
    """How many leaf parameters :meth:`SearchSpace.iter_flat` yields, without yielding them."""
    return sum(p.max_count * _count_flat(p.params) if isinstance(p, RepeatBlock) else 1 for p in params)


def _parse_when(when: Any, *, fail: Callable[..., SpaceError], scope: dict[str, Param]) -> Condition | None:
    if when is None:
        return None
    if not isinstance(when, Mapping) or not when:
        raise fail("must map an earlier parameter to a value or list of values", "when")
    requires = []
    for ref, values in when.items():
        target = scope.get(ref)
        if target is None or isinstance(target, RepeatBlock):
            raise fail(f"refers to {ref!r}, which is not a parameter written before it "
                       f"(earlier parameters: {', '.join(scope) or 'none'})", f"when.{ref}")
        values = tuple(values) if isinstance(values, list) else (values,)
        if not values:
            raise fail("needs at least one value (an empty list is never matched)", f"when.{ref}")
        for v in values:
            if not isinstance(v, SCALAR_TYPES):
                raise fail(f"a condition value must be a string, number, boolean or null, got {v!r}", f"when.{ref}")
        if isinstance(target, (IntParam, FloatParam)):
            bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float))
                   or not target.low <= v <= target.high]
            if bad:
                raise fail(f"{bad[0]!r} is outside the range of {ref!r} [{target.low}, {target.high}], so the "
                           "condition could never hold", f"when.{ref}")
        if isinstance(target, ChoiceParam):
            bad = [v for v in values if v not in target.choices]
            if bad:
                raise fail(f"{bad[0]!r} is not a choice of {ref!r}; choices: "
                           f"{', '.join(map(str, target.choices))}", f"when.{ref}")
        requires.append((ref, values))
    return Condition(tuple(requires))


def _sample(params: tuple[Param, ...], suggester: Suggester, *, prefix: str, outer: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    scope = dict(outer)
    for param in params:
        if param.when is not None and not param.when.holds(scope):
            continue
        flat_name = prefix + param.name
        if isinstance(param, FixedParam):
            value = param.value
        elif isinstance(param, RepeatBlock):
            count = scope.get(param.count, 0)
            value = [_sample(param.params, suggester, prefix=f"{flat_name}.{i}.", outer=scope)
                     for i in range(count)]
        else:
            value = suggester.suggest(flat_name, param)
        config[param.name] = value
        scope[param.name] = value
    return config


def _iter_flat(params: tuple[Param, ...], *, prefix: str) -> Iterator[tuple[str, Param]]:
    for param in params:
        if isinstance(param, RepeatBlock):
            for i in range(param.max_count):
                yield from _iter_flat(param.params, prefix=f"{prefix}{param.name}.{i}.")
        else:
            yield prefix + param.name, param


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested configuration -> flat ``{"layers.0.units": 64, ...}`` (for MLflow params)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for i, item in enumerate(value):
                flat.update(flatten(item, prefix=f"{name}.{i}."))
        else:
            flat[name] = value
    return flat
