"""The multilayer perceptron family: fully connected layers for tabular classification and regression."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from nasforge.checks import check_choice, check_int, check_number, check_part, check_training, fail
from nasforge.family import Family, Reporter
from nasforge.data.tasks import Task

# Kept in step with nasforge.training (which imports torch, so it is only imported in the methods).
ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "selu", "silu")
OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta", "rmsprop", "adagrad")
INITS = ("default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "orthogonal")
CLIP_MODES = ("none", "norm", "value")


@dataclass(kw_only=True)
class LayerConfig:
    """One hidden layer: ``Linear(units) -> activation -> Dropout(dropout)``."""

    units: int = 64              # width; 64 is plenty for the bundled tabular data sets
    activation: str = "relu"     # ReLU trains reliably at any depth used here
    dropout: float = 0.0         # off by default; the space samples it

    def validate(self, where: str) -> None:
        check_int(f"{where}.units", self.units, low=1)
        check_choice(f"{where}.activation", self.activation, ACTIVATIONS)
        check_number(f"{where}.dropout", self.dropout, low=0.0, high=1.0, high_open=True)


@dataclass(kw_only=True)
class MLPConfig:
    """Configuration of an :class:`MLPFamily` model and its training.

    ``layers`` takes dicts (as sampled from a search space) or :class:`LayerConfig`;
    they are converted to :class:`LayerConfig`. ``n_layers``, when given, must equal
    ``len(layers)`` (the space uses it as the repeat count).
    """

    layers: list[LayerConfig] = field(default_factory=lambda: [LayerConfig()])  # one hidden layer
    n_layers: int | None = None   # only checked against len(layers)
    optimizer: str = "adam"       # robust default across learning rates
    lr: float = 1e-3              # Adam's usual step size (Kingma & Ba, 2015)
    momentum: float = 0.9         # heavy-ball momentum; used by sgd and rmsprop only
    weight_decay: float = 0.0     # L2 penalty, off by default
    batch_size: int = 64          # small data sets: many updates per epoch
    init: str = "default"         # PyTorch's own init unless a scheme is chosen
    clip: str = "none"            # gradient clipping: none, norm (global L2) or value
    clip_value: float = 1.0       # threshold for clip = norm / value
    patience: int | None = 5      # early stopping on val loss (Prechelt, 1998); None disables

    def __post_init__(self):
        if not isinstance(self.layers, (list, tuple)):
            raise fail("layers", self.layers, "expected a list of layers (units, activation, dropout)")
        self.layers = [self._layer(i, layer) for i, layer in enumerate(self.layers)]
        if self.n_layers is not None:
            check_int("n_layers", self.n_layers, low=0)
            if self.n_layers != len(self.layers):
                raise fail("n_layers", self.n_layers, f"it must equal len(layers) = {len(self.layers)}")
        check_training(self, optimizers=OPTIMIZERS, inits=INITS, clip_modes=CLIP_MODES)

    @staticmethod
    def _layer(i: int, layer: Any) -> LayerConfig:
        return check_part(f"layers[{i}]", layer, LayerConfig, ("units", "activation", "dropout"))


class MLPFamily(Family):
    """Multilayer perceptrons: ``[Linear -> activation -> Dropout] * n -> Linear`` head.

    Classification trains on cross-entropy over logits, regression on mean squared
    error. Training is mini-batch on one device, with early stopping on the validation
    loss and the best weights restored (Prechelt, 1998).

    Example::

        import torch
        from nasforge.family import NullReporter
        from nasforge.data.builtin_tasks import load_digits_task
        from nasforge_mlp import MLPFamily

        family, task = MLPFamily(), load_digits_task(seed=0)
        config = family.make_config({"layers": [{"units": 64}], "lr": 3e-3})
        torch.manual_seed(0)
        model = family.build(config, task)
        family.fit(model, task, config, {"epochs": 10}, NullReporter())
        family.evaluate(model, task)          # {"test_accuracy": ..., "test_loss": ...}
    """

    name = "mlp"
    task_kinds = ("classification", "regression")
    config_class = MLPConfig
    default_space = "mlp"
    budget_unit = "epochs"
    default_budget = 20
    supports_checkpoints = True   # training.fit_epochs(optimizer=...) saves and resumes
    data_layouts = ("tabular",)   # rows of features
    supports_streaming = True     # training.load_split reads inputs that stay on disk
    predicts_target = True        # forward() gives logits / the value: results predict and serve it
    training_hyperparameters = ("lr", "momentum", "weight_decay", "clip_value")
    supports_weight_sharing = True   # supernet(): widths as slices (strategy="enas" / "rsws")
    supernet_space = "mlp_enas"
    supports_darts = True            # supernet().mixed: DARTS's relaxation (strategy="darts")

    def metrics(self, task: Task) -> dict[str, str]:
        if task.kind == "classification":
            return {"val_accuracy": "maximize", "val_loss": "minimize"}
        return {"val_rmse": "minimize", "val_r2": "maximize", "val_loss": "minimize"}

    # -- model -----------------------------------------------------------------------
    def build(self, config: MLPConfig, task: Task):
        """An ``nn.Sequential``: inputs flattened, hidden layers, then logits / one output.

        Weights follow ``config.init``; seed torch before calling for reproducibility.
        """
        from torch import nn

        from nasforge.training import ACTIVATIONS as MODULES, init_weights

        self.check_task(task.name, task.kind)
        width = math.prod(task.input_shape)
        modules: list[nn.Module] = [nn.Flatten()]
        for layer in config.layers:
            modules += [nn.Linear(width, layer.units), MODULES[layer.activation]()]
            if layer.dropout > 0:
                modules.append(nn.Dropout(layer.dropout))
            width = layer.units
        outputs = task.n_classes if task.kind == "classification" else 1
        modules.append(nn.Linear(width, outputs))
        return init_weights(nn.Sequential(*modules), config.init)

    def supernet(self, space, task: Task):
        """Every MLP of ``space`` in one module with shared weights; see :mod:`nasforge_mlp.mlp_supernet`.

        Holds depth (``n_layers``) and each layer's units (slices of the widest), activation and
        dropout; a space that varies a training setting is refused.
        """
        from nasforge_mlp.mlp_supernet import build_supernet

        return build_supernet(space, task, family=self)

    # -- training --------------------------------------------------------------------
    def fit(self, model, task: Task, config: MLPConfig, budget: Mapping[str, Any],
            reporter: Reporter) -> dict[str, float]:
        """Train for up to ``budget["epochs"]`` epochs, reporting after each (step = epoch).

        Minibatch order comes from a generator seeded with ``torch.initial_seed()``, so
        the caller's ``torch.manual_seed`` governs the whole run. Raises
        ``FloatingPointError`` when the loss becomes NaN or infinite. Returns the
        validation metrics of the restored best epoch plus ``epochs_trained``.
        """
        from nasforge import training

        epochs = self.budget_amount(budget)
        device = training.pick_device()
        model.to(device)
        train, val = (training.load_split(task, split, device) for split in ("train", "val"))
        optimizer = training.make_optimizer(config.optimizer, model.parameters(), lr=config.lr,
                                            momentum=config.momentum, weight_decay=config.weight_decay)
        generator = training.seeded_generator()
        loss_fn = self._loss_fn(task)

        def train_one_epoch(epoch: int) -> float:
            return training.train_batches(model, optimizer, loss_fn, train.batches(config.batch_size, generator),
                                          clip=config.clip, clip_value=config.clip_value).item()

        return training.fit_epochs(model, epochs=epochs, reporter=reporter, train_one_epoch=train_one_epoch,
                                   validate=lambda: self._metrics(task, *val.predict(model), "val"),
                                   patience=config.patience, optimizer=optimizer)

    def evaluate(self, model, task: Task, split: str = "test") -> dict[str, float]:
        """``{split}_accuracy, {split}_loss`` or ``{split}_rmse, {split}_r2, {split}_loss``."""
        from nasforge.training import load_split

        device = next(model.parameters()).device
        return self._metrics(task, *load_split(task, split, device).predict(model), split)

    # -- helpers ---------------------------------------------------------------------
    @staticmethod
    def _loss_fn(task: Task):
        from torch import nn

        return nn.functional.cross_entropy if task.kind == "classification" else nn.functional.mse_loss

    @staticmethod
    def _metrics(task: Task, out, y, prefix: str) -> dict[str, float]:
        from nasforge.training import classification_metrics, regression_metrics

        if task.kind == "classification":
            return classification_metrics(out, y, prefix=prefix)
        return regression_metrics(out, y, prefix=prefix)
