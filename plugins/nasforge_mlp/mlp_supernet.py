"""The MLP family's supernet: every MLP of a search space in one set of shared weights (imports torch).

Hidden layer ``i`` is one ``Linear`` built to the largest ``units`` the space gives it, fed the
previous layer's largest width; a path with fewer units uses the first rows and the first columns
of those weights -- widths as slices (slimmable networks, Yu et al. 2019; the weight sharing of
ENAS, Pham et al. 2018). Activations and dropout have no weights: a path applies its own. The
output layer's input is the last hidden layer (or the inputs, with no hidden layer), so there is
one output layer per depth, shared by every path of that depth.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from nasforge.errors import ConfigError
from nasforge.training import ACTIVATIONS
from nasforge.weight_sharing import check_held, count_values, enumerable, find_block, values_at

HELD = ("n_layers", "layers.*.units", "layers.*.activation", "layers.*.dropout")


class MLPSupernet(nn.Module):
    """Every MLP of a search space (see the module docstring); ``forward(x, config)`` runs one path."""

    def __init__(self, *, in_width: int, widths: list[int], depths: tuple[int, ...], activations: set[str],
                 n_outputs: int):
        super().__init__()
        self.widths = list(widths)
        sizes = [in_width, *self.widths]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.outputs = nn.ModuleDict({str(d): nn.Linear(sizes[d], n_outputs) for d in depths})
        self.activations = nn.ModuleDict({name: ACTIVATIONS[name]() for name in sorted(activations)})

    def forward(self, x: torch.Tensor, config) -> torch.Tensor:
        depth = len(config.layers)
        if str(depth) not in self.outputs:
            raise ConfigError(f"the supernet holds no MLP of {depth} hidden layers (outside its search space)")
        h = x.flatten(1)
        for i, layer in enumerate(config.layers):
            linear = self.hidden[i]
            if layer.units > self.widths[i]:
                raise ConfigError(f"layers[{i}].units={layer.units} is wider than the supernet's {self.widths[i]}")
            h = F.linear(h, linear.weight[:layer.units, :h.shape[1]], linear.bias[:layer.units])
            h = self.activations[layer.activation](h)
            h = F.dropout(h, layer.dropout, self.training)
        out = self.outputs[str(depth)]
        return F.linear(h, out.weight[:, :h.shape[1]], out.bias)


def build_supernet(space, task, *, family) -> MLPSupernet:
    """The supernet of ``space`` on ``task`` (checks the space first; see :meth:`MLPFamily.supernet`)."""
    from nasforge_mlp.family import LayerConfig

    check_held(space, family=family.name, held=HELD)
    family.check_task(task.name, task.kind)
    block = find_block(space, "layers")
    if block is None:
        raise ConfigError(f"family 'mlp': the supernet needs the layers of {space.source} as a repeated block "
                          "(layers: {repeat: n_layers, params: {units: ..., activation: ...}})")
    defaults = LayerConfig()
    widths, activations = [], set()
    for i in range(block.max_count):
        units = enumerable(values_at(space, f"layers.{i}.units", defaults.units), f"layers.{i}.units",
                           why="builds to the widest")
        widths.append(max(units))
        activations.update(enumerable(values_at(space, f"layers.{i}.activation", defaults.activation),
                                      f"layers.{i}.activation", why="builds one path per activation"))
    outputs = task.n_classes if task.kind == "classification" else 1
    return MLPSupernet(in_width=math.prod(task.input_shape), widths=widths, depths=count_values(space, block),
                       activations=activations, n_outputs=outputs)
