"""Torch modules and losses of the autoencoder family (imported lazily, inside build/fit).

Shapes: inputs are flat ``(n, D)`` (as the tasks store them); the latent code is ``(n, L)``.

The VAE follows Kingma & Welling (2014), "Auto-Encoding Variational Bayes": a Gaussian
encoder q(z|x) = N(mu, diag(sigma^2)), the reparameterisation z = mu + sigma * eps with
eps ~ N(0, I) (Sec. 2.4), a N(0, I) prior, and the closed-form KL of Appendix B:

    -KL(q(z|x) || p(z)) = 1/2 * sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)

so the per-sample negative ELBO is  -log p(x|z) + KL  (estimator B, Eq. 10, with L = 1).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from nasforge.training import ACTIVATIONS

LOG_2PI = math.log(2.0 * math.pi)
# Bounds of the Gaussian decoder's log-variance: keeps the likelihood finite on features
# that never vary (the digits' border pixels are always 0).
MIN_LOG_VAR, MAX_LOG_VAR = -7.0, 7.0


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample, summed over latent dimensions: ``(n,)``.

    Kingma & Welling (2014), Appendix B: ``-KL = 0.5 * sum(1 + logvar - mu^2 - exp(logvar))``.
    """
    return -0.5 * torch.sum(1.0 + logvar - mu.pow(2) - logvar.exp(), dim=1)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``-log p(x|z)`` of a Bernoulli decoder (K&W 2014, Appendix C.1), summed per sample: ``(n,)``."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)


def gaussian_nll(mean: torch.Tensor, logvar: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``-log N(x; mean, exp(logvar))`` summed over features per sample: ``(n,)``."""
    return 0.5 * (LOG_2PI + logvar + (x - mean).pow(2) * torch.exp(-logvar)).sum(dim=1)


def _mlp(widths: list[int], activation: str) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for w_in, w_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(w_in, w_out), ACTIVATIONS[activation]()]
    return layers


class Autoencoder(nn.Module):
    """Encoder -> latent code -> decoder, deterministic (AE) or variational (VAE).

    ``forward(x)`` is deterministic: it decodes the posterior mean (the code, for an AE)
    and returns the reconstruction's mean in data space, ``(n, D)`` (probabilities for a
    Bernoulli decoder). Training uses :meth:`loss_terms`.
    """

    def __init__(self, *, encoder: nn.Module, decoder: nn.Module, hidden: int, latent_size: int,
                 n_features: int, variational: bool, likelihood: str):
        super().__init__()
        self.variational, self.likelihood, self.latent_size = variational, likelihood, latent_size
        self.encoder, self.decoder = encoder, decoder
        self.mu = nn.Linear(hidden, latent_size)
        self.logvar = nn.Linear(hidden, latent_size) if variational else None
        # Gaussian decoder: one learned log-variance per feature (homoscedastic version of
        # K&W's Gaussian MLP decoder, Appendix C.2); a Bernoulli decoder has none.
        self.decoder_logvar = nn.Parameter(torch.zeros(n_features)) if likelihood == "gaussian" else None

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.encoder(x)
        return self.mu(h), (self.logvar(h) if self.logvar is not None else None)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder output: logits (Bernoulli) or means (Gaussian), ``(n, D)``."""
        return self.decoder(z)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        """The reconstruction's mean in data space from a decoder output."""
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, _ = self.encode(x)
        return self.mean(self.decode(mu))

    def nll(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-sample reconstruction term ``-log p(x|z)``: ``(n,)``."""
        if self.likelihood == "bernoulli":
            return bernoulli_nll(out, x)
        logvar = self.decoder_logvar.clamp(MIN_LOG_VAR, MAX_LOG_VAR)
        return gaussian_nll(out, logvar, x)

    def loss_terms(self, x: torch.Tensor, eps: torch.Tensor | None = None):
        """``(recon, kl)``, per sample ``(n,)``; ``kl`` is ``None`` for an AE.

        VAE: one reparameterised sample z = mu + exp(logvar / 2) * eps (``eps`` drawn from the
        global torch RNG unless given). AE: the code itself, no KL.
        """
        mu, logvar = self.encode(x)
        if logvar is None:
            return self.nll(self.decode(mu), x), None
        if eps is None:
            eps = torch.randn_like(mu)
        z = mu + torch.exp(0.5 * logvar) * eps
        return self.nll(self.decode(z), x), gaussian_kl(mu, logvar)


def build_autoencoder(*, config, n_features: int, image_shape: tuple[int, ...] | None,
                      likelihood: str) -> Autoencoder:
    """The encoder/decoder stacks for ``config`` (an ``AutoencoderConfig``).

    ``arch="mlp"``: hidden widths ``config.layers`` in the encoder, reversed in the decoder.
    ``arch="conv"`` (images only): each layer a stride-2 3x3 convolution with ``units``
    channels (halving H and W); the decoder mirrors them with stride-2 4x4 transposed
    convolutions, then one linear map from the code to the smallest feature map.
    """
    act = config.activation
    widths = list(config.layers)
    if config.arch == "mlp":
        encoder = nn.Sequential(nn.Flatten(), *_mlp([n_features, *widths], act))
        hidden = widths[-1] if widths else n_features
        dec_widths = [config.latent_size, *reversed(widths)]
        decoder = nn.Sequential(*_mlp(dec_widths, act), nn.Linear(dec_widths[-1], n_features))
    else:
        channels, height, width = image_shape
        scale = 2 ** len(widths)
        h, w = height // scale, width // scale
        enc: list[nn.Module] = [nn.Unflatten(1, (channels, height, width))]
        c_in = channels
        for c_out in widths:
            enc += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), ACTIVATIONS[act]()]
            c_in = c_out
        encoder = nn.Sequential(*enc, nn.Flatten())
        hidden = c_in * h * w
        dec: list[nn.Module] = [nn.Linear(config.latent_size, hidden), ACTIVATIONS[act](),
                                nn.Unflatten(1, (c_in, h, w))]
        outs = [*reversed(widths[:-1]), channels]
        for i, c_out in enumerate(outs):
            dec.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1))
            if i < len(outs) - 1:
                dec.append(ACTIVATIONS[act]())
            c_in = c_out
        decoder = nn.Sequential(*dec, nn.Flatten())
    return Autoencoder(encoder=encoder, decoder=decoder, hidden=hidden, latent_size=config.latent_size,
                       n_features=n_features, variational=config.kind == "vae", likelihood=likelihood)


@torch.no_grad()
def split_metrics(model: Autoencoder, x: torch.Tensor, *, eps: torch.Tensor | None, beta: float,
                  prefix: str) -> dict[str, float]:
    """Held-out metrics, per-sample sums averaged over the split (one device sync).

    ``{prefix}_mse``: mean squared error per feature of the reconstruction at the posterior
    mean. ``{prefix}_recon``: mean ``-log p(x|z)``; for a VAE at one sample z = mu + sigma * eps
    (``eps`` fixed by the caller, so the figure depends on the weights only). VAE only:
    ``{prefix}_kl``, ``{prefix}_neg_elbo`` = recon + KL (the bound itself, beta = 1), and
    ``{prefix}_loss`` = recon + beta * KL (what training minimises). AE: ``{prefix}_loss`` = recon.
    """
    was_training = model.training
    model.eval()
    try:
        mu, logvar = model.encode(x)
        mean_out = model.decode(mu)
        mse = (model.mean(mean_out) - x).pow(2).mean()
        if logvar is None:
            recon = model.nll(mean_out, x).mean()
            mse, recon = torch.stack([mse, recon]).tolist()
            return {f"{prefix}_mse": mse, f"{prefix}_recon": recon, f"{prefix}_loss": recon}
        z = mu + torch.exp(0.5 * logvar) * eps
        recon = model.nll(model.decode(z), x).mean()
        kl = gaussian_kl(mu, logvar).mean()
        mse, recon, kl = torch.stack([mse, recon, kl]).tolist()
        return {f"{prefix}_mse": mse, f"{prefix}_recon": recon, f"{prefix}_kl": kl,
                f"{prefix}_neg_elbo": recon + kl, f"{prefix}_loss": recon + beta * kl}
    finally:
        model.train(was_training)


@torch.no_grad()
def sample(model: Autoencoder, n: int, *, generator: torch.Generator, x_train: torch.Tensor | None = None):
    """``n`` decoded codes in data space (means), ``(n, D)``.

    VAE: z ~ N(0, I), the prior. An AE has no prior: z is drawn from a diagonal Gaussian
    fitted to the codes of ``x_train`` (needed then).
    """
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        z = torch.randn(n, model.latent_size, generator=generator).to(device)
        if not model.variational:
            codes, _ = model.encode(x_train)
            z = codes.mean(0) + codes.std(0) * z
        return model.mean(model.decode(z))
    finally:
        model.train(was_training)
