"""The supernet phase of ``strategy="darts"``: DARTS on a family's supernet (imports torch).

Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search" (ICLR 2019), Algorithm 1: the
supernet's choices are relaxed into mixed operations weighted by the softmax of architecture
parameters ``alpha`` (:mod:`.relaxation`; the family's ``supernet.mixed``), and for each train minibatch

1. ``alpha`` takes one Adam step on the validation loss of a validation minibatch (DARTS: lr 3e-4,
   betas (0.5, 0.999), weight decay 1e-3): by default its gradient at the current weights,
   ``grad_alpha L_val(w, alpha)`` (the first-order approximation, ``xi = 0``, Sec. 2.3); with
   ``arch_order=2`` the second-order one, through one virtual weight step (:mod:`.darts_unrolled`);
2. the shared weights ``w`` take one step on the train loss ``L_train(w, alpha)`` (SGD with momentum,
   cosine-annealed learning rate, L2, gradient clipping at norm 5 -- the options ENAS uses too).
   By default the step's mixture weights are those softmaxes plus uniform noise (SDARTS-RS, Chen &
   Hsieh 2020), ``U(-eps, eps)`` with ``eps`` rising linearly from 0.03 to ``arch_perturbation``
   (0.3) over the epochs, as in the paper's code: ``w`` learns to do well in a neighbourhood of
   ``alpha``, which flattens the validation loss's landscape in ``alpha`` -- the sharpness Zela et
   al. (2020) tie to DARTS's collapse onto poor architectures; ``arch_perturbation=0`` is plain DARTS.

Under ``max_params`` / ``max_flops`` alpha's loss also carries ``size_penalty`` times how far the
expected size of its stand-alone networks is over the caps, in log scale (ProxylessNAS's resource
loss, :mod:`.size_penalty`); the picks are then drawn within the caps and the argmax is dropped when it
breaks one, as for ``enas`` / ``rsws``.

At the end the architecture is read off ``alpha`` (Sec. 2.4: each choice's most likely value). For
the ``K`` retraining trials the picks are the most likely architecture and then the others among
``candidates`` draws from the softmaxes that ``alpha`` favours most over a uniform draw (the
log-likelihood ratio ``log p_alpha(a) - log q_uniform(a)``: plain log-probability would favour the
shallow networks of a conditional space, which have fewer choices to multiply, and did: 4 of 5 picks
were 1-block CNNs at chance on the shared weights, cnn/MNIST-1D);
each is also scored as a single path with the shared weights (``shared_val_accuracy``), for the
record. Everything else -- seeds, checkpoints after every epoch, curves, compute -- is the
ENAS phase's (:class:`~nasforge.strategies.oneshot.phase.SupernetPhase`).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from nasforge.stores.mlflow_runs import curve_key
from nasforge.strategies.oneshot.darts_unrolled import unrolled_alpha_grads
from nasforge.strategies.oneshot.phase import SupernetPhase
from nasforge.strategies.oneshot.relaxation import ArchitectureWeights
from nasforge.strategies.oneshot.size_penalty import ExpectedSize

ARCH_BETAS = (0.5, 0.999)   # DARTS's Adam for alpha


class DartsPhase(SupernetPhase):
    """One DARTS phase; see the module docstring."""

    def __init__(self, *, job, tracker, on_epoch=None):
        super().__init__(job=job, tracker=tracker, on_epoch=on_epoch)
        self.architecture = ArchitectureWeights(space=job.space, seed=job.seed).to(self.device)
        self.arch_optimizer = torch.optim.Adam(self.architecture.parameters(), lr=self.options.arch_lr,
                                               betas=ARCH_BETAS, weight_decay=self.options.arch_weight_decay)
        self._virtual = None         # arch_order=2: the scratch copy that holds the virtual step's weights
        self._expected_size = None   # under size caps: E[size] over a measured pool (:mod:`.size_penalty`)
        self._size_points = []       # this epoch's (size penalty, share within the caps, pool ESS)

    @property
    def warming_up(self) -> bool:
        """The first ``warmup_epochs``: shared weights only, under uniform (initial) ``alpha``."""
        return self.epoch < self.options.warmup_epochs

    def train_shared(self) -> None:
        """One pass over the train split, an ``alpha`` step (on a validation minibatch) before each ``w`` step."""
        lr, loss_fn = self.start_epoch()
        val = self._val_batches(self.options.batch_size)
        train_losses, val_losses, correct, seen = [], [], [], 0
        self._size_points = []
        epsilon, noise = self._perturbation()
        for x, y in self.train_split.batches(self.options.batch_size, self.train_generator):
            if not self.warming_up:
                xv, yv = next(val)
                outputs, loss = self.arch_step((x, y), (xv, yv), loss_fn, lr)
                self.controller_step += 1
                # second order: 3 more passes over the train minibatch (the virtual step, w+ and w-)
                self.compute["samples_evaluated"] += len(xv) + (3 * len(x) if self.options.arch_order == 2 else 0)
                val_losses.append((loss.detach(), self.controller_step))
                if self.classification:
                    correct.append((outputs.detach().argmax(1) == yv).sum())
                    seen += len(yv)
            weights = (self.architecture.perturbed_weights(epsilon, noise) if epsilon
                       else self.architecture.weights(detach=True))
            train_losses.append(self.weight_step(lambda: loss_fn(self.supernet.mixed(x, weights), y), len(x)))
        self.log_losses("shared_train_loss", train_losses)
        self.log_losses("arch_val_loss", val_losses)
        self.points.append((curve_key("shared_lr"), lr, self.shared_step))
        self.points.append((curve_key("arch_entropy"), self.architecture.entropy(), self.epoch + 1))
        if seen:
            self.points.append((curve_key("mixed_val_accuracy"), float(sum(correct)) / seen, self.epoch + 1))
        if self._size_points:
            penalty, within, ess = torch.stack(self._size_points).mean(0).tolist()
            self.points += [(curve_key("arch_size_penalty"), penalty, self.epoch + 1),
                            (curve_key("arch_within_caps"), within, self.epoch + 1),
                            (curve_key("arch_size_pool_ess"), ess, self.epoch + 1)]

    def _perturbation(self) -> tuple[float, torch.Generator | None]:
        """This epoch's SDARTS-RS noise level (0: none) and its generator, seeded by (seed, epoch) so that
        a resumed phase draws the same noise."""
        top = self.options.arch_perturbation
        if not top:
            return 0.0, None
        start = min(0.03, top)
        epsilon = start + (top - start) * self.epoch / self.options.supernet_epochs
        self.points.append((curve_key("arch_perturbation"), epsilon, self.epoch + 1))
        return epsilon, torch.Generator().manual_seed(self.job.seed * 1_000_003 + self.epoch)

    def arch_step(self, train, val, loss_fn, lr: float):
        """One Adam step on ``alpha``: first order, the validation loss's gradient at ``w``; second
        order (``arch_order=2``), through one virtual weight step of size ``lr`` (:mod:`.darts_unrolled`).
        Returns the validation outputs and loss the gradient came from."""
        self.arch_optimizer.zero_grad(set_to_none=True)
        if self.options.arch_order == 2:
            if self._virtual is None:
                self._virtual = copy.deepcopy(self.supernet)
            outputs, loss = unrolled_alpha_grads(
                supernet=self.supernet, virtual=self._virtual, architecture=self.architecture, loss_fn=loss_fn,
                train=train, val=val, xi=lr, weight_decay=self.options.shared_weight_decay)
        else:
            xv, yv = val
            outputs = self.supernet.mixed(xv, self.architecture.weights())
            loss = loss_fn(outputs, yv)
            loss.backward()
        if self.limit and self.options.size_penalty:
            self.size_penalty_backward()
        self.arch_optimizer.step()
        return outputs.detach(), loss.detach()

    def size_penalty_backward(self) -> None:
        """Add ``size_penalty`` times the gradient of the size penalty to alpha's (:mod:`.size_penalty`)."""
        if self._expected_size is None:   # built at the first alpha step: warm-up epochs need no sizes
            self._expected_size = ExpectedSize(architecture=self.architecture, space=self.job.space,
                                               sizes=self.sizes, limit=self.limit, seed=self.job.seed)
        penalty, within, ess = self._expected_size()
        (self.options.size_penalty * penalty).backward()
        self._size_points.append(torch.stack([penalty.detach().double(), within, ess]))

    def train_controller(self) -> None:
        """Nothing: DARTS steps ``alpha`` inside :meth:`train_shared`, before each weight step."""

    def rate(self) -> dict[str, Any]:
        """The most likely architecture first, then the ``candidates`` draws by their log-likelihood ratio."""
        argmax = self.architecture.most_likely()
        drawn = [(argmax, "argmax")] if self.fits(argmax) else []   # size caps: the argmax may break one
        drawn += [(flat, "sample") for flat in self.architecture.draw(
            self.rng, self.options.candidates, accept=self.fits if self.limit else None)]
        candidates, _ = self.score_candidates(drawn)
        uniform = self.architecture.log_uniform([entry["params"] for entry in candidates])
        for entry, log_q in zip(candidates, uniform.tolist()):
            entry["log_prob"] = self.architecture.log_prob(entry["params"])
            entry["log_prob_ratio"] = entry["log_prob"] - log_q
        ranked = sorted(candidates, key=lambda e: (e["source"] != "argmax", -e["log_prob_ratio"]))
        for rank, entry in enumerate(ranked):
            entry["rank"] = rank
        with torch.no_grad():
            probabilities = {k: [round(float(v), 4) for v in p] for k, p in self.architecture.probabilities().items()}
        return {"top": ranked[:self.job.top], "candidates": ranked, "metric": "log_prob_ratio",
                "probabilities": probabilities}

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "architecture": self.architecture.state_dict(),
                "arch_optimizer": self.arch_optimizer.state_dict()}

    def load_extra(self, state: dict[str, Any]) -> None:
        self.architecture.load_state_dict(state["architecture"])
        self.arch_optimizer.load_state_dict(state["arch_optimizer"])
