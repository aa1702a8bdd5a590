"""The MLP family's supernet: every MLP of a search space in one set of shared weights (imports torch).

Hidden layer ``i`` is one ``Linear`` built to the largest ``units`` the space gives it, fed the
previous layer's largest width; a path with fewer units uses the first rows and the first columns
of those weights -- widths as slices (slimmable networks, Yu et al. 2019; the weight sharing of
ENAS, Pham et al. 2018). Activations and dropout have no weights: a path applies its own. The
output layer's input is the last hidden layer (or the inputs, with no hidden layer), so there is
one output layer per depth, shared by every path of that depth.

``mixed(x, weights)`` is DARTS's continuous relaxation of the same supernet (Liu et al. 2019, "DARTS:
Differentiable Architecture Search", ICLR, eq. 2): every layer runs at its widest, each choice a
weighted sum -- activations of the pre-activation, widths as channel masks (FBNetV2, Wan et al.
2020), dropout rates, and the depth as the weighted sum of the per-depth output layers.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from nasforge.errors import ConfigError
from nasforge.training import ACTIVATIONS
from nasforge.weight_sharing import check_held, count_values, enumerable, find_block, mixture, values_at

HELD = ("n_layers", "layers.*.units", "layers.*.activation", "layers.*.dropout")


class MLPSupernet(nn.Module):
    """Every MLP of a search space (see the module docstring); ``forward(x, config)`` runs one path."""

    def __init__(self, *, in_width: int, widths: list[int], depths: tuple[int, ...], activations: set[str],
                 n_outputs: int, count: str = "n_layers", held: dict[str, tuple | None] | None = None):
        super().__init__()
        self.widths, self.depths, self.count = list(widths), tuple(depths), count
        self.held = dict(held or {})   # flat name -> the values the space gives it (for ``mixed``)
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

    def mixed(self, x: torch.Tensor, weights) -> torch.Tensor:
        """DARTS's relaxation (see the module docstring): ``weights[flat_name]`` maps each value of a
        parameter to its weight; with one-hot weights this is :meth:`forward` of that path."""
        h = x.flatten(1)
        states = {0: h}
        for i, linear in enumerate(self.hidden[:max(self.depths)]):
            z = F.linear(h, linear.weight, linear.bias)
            h = mixture(weights, f"layers.{i}.activation", self.held.get(f"layers.{i}.activation"),
                        lambda name: self.activations[self._known(name, self.activations, "activation")](z))
            h = h * mixture(weights, f"layers.{i}.units", self.held.get(f"layers.{i}.units"),
                            lambda units: self._mask(i, units, h))
            h = mixture(weights, f"layers.{i}.dropout", self.held.get(f"layers.{i}.dropout"),
                        lambda rate, h=h: F.dropout(h, rate, self.training))
            states[i + 1] = h
        return mixture(weights, self.count, self.depths,
                       lambda depth: self.outputs[self._known(str(depth), self.outputs, "depth")](states[depth]))

    def _mask(self, i: int, units: int, like: torch.Tensor) -> torch.Tensor:
        if units > self.widths[i]:
            raise ConfigError(f"layers[{i}].units={units} is wider than the supernet's {self.widths[i]}")
        return (torch.arange(self.widths[i], device=like.device) < units).to(like.dtype)

    @staticmethod
    def _known(key: str, modules, what: str) -> str:
        if key not in modules:
            raise ConfigError(f"the supernet holds no {what} {key!r} (outside its search space)")
        return key


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
    widths, activations, held = [], set(), {}
    for i in range(block.max_count):
        units = enumerable(values_at(space, f"layers.{i}.units", defaults.units), f"layers.{i}.units",
                           why="builds to the widest")
        widths.append(max(units))
        functions = enumerable(values_at(space, f"layers.{i}.activation", defaults.activation),
                               f"layers.{i}.activation", why="builds one path per activation")
        activations.update(functions)
        held.update({f"layers.{i}.units": units, f"layers.{i}.activation": functions,
                     f"layers.{i}.dropout": values_at(space, f"layers.{i}.dropout", defaults.dropout)})
    outputs = task.n_classes if task.kind == "classification" else 1
    return MLPSupernet(in_width=math.prod(task.input_shape), widths=widths, depths=count_values(space, block),
                       activations=activations, n_outputs=outputs, count=block.count, held=held)
