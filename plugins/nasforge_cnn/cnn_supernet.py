"""The CNN family's supernet: every CNN of a search space in one set of shared weights (imports torch).

ENAS's macro search space (Pham et al. 2018, Sec. 2.3) as this family builds it. Block ``i`` keeps
one convolution, built to the block's largest ``filters`` and kernel size and fed the previous
block's largest width. A path with fewer filters uses the first output channels and the first
input channels of those weights -- widths as slices, as in slimmable networks (Yu et al. 2019); a
smaller kernel uses the centre of the largest one -- Single-Path NAS's "superkernel" (Stamoulis et
al. 2019, Sec. 3.1) and Once-for-All's elastic kernel (Cai et al. 2020, Sec. 3.2). ENAS keeps one set
of weights per operation instead; with a kernel size per block that made the channels the next
block reads mean something else for each kernel, and shared-weight accuracy stayed far below the
stand-alone networks' (random paths on MNIST-1D after 20 epochs: 0.62 mean against 0.91 stand-alone;
0.78 with one kernel; ``benchmarks/README.md``). Activations, pooling, stride, padding and dropout have no
weights: a path just applies its own. Batch normalisation keeps one scale and shift per block (the
first ``filters`` of them) and normalises with the minibatch's statistics, train or eval: running
averages would mix the statistics of every path.

The head maps the flattened features to logits. Its input size depends on the path's depth and
spatial size, so there is one head per (depth, spatial size) the space can reach (a dense head: one
hidden layer each, one shared output layer), built for that depth's widest last block: features of
different depths never share a classifier (as the mlp supernet's one output layer per depth). A
path's features are channel-major, so its ``filters`` channels are the head's first inputs.

``forward(x, config)`` plans the path with :func:`nasforge_cnn.shapes.plan_blocks`, exactly as
:meth:`CNNFamily.build` does, so a path computes the same function as the stand-alone network
of that config with these weights (bar batch norm's running averages).

``mixed(x, weights)`` is DARTS's continuous relaxation of the same weights (Liu et al. 2019, "DARTS:
Differentiable Architecture Search", ICLR, eq. 2): each block runs at its widest, and each choice is
the weighted sum of its values' operations -- one convolution per kernel size (each the centre of
the block's kernel), batch norm or not, activations, pooling kinds, dropout rates; ``filters`` (and
``dense_units``) as channel masks after the activation (FBNetV2, Wan et al. 2020); the depth as the
weighted sum of the logits after each depth, the head kind likewise. Only values whose outputs have
one shape can be summed: a space whose ``pool`` offers ``none`` next to ``max`` (or that varies
stride, padding or pool size) is refused, naming the parameter (``strategy="enas"``/``"rsws"`` take it).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from nasforge.errors import ConfigError
from nasforge.training import ACTIVATIONS
from nasforge.weight_sharing import check_held, count_values, enumerable, find_block, mixture, values_at
from nasforge_cnn.config import BLOCK_FIELDS, BlockConfig, CNNConfig
from nasforge_cnn.shapes import plan_blocks

HELD = ("n_blocks", *(f"blocks.*.{f}" for f in BLOCK_FIELDS), "head", "dense_units", "dense_activation",
        "dense_dropout")


def head_key(depth: int, spatial) -> str:
    """The head of paths ``depth`` blocks deep whose last block outputs ``spatial`` (e.g. ``d2_10``)."""
    return f"d{depth}_" + "x".join(str(int(n)) for n in spatial)


class CNNSupernet(nn.Module):
    """Every CNN of a search space (see the module docstring); ``forward(x, config)`` runs one path."""

    def __init__(self, *, layout: tuple[int, ...], blocks: list[dict[str, tuple]], depths: tuple[int, ...],
                 heads: tuple[str, ...], dense_units: int, activations: set[str], n_outputs: int,
                 count: str = "n_blocks", held: dict[str, tuple | None] | None = None):
        super().__init__()
        self.layout, self.depths, self.count = tuple(layout), tuple(depths), count
        self.held = dict(held or {})   # flat name -> the values the space gives it (for ``mixed``)
        self.two_d = len(layout) == 3
        conv = nn.Conv2d if self.two_d else nn.Conv1d
        self.widths = [max(b["filters"]) for b in blocks]
        self.kernels = [tuple(b["kernel_size"]) for b in blocks]   # the sizes each block's kernel serves
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        in_width = layout[0]
        for block, width in zip(blocks, self.widths):
            self.convs.append(conv(in_width, width, max(block["kernel_size"])))
            norm = nn.Module()
            if True in block["batch_norm"]:
                norm.weight, norm.bias = nn.Parameter(torch.ones(width)), nn.Parameter(torch.zeros(width))
            self.norms.append(norm)
            in_width = width
        self.activations = nn.ModuleDict({name: ACTIVATIONS[name]() for name in sorted(activations)})
        features = {head_key(depth, spatial): self.widths[depth - 1] * math.prod(spatial)
                    for depth, shapes in reachable_shapes(layout, blocks, self.depths).items() for spatial in shapes}
        self.linear = nn.ModuleDict({k: nn.Linear(n, n_outputs) for k, n in features.items()}) \
            if "linear" in heads else None
        self.dense = nn.ModuleDict({k: nn.Linear(n, dense_units) for k, n in features.items()}) \
            if "dense" in heads else None
        self.dense_out = nn.Linear(dense_units, n_outputs) if "dense" in heads else None

    def forward(self, x: torch.Tensor, config: CNNConfig) -> torch.Tensor:
        plans = plan_blocks(config.blocks, self.layout)
        if len(plans) > len(self.convs):
            raise ConfigError(f"the supernet holds at most {len(self.convs)} blocks, the config has {len(plans)}")
        h = x.reshape(x.shape[0], *self.layout)
        for i, (block, plan) in enumerate(zip(config.blocks, plans)):
            h = self._block(i, h, block, plan)
        h = h.flatten(1)
        key = head_key(len(plans), plans[-1].out_shape[1:])
        if config.head == "linear":
            head = self._pick(self.linear, key, "a linear head")
            return F.linear(h, head.weight[:, :h.shape[1]], head.bias)
        hidden = self._pick(self.dense, key, "a dense head")
        units = self._width(config.dense_units, hidden.out_features, "dense_units")
        h = F.linear(h, hidden.weight[:units, :h.shape[1]], hidden.bias[:units])
        h = self.activations[config.dense_activation](h)
        h = F.dropout(h, config.dense_dropout, self.training)
        return F.linear(h, self.dense_out.weight[:, :units], self.dense_out.bias)

    def _block(self, i: int, h: torch.Tensor, block: BlockConfig, plan) -> torch.Tensor:
        filters = self._width(block.filters, self.widths[i], f"blocks[{i}].filters")
        h = self._convolve(i, h, block.kernel_size, filters, plan, bias=not block.batch_norm)
        if block.batch_norm:
            h = self._normalise(i, h, filters)
        h = self.activations[block.activation](h)
        h = self._pool(h, block.pool, plan.pool)
        return F.dropout(h, block.dropout, self.training)

    def _convolve(self, i: int, h: torch.Tensor, kernel_size: int, filters: int, plan, *, bias: bool) -> torch.Tensor:
        if kernel_size not in self.kernels[i]:
            raise ConfigError(f"the supernet holds no kernel_size {kernel_size} in block {i} (the config is outside "
                              f"its search space: {', '.join(map(str, self.kernels[i]))})")
        conv = self.convs[i]
        weight = conv.weight[:filters, :h.shape[1]]
        if tuple(weight.shape[2:]) != plan.kernel:   # a smaller (or clamped) kernel: the centre of the largest
            weight = weight[(..., *(slice((k - c) // 2, (k - c) // 2 + c) for k, c in
                                    zip(weight.shape[2:], plan.kernel)))]
        symmetric = all(before == after for before, after in plan.pad)
        if not symmetric:
            h = F.pad(h, tuple(p for pair in reversed(plan.pad) for p in pair))
        padding = tuple(before for before, _ in plan.pad) if symmetric else 0
        return (F.conv2d if self.two_d else F.conv1d)(h, weight, conv.bias[:filters] if bias else None,
                                                      stride=plan.stride, padding=padding)

    def _normalise(self, i: int, h: torch.Tensor, filters: int) -> torch.Tensor:
        norm = self.norms[i]
        if not hasattr(norm, "weight"):
            raise ConfigError(f"the supernet has no batch norm in block {i} (the space never turns it on)")
        return F.batch_norm(h, None, None, norm.weight[:filters], norm.bias[:filters], training=True)

    def _pool(self, h: torch.Tensor, kind: str, window) -> torch.Tensor:
        if window is None:
            return h
        pool = {("max", False): F.max_pool1d, ("avg", False): F.avg_pool1d,
                ("max", True): F.max_pool2d, ("avg", True): F.avg_pool2d}[kind, self.two_d]
        return pool(h, window, stride=window)

    # -- DARTS's relaxation ---------------------------------------------------------------
    def mixed(self, x: torch.Tensor, weights) -> torch.Tensor:
        """DARTS's relaxation (see the module docstring): ``weights[flat_name]`` maps each value of a
        parameter to its weight; with one-hot weights this is :meth:`forward` of that path (eval mode)."""
        h = x.reshape(x.shape[0], *self.layout)
        states = {}
        for i in range(max(self.depths)):
            h = states[i + 1] = self._mixed_block(i, h, weights)
        logits = {}

        def at_depth(depth):
            if depth not in logits:
                logits[depth] = self._mixed_head(states[depth], depth, weights)
            return logits[depth]

        return mixture(weights, self.count, self.depths, at_depth)

    def _mixed_block(self, i: int, h: torch.Tensor, weights) -> torch.Tensor:
        def held(field):
            return self.held.get(f"blocks.{i}.{field}")

        fixed = {}
        for field in ("stride", "padding", "pool_size"):
            values = held(field)
            if values is None or len(values) != 1:
                raise ConfigError(f"blocks.{i}.{field} takes {', '.join(map(str, values or ()))}: values that change "
                                  "the block's output size cannot be summed into one mixed operation (DARTS); fix it "
                                  "in the space, or search it with strategy='enas' or 'rsws'")
            fixed[field] = values[0]
        width = self.widths[i]

        def plan(kernel_size, pool="none"):
            block = BlockConfig(filters=width, kernel_size=kernel_size, pool=pool, **fixed)
            return plan_blocks([block], tuple(h.shape[1:]))[0]

        convolved = {}

        def conv(kernel_size, bias):
            if (kernel_size, bias) not in convolved:
                convolved[kernel_size, bias] = self._convolve(i, h, kernel_size, width, plan(kernel_size), bias=bias)
            return convolved[kernel_size, bias]

        name = f"blocks.{i}"
        h = mixture(weights, f"{name}.kernel_size", held("kernel_size"), lambda k: mixture(
            weights, f"{name}.batch_norm", held("batch_norm"),
            lambda norm: self._normalise(i, conv(k, False), width) if norm else conv(k, True)))
        h = mixture(weights, f"{name}.activation", held("activation"),
                    lambda a: self.activations[self._key(a, self.activations, "activation")](h))
        h = h * mixture(weights, f"{name}.filters", held("filters"), lambda f: self._channels(f, width, h))
        any_kernel = (held("kernel_size") or tuple(weights.get(f"{name}.kernel_size", ())))[0]
        h = mixture(weights, f"{name}.pool", held("pool"), lambda pool: self._pool(h, pool, plan(any_kernel, pool).pool))
        return mixture(weights, f"{name}.dropout", held("dropout"), lambda rate, h=h: F.dropout(h, rate, self.training))

    def _mixed_head(self, h: torch.Tensor, depth: int, weights) -> torch.Tensor:
        key = head_key(depth, h.shape[2:])
        h = h.flatten(1)

        def head(kind):
            if kind == "linear":
                linear = self._pick(self.linear, key, "a linear head")
                return F.linear(h, linear.weight[:, :h.shape[1]], linear.bias)
            hidden = self._pick(self.dense, key, "a dense head")
            z = F.linear(h, hidden.weight[:, :h.shape[1]], hidden.bias)
            z = mixture(weights, "dense_activation", self.held.get("dense_activation"),
                        lambda a: self.activations[self._key(a, self.activations, "activation")](z))
            z = z * mixture(weights, "dense_units", self.held.get("dense_units"),
                            lambda units: self._channels(units, hidden.out_features, z))
            z = mixture(weights, "dense_dropout", self.held.get("dense_dropout"),
                        lambda rate, z=z: F.dropout(z, rate, self.training))
            return F.linear(z, self.dense_out.weight, self.dense_out.bias)

        return mixture(weights, "head", self.held.get("head"), head)

    def _channels(self, value: int, largest: int, like: torch.Tensor) -> torch.Tensor:
        """A 0/1 mask keeping the first ``value`` of ``largest`` channels of ``like`` (a width as a mask)."""
        value = self._width(value, largest, "a width")
        keep = (torch.arange(largest, device=like.device) < value).to(like.dtype)
        return keep.reshape(-1, *([1] * (like.dim() - 2)))

    @staticmethod
    def _key(key: str, modules, what: str) -> str:
        if key not in modules:
            raise ConfigError(f"the supernet holds no {what} {key!r} (outside its search space)")
        return key

    @staticmethod
    def _pick(modules, key: str, what: str):
        if modules is None or key not in modules:
            raise ConfigError(f"the supernet holds no {what} (the config is outside its search space)")
        return modules[key]

    @staticmethod
    def _width(value: int, largest: int, what: str) -> int:
        if value > largest:
            raise ConfigError(f"{what}={value} is wider than the supernet's {largest} (outside its search space)")
        return value


def reachable_shapes(layout: tuple[int, ...], blocks: list[dict[str, tuple]], depths) -> dict[int, set[tuple[int, ...]]]:
    """Depth -> every spatial size after the last block of a path that deep (one head each), over
    every choice of the shape-changing fields (kernel, stride, padding, pool, pool size)."""
    after = [{tuple(layout[1:])}]
    fields = ("kernel_size", "stride", "padding", "pool", "pool_size")
    for block in blocks[:max(depths)]:
        shapes = set()
        for spatial in after[-1]:
            for values in itertools.product(*(block[f] for f in fields)):
                plan = plan_blocks([BlockConfig(filters=1, **dict(zip(fields, values)))], (1, *spatial))[0]
                shapes.add(plan.out_shape[1:])
        after.append(shapes)
    return {depth: after[depth] for depth in depths}


def build_supernet(space, task, *, family) -> CNNSupernet:
    """The supernet of ``space`` on ``task`` (checks the space first; see :meth:`CNNFamily.supernet`)."""
    check_held(space, family=family.name, held=HELD)
    layout = family.check_layout(task)
    block = find_block(space, "blocks")
    if block is None:
        raise ConfigError(f"family 'cnn': the supernet needs the blocks of {space.source} as a repeated block "
                          "(blocks: {repeat: n_blocks, params: {filters: ..., kernel_size: ...}})")
    depths = count_values(space, block)
    if depths[0] < 1:
        raise ConfigError(f"family 'cnn': {block.count} can be {depths[0]}; a CNN has at least one block")
    defaults = BlockConfig()
    blocks, activations, held = [], set(), {}
    for i in range(block.max_count):
        choices: dict[str, Any] = {f: values_at(space, f"blocks.{i}.{f}", getattr(defaults, f)) for f in BLOCK_FIELDS}
        for name in ("filters", "kernel_size", "stride", "padding", "pool", "pool_size", "activation", "batch_norm"):
            why = "builds to the widest" if name == "filters" else f"builds one path per {name}"
            choices[name] = enumerable(choices[name], f"blocks.{i}.{name}", why=why)
        activations.update(choices["activation"])
        blocks.append(choices)
        held.update({f"blocks.{i}.{field}": values for field, values in choices.items()})
    config = CNNConfig()
    heads = enumerable(values_at(space, "head", config.head), "head", why="builds one head per kind")
    units = enumerable(values_at(space, "dense_units", config.dense_units), "dense_units", why="builds to the widest")
    dense_activations = enumerable(values_at(space, "dense_activation", config.dense_activation), "dense_activation",
                                   why="builds one path per activation")
    activations.update(dense_activations if "dense" in heads else ())
    held.update({"head": heads, "dense_units": units, "dense_activation": dense_activations,
                 "dense_dropout": values_at(space, "dense_dropout", config.dense_dropout)})
    outputs = task.n_classes if task.kind == "classification" else 1
    return CNNSupernet(layout=layout, blocks=blocks, depths=depths, heads=heads, dense_units=max(units),
                       activations=activations, n_outputs=outputs, count=block.count, held=held)
