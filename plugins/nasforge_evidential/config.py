"""Configuration of the evidential family (no torch here: imported at registration)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nasforge.checks import check_choice, check_int, check_number, check_part, fail
from nasforge_mlp.family import LayerConfig

MODES = ("regression", "classification")
EVIDENCE = ("relu", "softplus", "exp")          # kept in step with losses.EVIDENCE (torch)
OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta", "rmsprop", "adagrad")
# lambda of each paper: the official cubic toy uses 0.01 (Amini et al., 2020);
# Sensoy et al. (2018) anneal the KL term up to a weight of 1.
DEFAULT_REG_WEIGHT = {"regression": 0.01, "classification": 1.0}


@dataclass(kw_only=True)
class EvidentialConfig:
    """An evidential MLP and its training.

    ``mode`` is taken from the task kind when left ``None``; when given it must match it.
    ``reg_weight`` is lambda: the weight of Amini's evidence regularizer in regression, the
    cap of Sensoy's annealed KL weight ``min(1, t / annealing_epochs)`` in classification;
    ``None`` takes each paper's value (0.01, 1.0). ``evidence`` and ``annealing_epochs``
    are used in classification only. Sensoy et al. use ReLU evidence; the default here is
    ``exp`` because on ``digits_ood`` ReLU evidence left whole classes without evidence
    (dead output units; 2 x 64 network, 30 epochs: validation accuracy 0.70-0.85 on 3 of 4 seeds),
    while ``exp`` reached 0.98-0.99 with the lowest NLL and ECE (``softplus``: 0.98).
    """

    mode: str | None = None            # regression | classification; None: from the task kind
    # 4 x 100 ReLU, lr 5e-3, batch 128, lambda 0.01: the official cubic experiments
    # (neurips2020/run_cubic_tests.py); with 2 x 64 the OOD rise of Var[mu] was less reliable.
    layers: list[LayerConfig] = field(default_factory=lambda: [LayerConfig(units=100) for _ in range(4)])
    n_layers: int | None = None        # only checked against len(layers) (the space's repeat count)
    reg_weight: float | None = None    # lambda; None: 0.01 (regression) or 1.0 (classification)
    evidence: str = "exp"              # exp(clamp(logits, -10, 10)); see the class docstring
    annealing_epochs: int = 10         # lambda_t = min(1, t / 10), t in epochs (Sensoy et al.)
    optimizer: str = "adam"            # both papers train with Adam
    lr: float = 5e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    patience: int | None = None        # early stopping on val_nll; None: train the whole budget

    def __post_init__(self):
        if self.mode is not None:
            check_choice("mode", self.mode, MODES)
        if not isinstance(self.layers, (list, tuple)):
            raise fail("layers", self.layers, "expected a list of layers (units, activation, dropout)")
        self.layers = [self._layer(i, layer) for i, layer in enumerate(self.layers)]
        if self.n_layers is not None:
            check_int("n_layers", self.n_layers, low=0)
            if self.n_layers != len(self.layers):
                raise fail("n_layers", self.n_layers, f"it must equal len(layers) = {len(self.layers)}")
        if self.reg_weight is not None:
            check_number("reg_weight", self.reg_weight, low=0.0)
        check_choice("evidence", self.evidence, EVIDENCE)
        check_int("annealing_epochs", self.annealing_epochs, low=0)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_number("lr", self.lr, low=0.0, low_open=True)
        check_number("weight_decay", self.weight_decay, low=0.0)
        check_int("batch_size", self.batch_size, low=1)
        if self.patience is not None:
            check_int("patience", self.patience, low=1)

    def lam(self, mode: str) -> float:
        """lambda for ``mode``: ``reg_weight`` or the paper's default."""
        return DEFAULT_REG_WEIGHT[mode] if self.reg_weight is None else float(self.reg_weight)

    @staticmethod
    def _layer(i: int, layer: Any) -> LayerConfig:
        return check_part(f"layers[{i}]", layer, LayerConfig, ("units", "activation", "dropout"))
