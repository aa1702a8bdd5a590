"""The convolutional family: 1-D or 2-D conv blocks, a flatten and a linear or dense head."""

from __future__ import annotations

import math
from typing import Any, Mapping

from nasforge.family import Family, Reporter
from nasforge.data.tasks import Task
from nasforge_cnn.config import CNNConfig
from nasforge_cnn.shapes import input_layout, plan_blocks


class CNNFamily(Family):
    """Convolutional networks for images (``Conv2d``) and 1-D signals (``Conv1d``).

    ``[Conv -> BatchNorm? -> activation -> pool? -> Dropout?] * n -> Flatten ->
    [Linear -> activation -> Dropout]? -> Linear`` logits, trained on cross-entropy
    (softmax over the logits) with early stopping on the validation loss and the best
    weights restored (Prechelt, 1998). Convolutional layers with pooling follow LeCun et
    al. (1998); batch normalisation sits between the convolution and the activation as in
    Ioffe & Szegedy (2015). The 1-D variant is the model class of the MNIST-1D paper
    (Greydanus, 2020), whose CNN reaches 94% test accuracy.

    The task picks the variant: ``task.info["image_shape"] = (C, H, W)`` gives 2-D
    convolutions, ``task.info["signal_shape"] = (C, L)`` 1-D ones; inputs stay flat in
    the task and are unflattened by the model's first layer. Kernels and pooling windows
    that would not fit the remaining spatial size are clamped (see
    :mod:`nasforge_cnn.shapes`), and ``model.notes`` lists what was adjusted.

    Example::

        import torch
        from nasforge.family import NullReporter
        from nasforge.data.builtin_tasks import load_digits_task
        from nasforge_cnn import CNNFamily

        family, task = CNNFamily(), load_digits_task(seed=0)
        config = family.make_config({"blocks": [{"filters": 16}, {"filters": 32}], "lr": 3e-3})
        torch.manual_seed(0)
        model = family.build(config, task)
        family.fit(model, task, config, {"epochs": 10}, NullReporter())
        family.evaluate(model, task)          # {"test_accuracy": ..., "test_loss": ...}
    """

    name = "cnn"
    task_kinds = ("classification",)
    config_class = CNNConfig
    default_space = "cnn"
    default_task = "digits"
    budget_unit = "epochs"
    default_budget = 20
    supports_checkpoints = True   # training.fit_epochs(optimizer=...) saves and resumes
    data_layouts = ("image", "signal")   # (C, H, W) images, (C, L) signals
    supports_streaming = True     # training.load_split reads inputs that stay on disk
    predicts_target = True        # forward() gives logits / the value: results predict and serve it
    training_hyperparameters = ("lr", "momentum", "weight_decay", "clip_value")
    supports_weight_sharing = True   # supernet(): ENAS's macro space (strategy="enas" / "rsws")
    supernet_space = "cnn_enas"
    supports_darts = True          # supernet().mixed: DARTS's relaxation (strategy="darts")
    darts_space = "cnn_darts"      # cnn_enas without 'no pooling' (its output size differs)

    def metrics(self, task: Task) -> dict[str, str]:
        """Validation accuracy and loss.

        Also checks that the task lays its inputs out as images or signals: the search
        spec calls this with the loaded task before any trial, so an unsuitable task
        stops there with a :class:`ConfigError` naming the family and the task.
        """
        self.check_layout(task)
        return {"val_accuracy": "maximize", "val_loss": "minimize"}

    def check_layout(self, task: Task) -> tuple[int, ...]:
        """The task's kind and ``(C, H, W)`` / ``(C, L)`` layout, or a :class:`ConfigError`."""
        self.check_task(task.name, task.kind)
        return input_layout(task, family=self.name)

    # -- model -----------------------------------------------------------------------
    def build(self, config: CNNConfig, task: Task):
        """An ``nn.Sequential`` from flat inputs ``(N, prod(shape))`` to logits ``(N, n_classes)``.

        Weights follow ``config.init``; seed torch before calling for reproducibility.
        """
        from collections import OrderedDict

        from torch import nn

        from nasforge.training import ACTIVATIONS, init_weights

        layout = self.check_layout(task)
        plans = plan_blocks(config.blocks, layout)
        two_d = len(layout) == 3
        conv, norm = (nn.Conv2d, nn.BatchNorm2d) if two_d else (nn.Conv1d, nn.BatchNorm1d)
        zero_pad = nn.ZeroPad2d if two_d else nn.ZeroPad1d
        pools = {"max": nn.MaxPool2d if two_d else nn.MaxPool1d, "avg": nn.AvgPool2d if two_d else nn.AvgPool1d}

        layers: OrderedDict[str, nn.Module] = OrderedDict(unflatten=nn.Unflatten(1, layout))
        for i, (block, plan) in enumerate(zip(config.blocks, plans)):
            parts: OrderedDict[str, nn.Module] = OrderedDict()
            symmetric = all(before == after for before, after in plan.pad)
            if not symmetric:  # last axis first: (left, right[, top, bottom])
                parts["pad"] = zero_pad(tuple(p for pair in reversed(plan.pad) for p in pair))
            padding = tuple(before for before, _ in plan.pad) if symmetric else 0
            parts["conv"] = conv(plan.in_shape[0], block.filters, plan.kernel, stride=block.stride,
                                 padding=padding, bias=not block.batch_norm)  # BN's shift replaces the bias
            if block.batch_norm:
                parts["norm"] = norm(block.filters)
            parts["act"] = ACTIVATIONS[block.activation]()
            if plan.pool is not None:
                parts["pool"] = pools[block.pool](plan.pool, stride=plan.pool)
            if block.dropout > 0:
                parts["dropout"] = nn.Dropout(block.dropout)
            layers[f"block{i}"] = nn.Sequential(parts)
        layers["flatten"] = nn.Flatten()
        width = plans[-1].out_shape[0] * math.prod(plans[-1].out_shape[1:])
        if config.head == "dense":
            layers["dense"] = nn.Linear(width, config.dense_units)
            layers["dense_act"] = ACTIVATIONS[config.dense_activation]()
            if config.dense_dropout > 0:
                layers["dense_dropout"] = nn.Dropout(config.dense_dropout)
            width = config.dense_units
        layers["logits"] = nn.Linear(width, task.n_classes)
        model = init_weights(nn.Sequential(layers), config.init)
        model.notes = tuple(note for plan in plans for note in plan.notes)
        return model

    def supernet(self, space, task: Task):
        """Every CNN of ``space`` in one module with shared weights; see :mod:`nasforge_cnn.cnn_supernet`.

        Holds depth (``n_blocks``), every block field (one convolution per block: filters as slices of
        the widest, kernel sizes as the centre of the largest) and the head; a space that varies a
        training setting is refused.
        """
        from nasforge_cnn.cnn_supernet import build_supernet

        return build_supernet(space, task, family=self)

    # -- training --------------------------------------------------------------------
    def fit(self, model, task: Task, config: CNNConfig, budget: Mapping[str, Any],
            reporter: Reporter) -> dict[str, float]:
        """Train for up to ``budget["epochs"]`` epochs, reporting after each (step = epoch).

        Minibatch order comes from a generator seeded with ``torch.initial_seed()``, so
        the caller's ``torch.manual_seed`` governs the whole run. Raises
        ``FloatingPointError`` when the loss becomes NaN or infinite. Returns the
        validation metrics of the restored best epoch plus ``epochs_trained``.
        """
        from torch import nn

        from nasforge import training

        epochs = self.budget_amount(budget)
        device = training.pick_device()
        model.to(device)
        train, val = (training.load_split(task, split, device) for split in ("train", "val"))
        optimizer = training.make_optimizer(config.optimizer, model.parameters(), lr=config.lr,
                                            momentum=config.momentum, weight_decay=config.weight_decay)
        generator = training.seeded_generator()

        def train_one_epoch(epoch: int) -> float:
            return training.train_batches(model, optimizer, nn.functional.cross_entropy,
                                          train.batches(config.batch_size, generator), clip=config.clip,
                                          clip_value=config.clip_value).item()

        return training.fit_epochs(model, epochs=epochs, reporter=reporter, train_one_epoch=train_one_epoch,
                                   validate=lambda: self._metrics(*val.predict(model), "val"),
                                   patience=config.patience, optimizer=optimizer)

    def evaluate(self, model, task: Task, split: str = "test") -> dict[str, float]:
        """``{split}_accuracy`` and ``{split}_loss`` (mean cross-entropy)."""
        from nasforge.training import load_split

        device = next(model.parameters()).device
        return self._metrics(*load_split(task, split, device).predict(model), split)

    # -- helpers ---------------------------------------------------------------------
    @staticmethod
    def _metrics(out, y, prefix: str) -> dict[str, float]:
        from nasforge.training import classification_metrics

        return classification_metrics(out, y, prefix=prefix)
