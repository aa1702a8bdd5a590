"""The autoencoder family: deterministic autoencoders and variational autoencoders (VAE).

Importing this module does not import torch (the model code is in :mod:`.model`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from nasforge.errors import ConfigError, TrialPruned
from nasforge.family import Family, Reporter
from nasforge.data.tasks import Task
from nasforge_autoencoder import checks

KINDS = ("vae", "ae")
ARCHS = ("mlp", "conv")
LIKELIHOODS = ("auto", "bernoulli", "gaussian")
EVAL_SEED = 1234          # fixes the eps of the held-out ELBO and the sample figures
N_SHOWN = 8               # reconstructions in the figure
N_SAMPLES_SHOWN = 32      # prior samples in the figure


@dataclass(kw_only=True)
class AutoencoderConfig:
    """Configuration of an :class:`AutoencoderFamily` model and its training.

    ``layers`` are the encoder's hidden widths (``[{"units": N}, ...]`` as a space samples
    them, or plain ints); the decoder mirrors them. With ``arch="conv"`` (image tasks only)
    each layer is a stride-2 convolution with ``units`` channels.
    """

    kind: str = "vae"             # vae: Kingma & Welling (2014); ae: deterministic code, no KL
    arch: str = "mlp"             # conv needs a task with info["image_shape"]
    latent_size: int = 8          # the digits are well reconstructed from 8 numbers
    layers: list = field(default_factory=lambda: [128])   # one hidden layer (K&W used 500 on MNIST)
    n_layers: int | None = None   # only checked against len(layers)
    activation: str = "relu"
    likelihood: str = "auto"      # auto: bernoulli for data in [0, 1], gaussian otherwise
    beta: float = 1.0             # weight of the KL term (1 = the ELBO; Higgins et al. 2017 vary it)
    optimizer: str = "adam"
    lr: float = 1e-3              # Adam's usual step size (Kingma & Ba, 2015)
    momentum: float = 0.9         # sgd and rmsprop only
    weight_decay: float = 0.0
    batch_size: int = 64
    patience: int | None = 10     # early stopping on the validation loss; None disables

    def __post_init__(self):
        checks.check_choice("kind", self.kind, KINDS)
        checks.check_choice("arch", self.arch, ARCHS)
        checks.check_int("latent_size", self.latent_size, low=1)
        self.layers = checks.check_widths("layers", self.layers, self.n_layers,
                                          min_layers=1 if self.arch == "conv" else 0)
        checks.check_choice("activation", self.activation, checks.ACTIVATIONS)
        checks.check_choice("likelihood", self.likelihood, LIKELIHOODS)
        checks.check_number("beta", self.beta, low=0.0)
        checks.check_choice("optimizer", self.optimizer, checks.OPTIMIZERS)
        checks.check_number("lr", self.lr, low=0.0, low_open=True)
        checks.check_number("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        checks.check_number("weight_decay", self.weight_decay, low=0.0)
        checks.check_int("batch_size", self.batch_size, low=1)
        if self.patience is not None:
            checks.check_int("patience", self.patience, low=1)


class AutoencoderFamily(Family):
    """Autoencoders (AE) and variational autoencoders (VAE) on any flat ``x``; labels are ignored.

    * VAE (``kind="vae"``, Kingma & Welling 2014): the encoder gives mu and log sigma^2 of
      q(z|x); z = mu + sigma * eps; loss per sample = -log p(x|z) + beta * KL(q(z|x) || N(0, I))
      with the closed-form KL of their Appendix B; per-sample sums, mean over the batch.
    * AE (``kind="ae"``): the encoder gives the code z itself; loss = -log p(x|z) alone
      (Hinton & Salakhutdinov 2006 trained theirs on the same cross-entropy for pixels).

    Likelihood (``likelihood="auto"``): Bernoulli (binary cross-entropy on logits, summed
    over features) when every training value lies in [0, 1] -- the choice of K&W for MNIST;
    the digits have 17 grey levels, so this is the usual cross-entropy surrogate rather than
    a normalised density -- and otherwise a Gaussian with one learned variance per feature.

    Metrics (held-out, per-sample sums averaged over the split): ``val_mse`` (per feature, at
    the posterior mean; the default objective, defined for both kinds), ``val_recon``
    (-log p(x|z)), and for a VAE ``val_kl`` and ``val_neg_elbo`` = recon + KL. Early stopping
    watches the training objective on the validation split (recon + beta * KL).

    Tasks: ``classification`` and ``regression`` data sets (any flat ``x``). Figures logged
    at the end of ``fit``: ``reconstructions.png`` and ``samples.png`` (prior samples; for an
    AE, codes from a Gaussian fitted to the training codes): image grids when the task has
    ``info["image_shape"]``, line plots otherwise.
    """

    name = "autoencoder"
    task_kinds = ("classification", "regression")
    config_class = AutoencoderConfig
    default_space = "autoencoder"
    default_task = "digits"
    data_layouts = ("tabular", "image")   # rows of features; images also for arch="conv"
    budget_unit = "epochs"
    default_budget = 50

    def metrics(self, task: Task) -> dict[str, str]:
        return {"val_mse": "minimize", "val_recon": "minimize", "val_neg_elbo": "minimize",
                "val_kl": "minimize"}

    # -- model -----------------------------------------------------------------------
    def resolve_likelihood(self, config: AutoencoderConfig, task: Task) -> str:
        unit = checks.in_unit_interval(task.x_train)
        if config.likelihood == "auto":
            return "bernoulli" if unit else "gaussian"
        if config.likelihood == "bernoulli" and not unit:
            raise ConfigError(f"likelihood='bernoulli' needs data in [0, 1] and task {task.name!r} has values "
                              f"outside it; choose one of: auto, gaussian")
        return config.likelihood

    def build(self, config: AutoencoderConfig, task: Task):
        """An :class:`~nasforge_autoencoder.model.Autoencoder`; seed torch before calling."""
        import math

        from nasforge_autoencoder.model import build_autoencoder

        self.check_task(task.name, task.kind)
        image_shape = tuple(task.info.get("image_shape") or ()) or None
        if config.arch == "conv":
            if image_shape is None or len(image_shape) != 3:
                raise ConfigError(f"arch='conv' needs an image task (info['image_shape'] = (C, H, W)); task "
                                  f"{task.name!r} has none; choose one of: mlp")
            scale = 2 ** len(config.layers)
            if image_shape[1] % scale or image_shape[2] % scale:
                raise ConfigError(f"layers={config.layers!r}: {len(config.layers)} stride-2 convolutions need H "
                                  f"and W divisible by {scale}; task {task.name!r} has images {image_shape}")
        return build_autoencoder(config=config, n_features=math.prod(task.input_shape), image_shape=image_shape,
                                 likelihood=self.resolve_likelihood(config, task))

    # -- training --------------------------------------------------------------------
    def fit(self, model, task: Task, config: AutoencoderConfig, budget: Mapping[str, Any],
            reporter: Reporter) -> dict[str, float]:
        """Train for up to ``budget["epochs"]`` epochs, reporting after each (step = epoch).

        Minibatch order and the reparameterisation noise come from the caller's
        ``torch.manual_seed``. Raises ``FloatingPointError`` on a NaN/infinite loss. Returns
        the validation metrics of the restored best epoch, ``train_loss`` and ``epochs_trained``.
        """
        import torch

        from nasforge import training
        from nasforge_autoencoder.model import split_metrics

        epochs = self.budget_amount(budget)
        device = training.pick_device()
        model.to(device)
        data = training.to_tensors(task, device, splits=("train", "val"))
        x_train, x_val = data.x_train.flatten(1), data.x_val.flatten(1)
        optimizer = training.make_optimizer(config.optimizer, model.parameters(), lr=config.lr,
                                            momentum=config.momentum, weight_decay=config.weight_decay)
        generator = training.seeded_generator()
        eval_eps = self._eval_eps(model, len(x_val), device)
        stopper = training.EarlyStopping(patience=config.patience)
        beta = config.beta
        best: dict[str, float] = {}
        epoch = 0
        for epoch in range(1, epochs + 1):
            model.train()
            total = torch.zeros((), device=device)
            for idx in training.iterate_minibatches(len(x_train), config.batch_size, generator, device=device):
                xb = x_train[idx]
                recon, kl = model.loss_terms(xb)
                loss = (recon if kl is None else recon + beta * kl).mean()   # per-sample sums, batch mean
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total.add_(loss.detach(), alpha=len(idx))
            train_loss = (total / len(x_train)).item()
            training.check_finite(train_loss, epoch=epoch)
            metrics = {"train_loss": train_loss,
                       **split_metrics(model, x_val, eps=eval_eps, beta=beta, prefix="val")}
            training.check_finite(metrics["val_loss"], what="validation loss", epoch=epoch)
            try:
                reporter.report(epoch, metrics)
            except TrialPruned:  # a pruned trial still gets the figures of its best weights so far
                stopper.step(metrics["val_loss"], model, epoch=epoch)
                self._finish(model, stopper, task, reporter, x_train=x_train, x_val=x_val)
                raise
            stop = stopper.step(metrics["val_loss"], model, epoch=epoch)
            if stopper.best_epoch == epoch:
                best = metrics
            if stop:
                break
        self._finish(model, stopper, task, reporter, x_train=x_train, x_val=x_val)
        return {**best, "epochs_trained": epoch}

    def _finish(self, model, stopper, task: Task, reporter: Reporter, *, x_train, x_val) -> None:
        """Restore the best weights seen and log the figures (when the reporter keeps them)."""
        stopper.restore(model)
        if checks.records_figures(reporter):
            self.log_figures(model, task, reporter, x_train=x_train, x_val=x_val)

    def evaluate(self, model, task: Task, split: str = "test") -> dict[str, float]:
        """``{split}_mse``, ``{split}_recon`` and, for a VAE, ``{split}_kl`` and ``{split}_neg_elbo``."""
        from nasforge.training import to_tensors
        from nasforge_autoencoder.model import split_metrics

        device = next(model.parameters()).device
        x, _ = to_tensors(task, device, splits=(split,)).split(split)
        x = x.flatten(1)
        metrics = split_metrics(model, x, eps=self._eval_eps(model, len(x), device), beta=1.0, prefix=split)
        del metrics[f"{split}_loss"]  # the training objective; the bound itself is {split}_neg_elbo
        return metrics

    # -- figures ---------------------------------------------------------------------
    def log_figures(self, model, task: Task, reporter: Reporter, *, x_train, x_val) -> None:
        """``reconstructions.png`` (validation inputs above their reconstructions) and ``samples.png``."""
        import torch

        from nasforge.training import predict
        from nasforge_autoencoder import plots
        from nasforge_autoencoder.model import sample

        shown = x_val[:N_SHOWN]
        recon = predict(model, shown)
        kind = "VAE" if model.variational else "AE"
        fig = plots.rows_figure(task, [shown.cpu().numpy(), recon.cpu().numpy()], ["input", "reconstruction"],
                                title=f"{kind} reconstructions ({task.name}, validation)")
        reporter.log_figure(fig, "reconstructions.png")
        generator = torch.Generator().manual_seed(EVAL_SEED)
        samples = sample(model, N_SAMPLES_SHOWN, generator=generator, x_train=x_train)
        source = "z ~ N(0, I)" if model.variational else "z ~ Gaussian fitted to the training codes"
        fig = plots.samples_figure(task, samples.cpu().numpy(), title=f"{kind} samples, {source} ({task.name})")
        reporter.log_figure(fig, "samples.png")

    @staticmethod
    def _eval_eps(model, n: int, device):
        """Fixed reparameterisation noise for held-out ELBOs (None for an AE)."""
        import torch

        if not model.variational:
            return None
        generator = torch.Generator().manual_seed(EVAL_SEED)
        return torch.randn(n, model.latent_size, generator=generator).to(device)
