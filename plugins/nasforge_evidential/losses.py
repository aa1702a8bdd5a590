"""Evidential losses and uncertainties (torch; import lazily).

Regression follows Amini et al. (2020), *Deep Evidential Regression*, NeurIPS: the network
outputs a Normal-Inverse-Gamma NIG(gamma, nu, alpha, beta) over the Gaussian's (mu, sigma^2).
Classification follows Sensoy et al. (2018), *Evidential Deep Learning to Quantify
Classification Uncertainty*, NeurIPS: the network outputs the concentration alpha of a
Dirichlet over class probabilities.

Every loss here returns one value per sample; callers take the mean.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F


# -- regression (Amini et al., 2020) ---------------------------------------------------
def split_nig(params: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(N, 4 d)`` head output -> ``gamma, nu, alpha, beta``, each ``(N, d)``.

    The layout is the official code's (``DenseNormalGamma``): the four blocks side by side.
    """
    return torch.chunk(params, 4, dim=-1)


def nig_nll(y: Tensor, gamma: Tensor, nu: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
    """Negative log marginal likelihood of ``y`` under NIG (paper eq. 8), elementwise.

    ``0.5 log(pi/nu) - alpha log(Omega) + (alpha + 0.5) log(nu (y - gamma)^2 + Omega)
    + log(Gamma(alpha) / Gamma(alpha + 0.5))`` with ``Omega = 2 beta (1 + nu)``. It equals
    ``-log St(y; 2 alpha, gamma, beta (1 + nu) / (nu alpha))`` (paper eq. 7), the Student-t
    predictive.
    """
    omega = 2.0 * beta * (1.0 + nu)
    return (0.5 * torch.log(math.pi / nu)
            - alpha * torch.log(omega)
            + (alpha + 0.5) * torch.log(nu * (y - gamma) ** 2 + omega)
            + torch.lgamma(alpha) - torch.lgamma(alpha + 0.5))


def nig_regularizer(y: Tensor, gamma: Tensor, nu: Tensor, alpha: Tensor) -> Tensor:
    """Evidence regularizer (paper eq. 9): ``|y - gamma| * (2 nu + alpha)``, elementwise.

    ``2 nu + alpha`` is the total evidence of the official code (``NIG_Reg``); the error is
    not detached, as there.
    """
    return (y - gamma).abs() * (2.0 * nu + alpha)


def evidential_regression_loss(params: Tensor, y: Tensor, *, reg_weight: float) -> Tensor:
    """Per-sample ``NLL + lambda * regularizer`` (paper eq. 10), summed over target columns."""
    gamma, nu, alpha, beta = split_nig(params)
    loss = nig_nll(y, gamma, nu, alpha, beta) + reg_weight * nig_regularizer(y, gamma, nu, alpha)
    return loss.sum(dim=-1)


def nig_uncertainty(nu: Tensor, alpha: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    """Aleatoric ``E[sigma^2] = beta / (alpha - 1)`` and epistemic ``Var[mu] = beta / (nu (alpha - 1))`` (eq. 5)."""
    aleatoric = beta / (alpha - 1.0)
    return aleatoric, aleatoric / nu


def student_t_scale(nu: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
    """Scale of the Student-t predictive (2 alpha degrees of freedom): ``sqrt(beta (1 + nu) / (nu alpha))``."""
    return torch.sqrt(beta * (1.0 + nu) / (nu * alpha))


# -- classification (Sensoy et al., 2018) ------------------------------------------------
EVIDENCE = ("relu", "softplus", "exp")


def evidence(logits: Tensor, kind: str) -> Tensor:
    """Non-negative evidence from logits: ``relu``, ``softplus`` or ``exp``.

    ``exp`` clamps the logits to [-10, 10] first, as the authors' code does, so the
    evidence cannot overflow.
    """
    if kind == "relu":
        return F.relu(logits)
    if kind == "softplus":
        return F.softplus(logits)
    if kind == "exp":
        return torch.exp(logits.clamp(-10.0, 10.0))
    raise ValueError(f"evidence={kind!r} is not valid; choose one of: {', '.join(EVIDENCE)}")


def dirichlet_mse(alpha: Tensor, y_onehot: Tensor) -> Tensor:
    """Expected squared error under Dir(alpha) (paper eq. 5), per sample.

    ``sum_j (y_j - p_j)^2 + p_j (1 - p_j) / (S + 1)`` with ``p = alpha / S``, ``S = sum alpha``.
    """
    strength = alpha.sum(dim=-1, keepdim=True)
    p = alpha / strength
    return ((y_onehot - p) ** 2 + p * (1.0 - p) / (strength + 1.0)).sum(dim=-1)


def kl_to_uniform_dirichlet(alpha: Tensor) -> Tensor:
    """``KL(Dir(alpha) || Dir(1, ..., 1))`` per sample (the paper's regularizer, eq. 6 / appendix).

    ``log Gamma(S) - log Gamma(K) - sum_k log Gamma(alpha_k)
    + sum_k (alpha_k - 1) (digamma(alpha_k) - digamma(S))``.
    """
    k = alpha.shape[-1]
    strength = alpha.sum(dim=-1, keepdim=True)
    return (torch.lgamma(strength.squeeze(-1)) - math.lgamma(k) - torch.lgamma(alpha).sum(dim=-1)
            + ((alpha - 1.0) * (torch.digamma(alpha) - torch.digamma(strength))).sum(dim=-1))


def evidential_classification_loss(alpha: Tensor, y: Tensor, *, kl_weight: float) -> Tensor:
    """Per-sample ``dirichlet_mse + kl_weight * KL(Dir(alpha_tilde) || Dir(1))``.

    ``alpha_tilde = y + (1 - y) alpha`` removes the evidence of the true class, so only
    misleading evidence is penalised. ``kl_weight`` is the annealing coefficient
    ``lambda_t = min(1, t / 10)`` of the paper (``t`` the epoch), times the family's
    ``reg_weight``. ``y`` holds class indices.
    """
    y_onehot = F.one_hot(y, alpha.shape[-1]).to(alpha.dtype)
    loss = dirichlet_mse(alpha, y_onehot)
    if kl_weight > 0:
        alpha_tilde = y_onehot + (1.0 - y_onehot) * alpha
        loss = loss + kl_weight * kl_to_uniform_dirichlet(alpha_tilde)
    return loss


def dirichlet_uncertainty(alpha: Tensor) -> Tensor:
    """Vacuity ``u = K / S`` (paper, section 3): 1 with no evidence, towards 0 with much."""
    return alpha.shape[-1] / alpha.sum(dim=-1)
