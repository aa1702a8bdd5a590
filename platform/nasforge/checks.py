"""Field checks for family configurations.

Each check raises :class:`~nasforge.errors.ConfigError` naming the field, the bad value and
what is valid, e.g. ``activation='relu6' is not valid; choose one of: relu, tanh``. Family
authors use them in their config's ``validate``; no torch here, so a config can be
checked before any heavy import.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

from nasforge.errors import ConfigError


def fail(field: str, value: Any, expected: str) -> ConfigError:
    """The error for ``field=value``; ``expected`` says what is valid."""
    return ConfigError(f"{field}={value!r} is not valid; {expected}")


def check_part(where: str, value: Any, part: type, fields: Sequence[str]) -> Any:
    """One part of a config (a layer, a block, a node): a mapping becomes a ``part`` (an unknown key is
    named with the valid ``fields``), anything else must already be one; it is then validated at ``where``."""
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise ConfigError(f"{where} has no field {unknown[0]!r}; valid fields: {', '.join(fields)}")
        value = part(**value)
    if not isinstance(value, part):
        raise fail(where, value, f"expected a mapping with fields {', '.join(fields)}")
    value.validate(where)
    return value


def check_choice(field: str, value: Any, choices: Iterable[Any]) -> None:
    """``value`` must be one of ``choices`` (``True`` does not pass for ``1``, nor ``"1"`` for ``1``)."""
    choices = tuple(choices)
    if not any(value == c and isinstance(value, bool) == isinstance(c, bool) and
               isinstance(value, str) == isinstance(c, str) for c in choices):
        raise fail(field, value, f"choose one of: {', '.join(map(str, choices))}")


def check_int(field: str, value: Any, *, low: int) -> None:
    """``value`` must be an integer (not a bool) ``>= low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise fail(field, value, f"expected an integer >= {low}")


def check_bool(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise fail(field, value, "expected true or false")


def check_number(field: str, value: Any, *, low: float, high: float = math.inf,
                 low_open: bool = False, high_open: bool = False) -> None:
    """``value`` must be a finite number in ``[low, high]`` (``low_open``/``high_open``: exclusive)."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open or high == math.inf else ']'}"
        raise fail(field, value, f"expected a finite number in {interval}")


def check_training(config: Any, *, optimizers: Sequence[str], inits: Sequence[str], clip_modes: Sequence[str]) -> None:
    """The training fields the supervised families share (mlp, cnn, rnn): ``optimizer``, ``lr``,
    ``momentum``, ``weight_decay``, ``batch_size``, ``init``, ``clip``, ``clip_value``, ``patience``."""
    check_choice("optimizer", config.optimizer, optimizers)
    check_number("lr", config.lr, low=0.0, low_open=True)
    check_number("momentum", config.momentum, low=0.0, high=1.0, high_open=True)
    check_number("weight_decay", config.weight_decay, low=0.0)
    check_int("batch_size", config.batch_size, low=1)
    check_choice("init", config.init, inits)
    check_choice("clip", config.clip, clip_modes)
    check_number("clip_value", config.clip_value, low=0.0, low_open=True)
    if config.patience is not None:
        check_int("patience", config.patience, low=1)
