"""The evidential family: MLPs with an evidential output for regression and classification.

Regression: Deep Evidential Regression (Amini et al., 2020, NeurIPS). Classification:
Evidential Deep Learning (Sensoy et al., 2018, NeurIPS). See :mod:`nasforge_evidential.losses`.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from nasforge.errors import ConfigError
from nasforge.family import Family, Reporter
from nasforge.data.tasks import Task
from nasforge_evidential.config import MODES, EvidentialConfig


class EvidentialFamily(Family):
    """Evidential MLPs: ``[Linear -> activation -> Dropout] * n`` then an evidential head.

    * ``mode="regression"``: the head outputs NIG ``(gamma, nu, alpha, beta)`` per target
      (``(N, 4 d)``); the loss is the NIG NLL plus ``lambda |y - gamma| (2 nu + alpha)``.
      The prediction is ``gamma``, aleatoric ``E[sigma^2] = beta / (alpha - 1)``, epistemic
      ``Var[mu] = beta / (nu (alpha - 1))``.
    * ``mode="classification"``: the head outputs Dirichlet concentrations ``alpha = e + 1``
      (``(N, K)``); the loss is Sensoy's expected squared error plus the annealed
      ``lambda_t KL(Dir(alpha_tilde) || Dir(1))``; the uncertainty is ``u = K / S``.

    Each epoch reports accuracy / RMSE, NLL, calibration (``val_ece`` for classification,
    ``val_calibration_error`` for regression) and ``val_ood_auroc``, how well the epistemic
    uncertainty tells the task's OOD inputs (``task.info["ood"]``, else uniform noise over the
    training range) from its own. For 1-D regression inputs, ``fit`` attaches
    ``evidential_regression.png`` (prediction and uncertainty bands, like the paper's Figure 3)
    through ``reporter.log_figure`` (not drawn for a reporter that keeps no figures).

    Example::

        import torch
        from nasforge.family import NullReporter
        from nasforge_evidential import EvidentialFamily, load_cubic_task

        family, task = EvidentialFamily(), load_cubic_task(seed=0)
        config = family.make_config({})
        torch.manual_seed(0)
        model = family.build(config, task)
        family.fit(model, task, config, {"epochs": 100}, NullReporter())
        family.evaluate(model, task)   # test_rmse, test_nll, ..., test_ood_auroc
    """

    name = "evidential"
    task_kinds = MODES
    config_class = EvidentialConfig
    default_space = "evidential"
    budget_unit = "epochs"
    default_budget = 100
    default_task = "cubic"
    data_layouts = ("tabular",)
    predicts_target = True        # the Dirichlet's mean / the Normal-Inverse-Gamma's gamma (below)

    def metrics(self, task: Task) -> dict[str, str]:
        if task.kind == "classification":
            return {"val_accuracy": "maximize", "val_nll": "minimize", "val_ece": "minimize",
                    "val_ood_auroc": "maximize", "val_loss": "minimize"}
        return {"val_rmse": "minimize", "val_nll": "minimize", "val_calibration_error": "minimize",
                "val_ood_auroc": "maximize", "val_loss": "minimize"}

    def mode(self, config: EvidentialConfig, task: Task) -> str:
        """``config.mode``, or the task kind when unset; a mismatch is a :class:`ConfigError`."""
        self.check_task(task.name, task.kind)
        if config.mode is not None and config.mode != task.kind:
            raise ConfigError(f"mode={config.mode!r} does not match task {task.name!r} of kind {task.kind!r}; "
                              f"leave mode unset or set it to {task.kind!r}")
        return task.kind

    # -- model -----------------------------------------------------------------------
    def build(self, config: EvidentialConfig, task: Task):
        """An ``nn.Sequential`` whose last module is the evidential head; seed torch first."""
        from nasforge_evidential.model import build_network

        return build_network(config, task, self.mode(config, task))

    # -- training --------------------------------------------------------------------
    def fit(self, model, task: Task, config: EvidentialConfig, budget: Mapping[str, Any],
            reporter: Reporter) -> dict[str, float]:
        """Train for ``budget["epochs"]`` epochs, reporting after each (step = epoch).

        With ``patience`` set, training stops once ``val_nll`` has not improved for that
        many epochs and the best weights are restored; otherwise the last epoch's weights
        are kept (both papers train a fixed number of steps). Classification anneals the
        KL weight per step, ``lambda * min(1, t / annealing_epochs)`` with ``t`` the
        fractional epoch starting at 0 (the authors' code anneals per step too). Raises
        ``FloatingPointError`` when the loss becomes NaN or infinite. Returns the reported
        metrics of the kept epoch plus ``epochs_trained``.

        Each epoch's ``val_*`` metrics come from one forward pass over the val inputs and
        the val OOD inputs (:func:`nasforge_evidential.evaluation.split_metrics`).
        """
        import torch

        from nasforge import training
        from nasforge_evidential.evaluation import EvalData, split_metrics
        from nasforge_evidential.losses import evidential_classification_loss, evidential_regression_loss

        mode = self.mode(config, task)
        epochs = self.budget_amount(budget)
        device = training.pick_device()
        model.to(device)
        data = EvalData(task, device, ("train", "val"), eval_splits=("val",))
        x, y = data.x["train"], data.y["train"]
        optimizer = training.make_optimizer(config.optimizer, model.parameters(), lr=config.lr,
                                            weight_decay=config.weight_decay)
        generator = training.seeded_generator()
        lam, n = config.lam(mode), len(x)
        steps_per_epoch = math.ceil(n / config.batch_size)
        kl_weight = 0.0

        def train_one_epoch(epoch: int) -> float:
            nonlocal kl_weight
            model.train()
            total = torch.zeros((), device=device)
            for step, idx in enumerate(training.iterate_minibatches(n, config.batch_size, generator, device=device)):
                if mode == "regression":
                    loss = evidential_regression_loss(model(x[idx]), y[idx], reg_weight=lam).mean()
                else:
                    kl_weight = self._kl_weight(lam, config.annealing_epochs, epoch - 1 + step / steps_per_epoch)
                    loss = evidential_classification_loss(model(x[idx]), y[idx], kl_weight=kl_weight).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total.add_(loss.detach(), alpha=len(idx))
            return (total / n).item()

        kept = training.fit_epochs(
            model, epochs=epochs, reporter=reporter, train_one_epoch=train_one_epoch,
            validate=lambda: split_metrics(model, mode, data, "val", lam=lam, kl_weight=kl_weight),
            patience=config.patience, monitor="val_nll", keep_best=config.patience is not None)
        if mode == "regression" and math.prod(task.input_shape) == 1 and _keeps_figures(reporter):
            self._log_figure(model, task, reporter)
        return kept

    def evaluate(self, model, task: Task, split: str = "test") -> dict[str, float]:
        """The split's metrics: ``{split}_rmse`` / ``{split}_accuracy``, ``_nll``, calibration, ``_ood_auroc``...

        The training loss is left out: it depends on the config's lambda, which a model does not keep.
        """
        from nasforge_evidential.evaluation import EvalData, split_metrics

        device = next(model.parameters()).device
        return split_metrics(model, task.kind, EvalData(task, device, (split,)), split)

    def example_input(self, task: Task):
        return task.x_test[:2]

    # -- predictions -----------------------------------------------------------------
    def predictions(self, outputs, task: Task):
        """Classification: the Dirichlet's expected probabilities ``alpha / S`` (Sensoy et al., 2018);
        regression: the Normal-Inverse-Gamma's mean ``gamma`` (Amini et al., 2020)."""
        if task.kind == "classification":
            return outputs / outputs.sum(dim=1, keepdim=True)
        return outputs[:, :outputs.shape[1] // 4][:, :1]

    @staticmethod
    def predict(model, x) -> dict[str, Any]:
        """Predictions and uncertainties of ``model`` at inputs ``x`` (numpy), as numpy arrays.

        Regression: ``gamma, nu, alpha, beta, aleatoric, epistemic`` (``(N, d)`` each).
        Classification: ``alpha, prob`` (``alpha / S``, ``(N, K)``) and ``uncertainty``
        (``K / S``, ``(N,)``). The mode is read from the model's head.
        """
        import torch

        from nasforge.training import predict
        from nasforge_evidential.model import NormalInvGammaHead

        device = next(model.parameters()).device
        out = predict(model, torch.as_tensor(x, dtype=torch.float32, device=device)).double().cpu().numpy()
        if isinstance(model[-1], NormalInvGammaHead):
            import numpy as np

            gamma, nu, alpha, beta = np.split(out, 4, axis=-1)
            aleatoric = beta / (alpha - 1.0)
            return dict(gamma=gamma, nu=nu, alpha=alpha, beta=beta, aleatoric=aleatoric, epistemic=aleatoric / nu)
        strength = out.sum(axis=1)
        return dict(alpha=out, prob=out / strength[:, None], uncertainty=out.shape[1] / strength)

    # -- helpers ---------------------------------------------------------------------
    @staticmethod
    def _kl_weight(lam: float, annealing_epochs: int, t: float) -> float:
        return lam if annealing_epochs == 0 else lam * min(1.0, t / annealing_epochs)

    def _log_figure(self, model, task: Task, reporter: Reporter) -> None:
        from nasforge_evidential.plots import regression_figure

        reporter.log_figure(regression_figure(self, model, task), "evidential_regression.png")


def _keeps_figures(reporter: Reporter) -> bool:
    """False for reporters whose ``log_figure`` is the base no-op (``NullReporter``): skip drawing."""
    return type(reporter).log_figure is not Reporter.log_figure
