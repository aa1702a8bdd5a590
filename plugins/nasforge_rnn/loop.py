"""One training epoch of a recurrent net, with optional truncated BPTT (imports torch)."""

from __future__ import annotations

import torch
from torch import nn

from nasforge.training import TensorSplit, train_batches


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn, x: torch.Tensor,
                y: torch.Tensor, *, batch_size: int, generator: torch.Generator, clip: str = "none",
                clip_value: float = 1.0, tbptt_steps: int = 0) -> torch.Tensor:
    """One shuffled pass over ``(x, y)``; returns the sample-weighted mean loss as a tensor.

    :func:`nasforge.training.train_epoch` with the model called as
    ``model(x, tbptt_steps=...)``. Gradients are clipped after the backward pass through
    time and before the step (Pascanu, Mikolov & Bengio, 2013). Nothing here synchronises
    with the device: call ``.item()`` on the result once.
    """
    return train_batches(model, optimizer, loss_fn, TensorSplit(x, y).batches(batch_size, generator), clip=clip,
                         clip_value=clip_value, forward=lambda batch: model(batch, tbptt_steps=tbptt_steps))
