"""Config validation shared by the generative families (autoencoder, gan); no torch import.

Every check raises :class:`nasforge.errors.ConfigError` naming the field, the bad value and
what is valid, so a bad configuration stops before anything is built or trained.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from nasforge.errors import ConfigError

# Kept in step with nasforge.training (which imports torch); a test checks they agree.
ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "selu", "silu")
OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta", "rmsprop", "adagrad")


def fail(field_name: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{field_name}={value!r} is not valid; {expected}")


def check_choice(field_name: str, value: Any, choices: tuple[Any, ...]) -> None:
    if isinstance(value, bool) != isinstance(choices[0], bool) or value not in choices:
        raise fail(field_name, value, f"choose one of: {', '.join(map(str, choices))}")


def check_int(field_name: str, value: Any, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise fail(field_name, value, f"expected an integer >= {low}")


def check_number(field_name: str, value: Any, *, low: float, high: float = math.inf,
                 low_open: bool = False, high_open: bool = False) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open or high == math.inf else ']'}"
        raise fail(field_name, value, f"expected a finite number in {interval}")


def check_widths(field_name: str, layers: Any, n_layers: int | None, *, min_layers: int = 0) -> list[int]:
    """``layers`` as a list of widths; items may be ints or ``{"units": int}`` (a repeat block).

    ``n_layers``, when given, must equal ``len(layers)`` (the space uses it as the repeat count).
    """
    if not isinstance(layers, (list, tuple)):
        raise fail(field_name, layers, "expected a list of layers, each {units: N} or N")
    widths = []
    for i, layer in enumerate(layers):
        where = f"{field_name}[{i}]"
        if isinstance(layer, Mapping):
            unknown = sorted(set(layer) - {"units"})
            if unknown:
                raise ConfigError(f"{where} has no field {unknown[0]!r}; valid fields: units")
            if "units" not in layer:
                raise ConfigError(f"{where} needs a 'units' field")
            layer = layer["units"]
        check_int(f"{where}.units" if isinstance(layers[i], Mapping) else where, layer, low=1)
        widths.append(layer)
    if len(widths) < min_layers:
        raise fail(field_name, layers, f"expected at least {min_layers} layer(s)")
    if n_layers is not None:
        n_name = f"n_{field_name}" if field_name != "layers" else "n_layers"
        check_int(n_name, n_layers, low=0)
        if n_layers != len(widths):
            raise fail(n_name, n_layers, f"it must equal len({field_name}) = {len(widths)}")
    return widths


def epochs_from_budget(family, budget: Mapping[str, Any]) -> int:
    """``budget[family.budget_unit]`` (default ``family.default_budget``), checked."""
    unknown = sorted(set(budget) - {family.budget_unit})
    if unknown:
        raise ConfigError(f"family {family.name!r} has no budget {unknown[0]!r}; its budget is "
                          f"{{{family.budget_unit}: N}}")
    epochs = budget.get(family.budget_unit, family.default_budget)
    if isinstance(epochs, float) and epochs.is_integer():
        epochs = int(epochs)
    check_int(f"budget.{family.budget_unit}", epochs, low=1)
    return epochs


def records_figures(reporter) -> bool:
    """Whether ``reporter`` keeps figures (the base :class:`Reporter` drops them: skip rendering)."""
    from nasforge.family import Reporter

    return type(reporter).log_figure is not Reporter.log_figure


def in_unit_interval(x) -> bool:
    """True when every value of the array ``x`` lies in [0, 1] (pixel intensities)."""
    return bool(x.min() >= 0.0 and x.max() <= 1.0)
