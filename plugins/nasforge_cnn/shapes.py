"""Input layouts and the shape plan of a CNN, in plain Python (no torch).

A task says how its flat inputs are laid out: ``info["image_shape"] = (C, H, W)`` makes a
2-D CNN, ``info["signal_shape"] = (C, L)`` a 1-D one. :func:`plan_blocks` walks the blocks
of a configuration over that shape and fixes every kernel, padding and pooling window, so
that no configuration collapses a spatial size to zero. It **clamps** rather than fails,
so a search spends no trial on a shape error:

* a convolution kernel wider than its (padded) input shrinks to the input's size;
* a pooling window wider than its input shrinks to the input's size, and a pool whose
  window is 1 everywhere (the input is already 1 wide) is skipped.

Each adjustment is written to :attr:`BlockPlan.notes` (and the model's ``notes``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from nasforge.errors import ConfigError

LAYOUT_KEYS = ("image_shape", "signal_shape")   # 2-D (C, H, W), 1-D (C, L)


def input_layout(task, *, family: str = "cnn") -> tuple[int, ...]:
    """``(C, H, W)`` or ``(C, L)`` of a task's inputs, from ``task.info``.

    Raises :class:`ConfigError` naming the family and the task when the task has neither
    ``image_shape`` nor ``signal_shape``, or when the shape does not match ``input_shape``.
    """
    info = task.info or {}
    key = next((k for k in LAYOUT_KEYS if info.get(k) is not None), None)
    if key is None:
        raise ConfigError(
            f"family {family!r} cannot handle task {task.name!r}: its info gives no 'image_shape' "
            f"(C, H, W) or 'signal_shape' (C, L) to lay its inputs out as images or signals")
    shape = tuple(info[key])
    expected = 3 if key == "image_shape" else 2
    ok = len(shape) == expected and all(isinstance(v, int) and v >= 1 for v in shape)
    if not ok or math.prod(shape) != math.prod(task.input_shape or (0,)):
        raise ConfigError(
            f"family {family!r} cannot handle task {task.name!r}: info[{key!r}] = {shape!r} must be "
            f"{expected} positive integers whose product is the input size {math.prod(task.input_shape or (0,))}")
    return tuple(int(v) for v in shape)


@dataclass(frozen=True, kw_only=True)
class BlockPlan:
    """Shapes and exact sizes of one block (tuples have one entry per spatial axis)."""

    in_shape: tuple[int, ...]         # (C, *spatial) entering the block
    kernel: tuple[int, ...]
    stride: int
    pad: tuple[tuple[int, int], ...]  # (before, after) zeros per spatial axis
    conv_shape: tuple[int, ...]       # (filters, *spatial) after the convolution
    pool: tuple[int, ...] | None      # pooling window (= stride), None when not pooling
    out_shape: tuple[int, ...]        # (filters, *spatial) leaving the block
    notes: tuple[str, ...] = field(default=())


def _conv_axis(n: int, k: int, s: int, padding, where: str, axis: int, notes: list[str]):
    """(kernel, (before, after), out) of one spatial axis of a convolution."""
    if padding == "same":           # TensorFlow's rule: out = ceil(n / s)
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        return k, (total // 2, total - total // 2), out
    p = 0 if padding == "valid" else int(padding)
    if k > n + 2 * p:
        notes.append(f"{where}: kernel {k} > padded input {n + 2 * p} on axis {axis}; clamped to {n + 2 * p}")
        k = n + 2 * p
    return k, (p, p), (n + 2 * p - k) // s + 1


def plan_blocks(blocks, in_shape: tuple[int, ...]) -> list[BlockPlan]:
    """The :class:`BlockPlan` of each block over inputs of shape ``in_shape`` = ``(C, *spatial)``."""
    plans = []
    shape = tuple(in_shape)
    for i, block in enumerate(blocks):
        where, notes = f"blocks[{i}]", []
        kernel, pad, spatial = [], [], []
        for axis, n in enumerate(shape[1:]):
            k, p, out = _conv_axis(n, block.kernel_size, block.stride, block.padding, where, axis, notes)
            kernel.append(k), pad.append(p), spatial.append(out)
        conv_shape = (block.filters, *spatial)
        pool = None
        if block.pool != "none":
            window = tuple(min(block.pool_size, n) for n in spatial)
            if any(w < block.pool_size for w in window):
                notes.append(f"{where}: {block.pool} pool {block.pool_size} on size {tuple(spatial)}; "
                             + ("skipped" if all(w == 1 for w in window) else f"window clamped to {window}"))
            if any(w > 1 for w in window):
                pool = window
                spatial = [n // w for n, w in zip(spatial, window)]
        out_shape = (block.filters, *spatial)
        plans.append(BlockPlan(in_shape=shape, kernel=tuple(kernel), stride=block.stride, pad=tuple(pad),
                               conv_shape=conv_shape, pool=pool, out_shape=out_shape, notes=tuple(notes)))
        shape = out_shape
    return plans
