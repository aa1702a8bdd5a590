"""The recurrent family: vanilla RNN, LSTM, GRU and ENAS's cell for many-to-one sequence tasks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from nasforge.checks import check_choice, check_int, check_number, check_part, check_training, fail
from nasforge.errors import ConfigError
from nasforge.family import Family, Reporter
from nasforge.data.tasks import Task

# Kept in step with nasforge.training and nasforge_rnn.model (both import torch).
CELLS = ("rnn", "lstm", "gru")
ENAS_CELL = "enas"                # ENAS's searched cell (nasforge_rnn.enas_cell), built from ``nodes``
NODE_ACTIVATIONS = ("tanh", "relu", "identity", "sigmoid")   # ENAS's four (Pham et al. 2018)
OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta", "rmsprop", "adagrad")
INITS = ("default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "orthogonal")
CLIP_MODES = ("none", "norm", "value")
SEQUENCE_TASKS = "digits, mnist1d, adding, adding_short, adding_long, majority_tokens"


@dataclass(kw_only=True)
class NodeConfig:
    """A node after the first of an ENAS cell: the earlier node it reads, and its activation."""

    input: int = 0               # earlier nodes counted from 0 (the first); wraps around past the last
    activation: str = "tanh"

    def validate(self, where: str) -> None:
        check_int(f"{where}.input", self.input, low=0)
        check_choice(f"{where}.activation", self.activation, NODE_ACTIVATIONS)


@dataclass(kw_only=True)
class RNNConfig:
    """Configuration of an :class:`RNNFamily` model and its training."""

    cell: str = "lstm"            # gated cells keep long dependencies (Hochreiter & Schmidhuber, 1997); or "enas"
    hidden_size: int = 64         # enough for the generated tasks and MNIST-1D
    n_layers: int = 1             # stacked recurrent layers
    bidirectional: bool = False   # a backward direction too (Schuster & Paliwal, 1997)
    dropout: float = 0.0          # between stacked layers only (Zaremba et al., 2014)
    embedding_dim: int = 32       # token tasks only (task.info["vocab_size"]); ignored otherwise
    tbptt_steps: int = 0          # truncated BPTT window (Williams & Peng, 1990); 0 or >= T: full BPTT
    optimizer: str = "adam"       # robust default across learning rates
    lr: float = 3e-3              # a little above Adam's 1e-3: the generated tasks plateau before they click
    momentum: float = 0.9         # used by sgd and rmsprop only
    weight_decay: float = 0.0     # L2 penalty, off by default
    batch_size: int = 64
    init: str = "default"         # PyTorch's U(-1/sqrt(H), 1/sqrt(H)) unless a scheme is chosen
    clip: str = "norm"            # gradient clipping by global norm (Pascanu et al., 2013), or value, or none
    clip_value: float = 1.0       # the norm / value threshold
    patience: int | None = 10     # early stopping on val loss; long: gated cells sit on a plateau first
    # cell="enas" only (Pham et al. 2018): the first node's activation, and the nodes after it
    enas_activation: str = "tanh"
    nodes: list[NodeConfig] = field(default_factory=list)
    n_nodes: int | None = None    # only checked against len(nodes)

    def __post_init__(self):
        check_choice("cell", self.cell, (*CELLS, ENAS_CELL))
        check_choice("enas_activation", self.enas_activation, NODE_ACTIVATIONS)
        if not isinstance(self.nodes, (list, tuple)):
            raise fail("nodes", self.nodes, "expected a list of nodes (input, activation)")
        self.nodes = [self._node(k, node) for k, node in enumerate(self.nodes, start=1)]
        if self.n_nodes is not None:
            check_int("n_nodes", self.n_nodes, low=0)
            if self.n_nodes != len(self.nodes):
                raise fail("n_nodes", self.n_nodes, f"it must equal len(nodes) = {len(self.nodes)}")
        if self.cell == ENAS_CELL and (self.n_layers != 1 or self.bidirectional):
            raise fail("cell", self.cell, "an ENAS cell is one unidirectional layer: n_layers=1, bidirectional=false")
        check_int("hidden_size", self.hidden_size, low=1)
        check_int("n_layers", self.n_layers, low=1)
        if not isinstance(self.bidirectional, bool):
            raise fail("bidirectional", self.bidirectional, "expected true or false")
        check_number("dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        check_int("embedding_dim", self.embedding_dim, low=1)
        check_int("tbptt_steps", self.tbptt_steps, low=0)
        if self.tbptt_steps and self.bidirectional:
            raise fail("tbptt_steps", self.tbptt_steps,
                        "truncated BPTT needs bidirectional=False (the backward direction reads the whole "
                        "sequence); use tbptt_steps=0")
        check_training(self, optimizers=OPTIMIZERS, inits=INITS, clip_modes=CLIP_MODES)

    @staticmethod
    def _node(k: int, node: Any) -> NodeConfig:
        """Node ``k`` (1 = the second), its input wrapped onto the ``k`` earlier nodes: two inputs that
        read the same node make the same configuration."""
        node = check_part(f"nodes[{k - 1}]", node, NodeConfig, ("input", "activation"))
        return NodeConfig(input=node.input % k, activation=node.activation)


class RNNFamily(Family):
    """Recurrent networks for many-to-one tasks: classify or regress a whole sequence.

    A task qualifies when ``task.info["sequence_shape"]`` gives its inputs as ``(T, F)``
    steps of features (digits rows: ``(8, 8)``; MNIST-1D: ``(40, 1)``; the adding problem:
    ``(T, 2)``), or as ``(T,)`` integer tokens with ``task.info["vocab_size"]``, which are
    embedded first. Training is backpropagation through time over the whole sequence, or
    truncated (``tbptt_steps``), with gradient clipping, early stopping on the validation
    loss and the best weights restored.

    Example::

        import torch
        from nasforge.family import NullReporter
        from nasforge.data.builtin_tasks import load_digits_task
        from nasforge_rnn import RNNFamily

        family, task = RNNFamily(), load_digits_task(seed=0)
        config = family.make_config({"cell": "gru", "hidden_size": 64})
        torch.manual_seed(0)
        model = family.build(config, task)
        family.fit(model, task, config, {"epochs": 10}, NullReporter())
        family.evaluate(model, task)          # {"test_accuracy": ..., "test_loss": ...}
    """

    name = "rnn"
    task_kinds = ("classification", "regression")
    config_class = RNNConfig
    default_space = "rnn"
    default_task = "digits"       # 8 rows of 8 pixels: the quickest sequence task
    budget_unit = "epochs"
    default_budget = 20
    supports_checkpoints = True   # training.fit_epochs(optimizer=...) saves and resumes
    data_layouts = ("sequence", "tokens")   # (T, F) steps of features, (T,) integer tokens
    supports_streaming = True     # training.load_split reads inputs that stay on disk
    predicts_target = True        # forward() gives logits / the value: results predict and serve it
    training_hyperparameters = ("lr", "momentum", "weight_decay", "clip_value")
    supports_weight_sharing = True   # supernet(): ENAS's recurrent cell (strategy="enas" / "rsws")
    supports_darts = True            # supernet().mixed: DARTS's relaxation of that cell (strategy="darts")
    supernet_space = "rnn_enas"

    def metrics(self, task: Task) -> dict[str, str]:
        self.check_sequence_task(task)
        if task.kind == "classification":
            return {"val_accuracy": "maximize", "val_loss": "minimize"}
        return {"val_rmse": "minimize", "val_r2": "maximize", "val_loss": "minimize"}

    def check_sequence_task(self, task: Task) -> tuple[int, ...]:
        """The task's ``sequence_shape``; :class:`ConfigError` naming family and task if unusable."""
        self.check_task(task.name, task.kind)
        shape = task.info.get("sequence_shape")
        if shape is None:
            raise ConfigError(
                f"family {self.name!r} cannot handle task {task.name!r}: its info has no 'sequence_shape' "
                f"(the (steps, features) of one input); sequence tasks include: {SEQUENCE_TASKS}")
        shape = tuple(shape)
        if not 1 <= len(shape) <= 2 or not all(isinstance(d, int) and d >= 1 for d in shape):
            raise ConfigError(f"family {self.name!r}: task {task.name!r} has sequence_shape={shape!r}; "
                              "expected (steps, features) or (steps,) of positive integers")
        if "vocab_size" in task.info and len(shape) != 1:
            raise ConfigError(f"family {self.name!r}: token task {task.name!r} (vocab_size) must have "
                              f"sequence_shape (steps,), got {shape!r}")
        return shape

    # -- model -----------------------------------------------------------------------
    def build(self, config: RNNConfig, task: Task):
        """A :class:`nasforge_rnn.model.RecurrentNet`, or for ``cell="enas"`` an
        :class:`nasforge_rnn.enas_cell.ENASCellNet`; weights follow ``config.init``."""
        from nasforge.training import init_weights
        from nasforge_rnn.model import RecurrentNet

        shape = self.check_sequence_task(task)
        if config.cell == ENAS_CELL:
            from nasforge_rnn.enas_cell import ENASCellNet

            model = ENASCellNet(
                sequence_shape=shape, hidden_size=config.hidden_size, first_activation=config.enas_activation,
                nodes=[(n.input, n.activation) for n in config.nodes],
                n_outputs=task.n_classes if task.kind == "classification" else 1,
                vocab_size=task.info.get("vocab_size"), embedding_dim=config.embedding_dim)
            return init_weights(model, config.init)
        model = RecurrentNet(
            cell=config.cell, sequence_shape=shape, hidden_size=config.hidden_size, n_layers=config.n_layers,
            bidirectional=config.bidirectional, dropout=config.dropout,
            n_outputs=task.n_classes if task.kind == "classification" else 1,
            vocab_size=task.info.get("vocab_size"), embedding_dim=config.embedding_dim)
        return init_weights(model, config.init)

    def supernet(self, space, task: Task):
        """Every ENAS cell of ``space`` with ENAS's sharing (one matrix per pair of nodes); see
        :mod:`nasforge_rnn.enas_cell`. The space must fix ``cell: enas`` and the training settings."""
        from nasforge_rnn.enas_cell import build_supernet

        return build_supernet(space, task, family=self)

    # -- training --------------------------------------------------------------------
    def fit(self, model, task: Task, config: RNNConfig, budget: Mapping[str, Any],
            reporter: Reporter) -> dict[str, float]:
        """Train for up to ``budget["epochs"]`` epochs, reporting after each (step = epoch).

        Minibatch order comes from a generator seeded with ``torch.initial_seed()``. Raises
        ``FloatingPointError`` when a loss becomes NaN or infinite. Returns the validation
        metrics of the restored best epoch plus ``epochs_trained``.
        """
        from nasforge import training

        epochs = self.budget_amount(budget)
        self.check_sequence_task(task)
        device = training.pick_device()
        model.to(device)
        train, val = (training.load_split(task, split, device) for split in ("train", "val"))
        optimizer = training.make_optimizer(config.optimizer, model.parameters(), lr=config.lr,
                                            momentum=config.momentum, weight_decay=config.weight_decay)
        generator = training.seeded_generator()
        loss_fn = self._loss_fn(task)

        def train_one_epoch(epoch: int) -> float:
            # gradients clipped after backpropagation through time (Pascanu, Mikolov & Bengio, 2013)
            return training.train_batches(model, optimizer, loss_fn, train.batches(config.batch_size, generator),
                                          clip=config.clip, clip_value=config.clip_value,
                                          forward=lambda x: model(x, tbptt_steps=config.tbptt_steps)).item()

        return training.fit_epochs(model, epochs=epochs, reporter=reporter, train_one_epoch=train_one_epoch,
                                   validate=lambda: self._metrics(task, *val.predict(model), "val"),
                                   patience=config.patience, optimizer=optimizer)

    def evaluate(self, model, task: Task, split: str = "test") -> dict[str, float]:
        """``{split}_accuracy, {split}_loss`` or ``{split}_rmse, {split}_r2, {split}_loss`` (MSE)."""
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
