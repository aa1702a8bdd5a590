"""Torch modules of the gan family (imported lazily, inside build/fit).

Shapes: noise ``(n, noise_size)``; samples and data flat ``(n, D)``; discriminator logits ``(n, 1)``.
"""

from __future__ import annotations

import torch
from torch import nn

from nasforge.training import ACTIVATIONS


def _stack(widths: list[int], activation: str, n_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for w_in, w_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(w_in, w_out), ACTIVATIONS[activation]()]
    layers.append(nn.Linear(widths[-1], n_out))
    return nn.Sequential(*layers)


class GAN(nn.Module):
    """A generator G(z) and a discriminator D(x) (logits), both MLPs (Goodfellow et al., 2014).

    ``forward(x)`` is the discriminator: the logit that ``x`` is real, ``(n, 1)`` -- the one
    input a task fixes (the noise size is a searched hyperparameter). Draw samples with
    :meth:`sample` or ``model.generator(z)``.
    """

    def __init__(self, *, noise_size: int, n_features: int, g_widths: list[int], d_widths: list[int],
                 g_activation: str, d_activation: str, unit_interval: bool):
        super().__init__()
        self.noise_size = noise_size
        generator = _stack([noise_size, *g_widths], g_activation, n_features)
        if unit_interval:  # data in [0, 1] (pixels): squash the generator's output into it
            generator.append(nn.Sigmoid())
        self.generator = generator
        self.discriminator = nn.Sequential(nn.Flatten(), *_stack([n_features, *d_widths], d_activation, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator(x)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples from z ~ N(0, I) (drawn on the CPU from ``generator`` when given)."""
        device = next(self.parameters()).device
        if generator is not None:
            z = torch.randn(n, self.noise_size, generator=generator).to(device)
        else:
            z = torch.randn(n, self.noise_size, device=device)
        return self.generator(z)
