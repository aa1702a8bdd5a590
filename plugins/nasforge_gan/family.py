"""The GAN family: an MLP generator and discriminator trained adversarially.

Importing this module does not import torch (the model code is in :mod:`.model`, the
metrics in :mod:`.fid`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from nasforge.errors import TrialPruned
from nasforge.family import Family, Reporter
from nasforge.data.tasks import Task
from nasforge_autoencoder import checks

N_FID_SAMPLES = 1000    # generated samples scored per evaluation
N_SAMPLES_SHOWN = 64    # samples in the figure
EVAL_SEED = 1234        # the noise of scored and plotted samples (the same every epoch)


@dataclass(kw_only=True)
class GANConfig:
    """Configuration of a :class:`GANFamily` model and its training.

    ``g_layers`` / ``d_layers`` are the hidden widths of the generator and the discriminator
    (``[{"units": N}, ...]`` as a space samples them, or plain ints).
    """

    noise_size: int = 16              # dimension of z ~ N(0, I)
    g_layers: list = field(default_factory=lambda: [512])   # measured on digits: FID ~11 after
    # 80 epochs with these widths and lrs, against ~16 for [128, 128] / [128] at 300 epochs
    n_g_layers: int | None = None     # only checked against len(g_layers)
    d_layers: list = field(default_factory=lambda: [256])
    n_d_layers: int | None = None     # only checked against len(d_layers)
    g_activation: str = "relu"        # Radford et al. (2016): ReLU in G ...
    d_activation: str = "leaky_relu"  # ... and LeakyReLU in D
    optimizer: str = "adam"
    g_lr: float = 1e-3                # 2e-4 (Radford et al. 2016, conv nets with batch norm) was
    d_lr: float = 1e-3                # much slower for these small MLPs on the digits
    beta1: float = 0.5                # Adam's first-moment decay, lowered for GANs (Radford et al., 2016)
    momentum: float = 0.9             # sgd and rmsprop only
    d_steps: int = 1                  # k discriminator steps per generator step (Goodfellow et al. 2014, Alg. 1)
    label_smoothing: float = 0.0      # one-sided: real targets 1 - s (Salimans et al. 2016 use s = 0.1)
    batch_size: int = 64
    patience: int | None = None       # stop after this many scored epochs without a better val_fid; None: never
    eval_every: int = 1               # score (and report) every N epochs and at the last; scoring
    # 1000 samples costs ~10% of a digits epoch, so N > 1 buys speed at the pruner's resolution

    def __post_init__(self):
        checks.check_int("noise_size", self.noise_size, low=1)
        self.g_layers = checks.check_widths("g_layers", self.g_layers, self.n_g_layers)
        self.d_layers = checks.check_widths("d_layers", self.d_layers, self.n_d_layers)
        checks.check_choice("g_activation", self.g_activation, checks.ACTIVATIONS)
        checks.check_choice("d_activation", self.d_activation, checks.ACTIVATIONS)
        checks.check_choice("optimizer", self.optimizer, checks.OPTIMIZERS)
        checks.check_number("g_lr", self.g_lr, low=0.0, low_open=True)
        checks.check_number("d_lr", self.d_lr, low=0.0, low_open=True)
        checks.check_number("beta1", self.beta1, low=0.0, high=1.0, high_open=True)
        checks.check_number("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        checks.check_int("d_steps", self.d_steps, low=1)
        checks.check_number("label_smoothing", self.label_smoothing, low=0.0, high=0.5, high_open=True)
        checks.check_int("batch_size", self.batch_size, low=1)
        if self.patience is not None:
            checks.check_int("patience", self.patience, low=1)
        checks.check_int("eval_every", self.eval_every, low=1)


class GANFamily(Family):
    """Generative adversarial nets (Goodfellow et al., 2014) with MLP generator and discriminator.

    Training follows Algorithm 1 of the paper: ``d_steps`` (k) discriminator steps, each on a
    minibatch of real data and one of generated samples, minimising
    ``-log D(x) - log(1 - D(G(z)))``, then one generator step with the *non-saturating* loss
    ``-log D(G(z))`` that the paper recommends (Sec. 3). One-sided label smoothing replaces
    the real targets by ``1 - label_smoothing`` (Salimans et al., 2016, Sec. 3.4). One epoch
    is one pass of the discriminator over the training split; k carries across epochs.

    Metrics, every ``eval_every`` epochs (default 1) and at the last, on ``N_FID_SAMPLES``
    samples from fixed noise against the validation split (see :mod:`nasforge_gan.fid`):
    ``val_fid`` (the default objective; a
    Frechet distance in the features of a fixed classifier trained on the task's training
    split), ``val_inception_score`` and ``val_class_coverage``. The weights of the epoch
    with the best ``val_fid`` are restored at the end; ``samples.png`` is logged.

    Tasks: ``classification`` data sets (the labels train the metric's classifier; the
    generator ignores them). Data in [0, 1] (the digits' pixels) get a sigmoid output layer.
    ``forward(x)`` is the discriminator (the logit that ``x`` is real); samples come from
    ``model.sample(n)``.
    """

    name = "gan"
    task_kinds = ("classification",)
    config_class = GANConfig
    default_space = "gan"
    default_task = "digits"
    budget_unit = "epochs"
    default_budget = 100
    data_layouts = ("tabular", "image")   # rows of features (images are flattened)

    def metrics(self, task: Task) -> dict[str, str]:
        return {"val_fid": "minimize", "val_inception_score": "maximize", "val_class_coverage": "maximize"}

    def build(self, config: GANConfig, task: Task):
        """A :class:`~nasforge_gan.model.GAN`; seed torch before calling."""
        import math

        from nasforge_gan.model import GAN

        self.check_task(task.name, task.kind)
        return GAN(noise_size=config.noise_size, n_features=math.prod(task.input_shape), g_widths=config.g_layers,
                   d_widths=config.d_layers, g_activation=config.g_activation, d_activation=config.d_activation,
                   unit_interval=checks.in_unit_interval(task.x_train))

    def fit(self, model, task: Task, config: GANConfig, budget: Mapping[str, Any],
            reporter: Reporter) -> dict[str, float]:
        """Train for up to ``budget["epochs"]`` epochs, reporting after each (step = epoch).

        Minibatch order and the noise come from the caller's ``torch.manual_seed``. Raises
        ``FloatingPointError`` on a NaN/infinite loss. Returns the validation metrics of the
        restored best epoch, the epoch's ``d_loss`` / ``g_loss`` and ``epochs_trained``.
        """
        import torch
        from torch.nn.functional import binary_cross_entropy_with_logits as bce

        from nasforge import training
        from nasforge_gan.fid import SampleScorer

        epochs = self.budget_amount(budget)
        device = training.pick_device()
        model.to(device)
        x_train = training.to_tensors(task, device, splits=("train",)).x_train.flatten(1)
        G, D = model.generator, model.discriminator
        g_opt = self._optimizer(config, G.parameters(), config.g_lr)
        d_opt = self._optimizer(config, D.parameters(), config.d_lr)
        scorer = SampleScorer(task, task.x_val, device=device)
        noise = self._eval_noise(model, N_FID_SAMPLES, device)
        generator = training.seeded_generator()
        stopper = training.EarlyStopping(patience=config.patience)
        real_target = 1.0 - config.label_smoothing
        d_step = 0
        best: dict[str, float] = {}
        epoch = 0
        for epoch in range(1, epochs + 1):
            model.train()
            d_total = torch.zeros((), device=device)
            g_total = torch.zeros((), device=device)
            g_count = 0
            for idx in training.iterate_minibatches(len(x_train), config.batch_size, generator, device=device):
                m = len(idx)
                with torch.no_grad():
                    fake = G(torch.randn(m, model.noise_size, device=device))
                logits = D(torch.cat([x_train[idx], fake]))
                d_loss = bce(logits[:m], torch.full_like(logits[:m], real_target)) + \
                    bce(logits[m:], torch.zeros_like(logits[m:]))
                d_opt.zero_grad(set_to_none=True)
                d_loss.backward()
                d_opt.step()
                d_total.add_(d_loss.detach())
                d_step += 1
                if d_step % config.d_steps == 0:
                    logits = D(G(torch.randn(config.batch_size, model.noise_size, device=device)))
                    g_loss = bce(logits, torch.ones_like(logits))  # non-saturating: -log D(G(z))
                    g_opt.zero_grad(set_to_none=True)
                    g_loss.backward()
                    g_opt.step()
                    g_total.add_(g_loss.detach())
                    g_count += 1
            n_batches = -(-len(x_train) // config.batch_size)
            d_mean, g_mean = torch.stack([d_total / n_batches, g_total / max(g_count, 1)]).tolist()
            training.check_finite(d_mean, what="discriminator loss", epoch=epoch)
            training.check_finite(g_mean, what="generator loss", epoch=epoch)
            if epoch % config.eval_every and epoch != epochs:
                continue
            metrics = {"d_loss": d_mean, "g_loss": g_mean, **self._score(model, scorer, noise, "val")}
            training.check_finite(metrics["val_fid"], what="val_fid", epoch=epoch)
            try:
                reporter.report(epoch, metrics)
            except TrialPruned:  # a pruned trial still gets the figures of its best weights so far
                stopper.step(metrics["val_fid"], model, epoch=epoch)
                self._finish(model, stopper, task, reporter)
                raise
            stop = stopper.step(metrics["val_fid"], model, epoch=epoch)
            if stopper.best_epoch == epoch:
                best = metrics
            if stop:
                break
        self._finish(model, stopper, task, reporter)
        return {**best, "epochs_trained": epoch}

    def _finish(self, model, stopper, task: Task, reporter: Reporter) -> None:
        """Restore the best weights seen and log the figures (when the reporter keeps them)."""
        stopper.restore(model)
        if checks.records_figures(reporter):
            self.log_figures(model, task, reporter)

    def evaluate(self, model, task: Task, split: str = "test") -> dict[str, float]:
        """``{split}_fid``, ``{split}_inception_score``, ``{split}_class_coverage`` against that split."""
        from nasforge_gan.fid import SampleScorer

        if split not in ("train", "val", "test"):
            raise ValueError(f"unknown split {split!r}; valid: train, val, test")
        device = next(model.parameters()).device
        scorer = SampleScorer(task, getattr(task, f"x_{split}"), device=device)
        return self._score(model, scorer, self._eval_noise(model, N_FID_SAMPLES, device), split)

    def log_figures(self, model, task: Task, reporter: Reporter) -> None:
        """``samples.png``: samples from fixed noise (images or line plots)."""
        from nasforge_autoencoder import plots

        samples = model.sample(N_SAMPLES_SHOWN, generator=self._cpu_generator()).cpu().numpy()
        reporter.log_figure(plots.samples_figure(task, samples, title=f"GAN samples ({task.name})"), "samples.png")

    # -- helpers ---------------------------------------------------------------------
    @staticmethod
    def _optimizer(config: GANConfig, params, lr: float):
        import torch

        from nasforge import training

        if config.optimizer == "adam":
            return torch.optim.Adam(params, lr=lr, betas=(config.beta1, 0.999))
        return training.make_optimizer(config.optimizer, params, lr=lr, momentum=config.momentum)

    @staticmethod
    def _cpu_generator():
        import torch

        return torch.Generator().manual_seed(EVAL_SEED)

    def _eval_noise(self, model, n: int, device):
        import torch

        return torch.randn(n, model.noise_size, generator=self._cpu_generator()).to(device)

    @staticmethod
    def _score(model, scorer, noise, prefix: str) -> dict[str, float]:
        import torch

        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                samples = model.generator(noise)
            return scorer.score(samples, prefix=prefix)
        finally:
            model.train(was_training)
