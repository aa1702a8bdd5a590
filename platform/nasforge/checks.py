"""Field checks for family configurations.

Each check raises :class:`~nasforge.errors.ConfigError` naming the field, the bad value and
what is valid, e.g. ``activation='relu6' is not valid; choose one of: relu, tanh``. Family
authors use them in their config's ``validate``; no torch here, so a config can be
checked before any heavy import.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from nasforge.errors import ConfigError


def fail(field: str, value: Any, expected: str) -> ConfigError:
    """The error for ``field=value``; ``expected`` says what is valid."""
    return ConfigError(f"{field}={value!r} is not valid; {expected}")


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
