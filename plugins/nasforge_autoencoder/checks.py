"""Config validation shared by the generative families (autoencoder, gan); no torch import.

Every check raises :class:`nasforge.errors.ConfigError` naming the field, the bad value and
what is valid, so a bad configuration stops before anything is built or trained.
"""

from __future__ import annotations

from typing import Any, Mapping

from nasforge.checks import check_choice, check_int, check_number, fail  # noqa: F401 - re-exported
from nasforge.errors import ConfigError

# Kept in step with nasforge.training (which imports torch); a test checks they agree.
ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "selu", "silu")
OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta", "rmsprop", "adagrad")


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


def records_figures(reporter) -> bool:
    """Whether ``reporter`` keeps figures (the base :class:`Reporter` drops them: skip rendering)."""
    from nasforge.family import Reporter

    return type(reporter).log_figure is not Reporter.log_figure


def in_unit_interval(x) -> bool:
    """True when every value of the array ``x`` lies in [0, 1] (pixel intensities)."""
    return bool(x.min() >= 0.0 and x.max() <= 1.0)
