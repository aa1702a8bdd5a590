"""One training epoch of a recurrent net, with optional truncated BPTT (imports torch)."""

from __future__ import annotations

import torch
from torch import nn

from nasforge.training import clip_gradients, iterate_minibatches


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn, x: torch.Tensor,
                y: torch.Tensor, *, batch_size: int, generator: torch.Generator, clip: str = "none",
                clip_value: float = 1.0, tbptt_steps: int = 0) -> torch.Tensor:
    """One shuffled pass over ``(x, y)``; returns the sample-weighted mean loss as a tensor.

    :func:`nasforge.training.train_epoch` with the model called as
    ``model(x, tbptt_steps=...)``. Gradients are clipped after the backward pass through
    time and before the step (Pascanu, Mikolov & Bengio, 2013). Nothing here synchronises
    with the device: call ``.item()`` on the result once.
    """
    model.train()
    total = torch.zeros((), device=x.device)
    for idx in iterate_minibatches(len(x), batch_size, generator, device=x.device):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x[idx], tbptt_steps=tbptt_steps), y[idx])
        loss.backward()
        clip_gradients(model, clip, clip_value)
        optimizer.step()
        total += loss.detach() * len(idx)
    return total / len(x)
