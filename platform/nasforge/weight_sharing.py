"""Helpers for a family's supernet (weight sharing): what it holds of a search space, and every value.

A supernet (:meth:`nasforge.Family.supernet`) holds every architecture of a search space in one
set of shared weights. It holds only what shapes the network -- depth, widths, operations -- never
a training setting (``lr``, ``batch_size``, ``optimizer``...): every path trains with the same
optimizer, and the retrained architectures with the settings the space fixes. :func:`check_held`
refuses a space that varies anything else, naming the parameter; :func:`values_at` lists what a
parameter can take, so a supernet is built to its largest shapes; :func:`mixture` is DARTS's mixed
operation, for a supernet's ``mixed`` forward. No torch here.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from nasforge.errors import ConfigError
from nasforge.spec.space import ChoiceParam, FixedParam, FloatParam, IntParam, Param, RepeatBlock

MAX_VALUES = 64   # values of an int parameter a supernet enumerates (one operation each, e.g. kernel sizes)


def pattern(flat_name: str) -> str:
    """``blocks.2.filters`` -> ``blocks.*.filters``: the name of a parameter in every copy of a block."""
    return re.sub(r"(?<=\.)\d+(?=\.)", "*", flat_name)


def check_held(space, *, family: str, held: Iterable[str]) -> None:
    """Raise :class:`ConfigError` naming the first parameter ``space`` varies outside ``held``.

    ``held`` lists the parameters the supernet holds, copies of a repeated block written with ``*``
    (``blocks.*.filters``). A fixed value is always fine: every path uses it.
    """
    held = set(held)
    for flat_name, param in space.iter_flat():
        if isinstance(param, FixedParam) or pattern(flat_name) in held:
            continue
        shown = ", ".join(sorted(held))
        raise ConfigError(
            f"family {family!r}: the supernet cannot hold parameter {flat_name!r} ({describe(param)}) of "
            f"{space.source}: one set of shared weights trains every path with the same settings. Fix it in "
            f"the space (e.g. {flat_name.rsplit('.', 1)[-1]}: {example(param)!r}); the retrained architectures "
            f"use that value. The supernet holds: {shown}")


def find_param(space, flat_name: str) -> Param | None:
    """The leaf parameter named ``flat_name`` (repeated blocks expanded), or None if the space lacks it."""
    for name, param in space.iter_flat():
        if name == flat_name:
            return param
    return None


def find_block(space, name: str) -> RepeatBlock | None:
    """The top-level repeated block ``name`` (``layers``, ``blocks``), or None."""
    return next((p for p in space.params if p.name == name and isinstance(p, RepeatBlock)), None)


def values_at(space, flat_name: str, default: Any) -> tuple | None:
    """Every value parameter ``flat_name`` can take: its choices, its fixed value, every integer of its
    range; ``(default,)`` when the space leaves it out (the config's default); None for a continuous
    float (a dropout rate: nothing a supernet must enumerate)."""
    param = find_param(space, flat_name)
    if param is None:
        return (default,)
    return values_of(param, flat_name)


def values_of(param: Param, flat_name: str) -> tuple | None:
    """See :func:`values_at`."""
    if isinstance(param, FixedParam):
        return (param.value,)
    if isinstance(param, ChoiceParam):
        return tuple(param.choices)
    if isinstance(param, IntParam):
        return tuple(range(param.low, param.high + 1, param.step))
    if isinstance(param, FloatParam):
        return None if param.step is None else tuple(param.grid())
    raise ConfigError(f"parameter {flat_name!r} is a {type(param).__name__}, not a value")


def count_values(space, block: RepeatBlock) -> tuple[int, ...]:
    """The numbers of copies of ``block`` a configuration can have (its count parameter's values)."""
    count = next((p for p in space.params if p.name == block.count), None)
    values = values_of(count, block.count) if count is not None else (block.max_count,)
    return tuple(sorted(set(values)))


def enumerable(values: tuple | None, flat_name: str, *, why: str) -> tuple:
    """``values`` if a supernet can build one operation per value, else a :class:`ConfigError`."""
    if values is None or len(values) > MAX_VALUES:
        many = "a continuous range" if values is None else f"{len(values)} values"
        raise ConfigError(f"parameter {flat_name!r} takes {many}; the supernet {why}: give it a choice of a few "
                          f"values (at most {MAX_VALUES})")
    return values


def describe(param: Param) -> str:
    if isinstance(param, ChoiceParam):
        return "a choice of " + ", ".join(map(str, param.choices))
    if isinstance(param, (IntParam, FloatParam)):
        kind = "an int" if isinstance(param, IntParam) else "a float"
        return f"{kind} in [{param.low}, {param.high}]"
    return type(param).__name__


def example(param: Param) -> Any:
    """A value to fix ``param`` at, for the message."""
    if isinstance(param, ChoiceParam):
        return param.choices[0]
    if isinstance(param, IntParam):
        return param.low
    if isinstance(param, FloatParam):
        return round((param.low * param.high) ** 0.5, 6) if param.log else round((param.low + param.high) / 2, 6)
    return None


def mixture(weights, flat_name: str, held: tuple | None, op):
    """DARTS's mixed operation (Liu et al. 2019, eq. 2): ``sum(w_v * op(v))`` over the values ``v`` of
    parameter ``flat_name``, ``weights[flat_name]`` mapping each value to its weight (a softmax of the
    architecture parameters; values left out weigh 0). A parameter ``weights`` leaves out must be one
    the space fixes (``held == (value,)``): then it is just ``op(value)``. With one-hot weights this
    is exactly the operation of that value, so ``Supernet.mixed`` reproduces ``forward`` on a path.
    """
    given = weights.get(flat_name)
    if given is None:
        if held is None or len(held) != 1:
            takes = "a continuous range" if held is None else ", ".join(map(str, held))
            raise ConfigError(f"the mixed forward got no weights for parameter {flat_name!r}, which takes {takes}")
        return op(held[0])
    if not given:
        raise ConfigError(f"the mixed forward got an empty set of weights for parameter {flat_name!r}")
    total = first = None
    for value, weight in given.items():
        output = op(value)
        shape = tuple(getattr(output, "shape", ()))   # a tensor, or a plain number
        if total is None:
            total, first = weight * output, (value, shape)
            continue
        if shape != first[1]:
            raise ConfigError(f"parameter {flat_name!r}: its values give outputs of different shapes ({first[0]!r}: "
                              f"{first[1]}, {value!r}: {shape}), which DARTS cannot sum into one mixed "
                              "operation; fix it in the space (or search it with strategy='enas' or 'rsws')")
        total = total + weight * output
    return total
