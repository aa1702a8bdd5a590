"""Evidential networks: an MLP backbone and an evidential head (torch; import lazily)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from nasforge_evidential.losses import evidence

# Keeps nu, alpha - 1 and beta strictly positive where softplus underflows (float32: x < -88).
MIN_EVIDENCE = 1e-6


class NormalInvGammaHead(nn.Module):
    """``Linear(width, 4 d)`` -> ``[gamma, nu, alpha, beta]`` (Amini et al., 2020).

    ``nu = softplus + eps``, ``alpha = softplus + 1 + eps``, ``beta = softplus + eps``, as
    the official ``DenseNormalGamma`` (``eps`` only guards against underflow). The output
    is ``(N, 4 d)``: the four ``(N, d)`` blocks side by side.
    """

    def __init__(self, width: int, targets: int):
        super().__init__()
        self.linear = nn.Linear(width, 4 * targets)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        gamma, nu, alpha, beta = torch.chunk(self.linear(h), 4, dim=-1)
        nu = F.softplus(nu) + MIN_EVIDENCE
        alpha = F.softplus(alpha) + 1.0 + MIN_EVIDENCE
        beta = F.softplus(beta) + MIN_EVIDENCE
        return torch.cat([gamma, nu, alpha, beta], dim=-1)


class DirichletHead(nn.Module):
    """``Linear(width, K)`` -> evidence ``e >= 0`` -> Dirichlet concentration ``alpha = e + 1`` (Sensoy et al., 2018)."""

    def __init__(self, width: int, classes: int, *, evidence_fn: str):
        super().__init__()
        self.linear = nn.Linear(width, classes)
        self.evidence_fn = evidence_fn

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return evidence(self.linear(h), self.evidence_fn) + 1.0


def build_network(config, task, mode: str) -> nn.Sequential:
    """``Flatten -> [Linear -> activation -> Dropout] * n -> evidential head``."""
    from nasforge.training import ACTIVATIONS

    width = math.prod(task.input_shape)
    modules: list[nn.Module] = [nn.Flatten()]
    for layer in config.layers:
        modules += [nn.Linear(width, layer.units), ACTIVATIONS[layer.activation]()]
        if layer.dropout > 0:
            modules.append(nn.Dropout(layer.dropout))
        width = layer.units
    if mode == "regression":
        modules.append(NormalInvGammaHead(width, regression_targets(task)))
    else:
        modules.append(DirichletHead(width, task.n_classes, evidence_fn=config.evidence))
    return nn.Sequential(*modules)


def regression_targets(task) -> int:
    """Number of target columns of a regression task (``y`` is ``(N,)`` or ``(N, d)``)."""
    shape = getattr(task.y_train, "shape", ())
    return 1 if len(shape) < 2 else int(shape[1])
