"""Small torch helpers shared by the families' training loops.

Data that fits in memory is moved to the device once (:func:`to_tensors`, :func:`load_split`)
and mini-batches are index slices of a seeded permutation (:func:`iterate_minibatches`) rather
than a ``DataLoader``. Inputs that stay on disk (:class:`nasforge.data.streams.RowSource`) are
read a batch at a time by a ``DataLoader`` with the source's ``num_workers`` (:class:`StreamSplit`),
in the same seeded order. Loops accumulate losses as tensors and synchronise once per epoch
(:func:`train_batches`).

This module imports torch at the top: import it inside trials only, never from
``nasforge/__init__.py``.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch
import torch.utils.data
from torch import nn

from nasforge.data.streams import is_stream
from nasforge.errors import ConfigError

SPLITS = ("train", "val", "test")

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "selu": nn.SELU,
    "silu": nn.SiLU,
}

OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta", "rmsprop", "adagrad")
INITS = ("default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "orthogonal")
CLIP_MODES = ("none", "norm", "value")


def choices_error(field: str, value: object, valid: Iterable[str]) -> ConfigError:
    """A :class:`ConfigError` naming the field, the bad value and the valid choices."""
    return ConfigError(f"{field}={value!r} is not valid; choose one of: {', '.join(valid)}")


# -- devices and data ------------------------------------------------------------------
def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else ``$NASFORGE_DEVICE``, else CUDA when available, else CPU."""
    device = device or os.environ.get("NASFORGE_DEVICE")
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True, kw_only=True)
class TensorSplits:
    """A task's splits as tensors on one device; ``None`` where the task has no such split."""

    x_train: torch.Tensor | None = None
    y_train: torch.Tensor | None = None
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; valid: {', '.join(SPLITS)}")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")


def to_tensors(task, device: torch.device | str, splits: Iterable[str] = SPLITS) -> TensorSplits:
    """Move ``task``'s splits to ``device`` once.

    Inputs become float32; targets int64 class indices (shape ``(n,)``) for
    classification, float32 otherwise, one column per target: a 1-D regression target
    ``(n,)`` becomes ``(n, 1)``, so it never broadcasts against a model's ``(n, 1)`` output.
    """
    out = {}
    for name in splits:
        x, y = task.split(name)
        if is_stream(x):
            raise ConfigError(f"task {task.name!r}: its {name} inputs stay on disk ({len(x)} rows); this family "
                              "loads whole splits into memory (use a family that streams, or load the data)")
        if x is not None:
            out[f"x_{name}"] = inputs_tensor(x, device)
        if y is not None:
            out[f"y_{name}"] = targets_tensor(y, task.kind, device)
    return TensorSplits(**out)


def inputs_tensor(x, device: torch.device | str | None = None) -> torch.Tensor:
    """Inputs as float32 on ``device``, sharing the array's memory where they can."""
    with warnings.catch_warnings():   # arrays from Ray's object store are read-only: shared, never written here
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(x, dtype=torch.float32, device=device)


def targets_tensor(y, kind: str, device: torch.device | str | None = None) -> torch.Tensor:
    """Class indices ``(n,)`` int64 for classification; float32 ``(n, k)`` (k >= 1) otherwise."""
    if kind == "classification":
        return torch.as_tensor(y, dtype=torch.int64, device=device).reshape(-1)
    target = torch.as_tensor(y, dtype=torch.float32, device=device)
    return target.reshape(len(target), -1)


class TensorSplit:
    """One split in memory on the device: mini-batches are index slices of a seeded permutation."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """A shuffled epoch of ``(x, y)`` mini-batches (the last one may be smaller)."""
        for idx in iterate_minibatches(len(self.x), batch_size, generator, device=self.x.device):
            yield self.x[idx], self.y[idx]

    def predict(self, model: nn.Module, *, forward: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's outputs over the whole split, in eval mode, and the split's targets."""
        return predict(model, self.x, forward=forward), self.y


class StreamSplit:
    """One split read from disk a batch at a time by a ``DataLoader`` (``x`` a RowSource, ``y`` in memory).

    Each epoch draws a permutation from the family's generator, as :class:`TensorSplit` does, and
    reads each batch's rows in file order, the order :func:`iterate_minibatches` gives them in
    memory: a streamed split trains on exactly the batches it would in memory, dropout masks
    included. A thread reads the batches one step ahead, or the DataLoader's ``num_workers``
    processes do.
    """

    def __init__(self, x, y: torch.Tensor, device: torch.device | str):
        self.x, self.y, self.device = x, y.cpu(), torch.device(device)

    def __len__(self) -> int:
        return len(self.x)

    def _loader(self, order: torch.Tensor, batch_size: int):
        """Batches in ``order``: from DataLoader worker processes, or (``num_workers=0``) read by a
        thread of this process one step ahead of the training (reads release the GIL)."""
        batches = _RowBatches(self.x, self.y, order, batch_size)
        workers = int(getattr(self.x, "num_workers", 0))
        if workers == 0:
            return _read_ahead(batches)
        from torch.utils.data import DataLoader

        return DataLoader(batches, batch_size=None, shuffle=False, num_workers=workers, prefetch_factor=4,
                          pin_memory=self.device.type == "cuda")

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.x), generator=generator)
        for x, y in self._loader(order, batch_size):
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    @torch.no_grad()
    def predict(self, model: nn.Module, *, forward: Callable | None = None,
                chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
        was_training = model.training
        model.eval()
        outputs, targets = [], []
        try:
            for x, y in self._loader(torch.arange(len(self.x)), chunk):
                x = x.to(self.device, non_blocking=True)
                outputs.append(model(x) if forward is None else forward(x))
                targets.append(y.to(self.device, non_blocking=True))
        finally:
            model.train(was_training)
        return torch.cat(outputs), torch.cat(targets)


class _RowBatches(torch.utils.data.Dataset):
    """Batch ``i`` of a fixed order over a RowSource: ``(x rows, y rows)`` as tensors."""

    def __init__(self, x, y: torch.Tensor, order: torch.Tensor, batch_size: int):
        self.x, self.y, self.order, self.batch_size = x, y, order, batch_size

    def __len__(self) -> int:
        return (len(self.order) + self.batch_size - 1) // self.batch_size

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.order[i * self.batch_size:(i + 1) * self.batch_size].sort().values
        return torch.from_numpy(self.x.read(rows.numpy())), self.y[rows]


def _read_ahead(batches, depth: int = 4) -> Iterator:
    """``batches[0], batches[1], ...`` read by a background thread up to ``depth`` ahead.

    Stops reading when the consumer stops (an early-stopped or pruned epoch); a read error is
    raised in the consumer.
    """
    import queue
    import threading

    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def read() -> None:
        try:
            for i in range(len(batches)):
                item = batches[i]
                while not stop.is_set():
                    try:
                        ready.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer
            ready.put(exc)
            return
        ready.put(end)

    thread = threading.Thread(target=read, name="nasforge-read-ahead", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not end:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def load_split(task, split: str, device: torch.device | str) -> TensorSplit | StreamSplit:
    """One split of ``task`` for training or evaluation: on the device, or streamed when it stays on disk."""
    x, y = task.split(split)
    if is_stream(x):
        return StreamSplit(x, targets_tensor(y, task.kind), device)
    return TensorSplit(inputs_tensor(x, device), targets_tensor(y, task.kind, device))


def seeded_generator(seed: int | None = None) -> torch.Generator:
    """A CPU generator seeded with ``seed`` or, by default, the caller's ``torch.manual_seed``."""
    return torch.Generator().manual_seed(torch.initial_seed() if seed is None else seed)


def iterate_minibatches(n: int, batch_size: int, generator: torch.Generator, *,
                        device: torch.device | str | None = None) -> Iterator[torch.Tensor]:
    """Index tensors of a shuffled epoch over ``n`` samples; the last batch may be smaller.

    Each batch's indices are in ascending order: the same minibatches as the permutation's slices,
    gathered in memory order, and exactly the rows in the order a streamed split reads them from
    disk (:class:`StreamSplit`), so dropout masks meet the same rows either way.
    """
    order = torch.randperm(n, generator=generator)
    if device is not None:
        order = order.to(device)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size].sort().values


# -- optimisation ----------------------------------------------------------------------
def make_optimizer(name: str, params, *, lr: float, momentum: float = 0.0,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """An optimizer by name. ``momentum`` is used by sgd (Nesterov off) and rmsprop only.

    ``lr`` is passed through unchanged, including to adadelta (Zeiler 2012), whose
    usual value is 1.0: with a small ``lr`` it learns slowly, which a search will see.
    """
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay)
    raise choices_error("optimizer", name, OPTIMIZERS)


def clip_gradients(model: nn.Module, mode: str, value: float) -> None:
    """Clip gradients in place: ``"none"``, ``"norm"`` (global L2 norm) or ``"value"`` (elementwise)."""
    if mode == "none":
        return
    if mode == "norm":
        nn.utils.clip_grad_norm_(model.parameters(), value)
    elif mode == "value":
        nn.utils.clip_grad_value_(model.parameters(), value)
    else:
        raise choices_error("clip", mode, CLIP_MODES)


_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
             nn.ConvTranspose3d)
_RECURRENT = (nn.RNN, nn.LSTM, nn.GRU)


def _init_tensor(weight: torch.Tensor, scheme: str) -> None:
    if scheme == "xavier_uniform":      # Glorot & Bengio (2010)
        nn.init.xavier_uniform_(weight)
    elif scheme == "xavier_normal":
        nn.init.xavier_normal_(weight)
    elif scheme == "kaiming_uniform":   # He et al. (2015), gain for ReLU
        nn.init.kaiming_uniform_(weight, nonlinearity="relu")
    elif scheme == "kaiming_normal":
        nn.init.kaiming_normal_(weight, nonlinearity="relu")
    elif scheme == "orthogonal":        # Saxe et al. (2014)
        nn.init.orthogonal_(weight)


def init_weights(module: nn.Module, scheme: str) -> nn.Module:
    """Re-initialise the weights of linear, convolutional and recurrent layers; biases to zero.

    ``"default"`` keeps PyTorch's own initialisation. Xavier/Glorot scales by fan-in and
    fan-out (Glorot & Bengio, 2010); Kaiming/He uses the ReLU gain (He et al., 2015).
    Returns ``module`` for chaining.
    """
    if scheme not in INITS:
        raise choices_error("init", scheme, INITS)
    if scheme == "default":
        return module
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, _WEIGHTED):
                _init_tensor(layer.weight, scheme)
                if layer.bias is not None:
                    layer.bias.zero_()
            elif isinstance(layer, _RECURRENT):
                for name, param in layer.named_parameters():
                    if name.startswith("weight"):
                        _init_tensor(param, scheme)
                    elif name.startswith("bias"):
                        param.zero_()
    return module


def count_params(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# -- loops -----------------------------------------------------------------------------
def train_batches(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn, batches, *,
                  clip: str = "none", clip_value: float = 1.0, forward: Callable | None = None) -> torch.Tensor:
    """One pass over ``batches`` of ``(x, y)``; returns the sample-weighted mean loss as a tensor.

    ``forward(x)`` replaces ``model(x)`` (e.g. truncated BPTT). Nothing here synchronises with
    the device: call ``.item()`` on the result once.
    """
    model.train()
    total, count = None, 0
    for x, y in batches:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x) if forward is None else forward(x), y)
        loss.backward()
        clip_gradients(model, clip, clip_value)
        optimizer.step()
        total = loss.detach() * len(x) if total is None else total + loss.detach() * len(x)
        count += len(x)
    if total is None:
        raise ValueError("an epoch of no batches: the train split is empty")
    return total / count


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn, x: torch.Tensor,
                y: torch.Tensor, *, batch_size: int, generator: torch.Generator,
                clip: str = "none", clip_value: float = 1.0) -> torch.Tensor:
    """One shuffled pass over in-memory ``(x, y)``; see :func:`train_batches`."""
    return train_batches(model, optimizer, loss_fn, TensorSplit(x, y).batches(batch_size, generator),
                         clip=clip, clip_value=clip_value)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, *, chunk: int = 8192, forward: Callable | None = None) -> torch.Tensor:
    """Outputs of ``model`` (or ``forward``) in eval mode over ``x``, in chunks of ``chunk`` rows."""
    was_training = model.training
    model.eval()
    call = model if forward is None else forward
    try:
        return torch.cat([call(x[i:i + chunk]) for i in range(0, len(x), chunk)])
    finally:
        model.train(was_training)


def classification_metrics(logits: torch.Tensor, y: torch.Tensor, *, prefix: str) -> dict[str, float]:
    """``{prefix}_loss`` (mean cross-entropy) and ``{prefix}_accuracy``."""
    loss = nn.functional.cross_entropy(logits, y)
    accuracy = (logits.argmax(dim=1) == y).float().mean()
    loss, accuracy = torch.stack([loss, accuracy]).tolist()
    return {f"{prefix}_accuracy": accuracy, f"{prefix}_loss": loss}


def regression_metrics(pred: torch.Tensor, y: torch.Tensor, *, prefix: str) -> dict[str, float]:
    """``{prefix}_rmse``, ``{prefix}_r2`` (against the split's own mean) and ``{prefix}_loss`` (MSE)."""
    mse = nn.functional.mse_loss(pred, y)
    total = ((y - y.mean(dim=0)) ** 2).mean()
    mse, total = torch.stack([mse, total]).tolist()
    r2 = 1.0 - mse / total if total > 0 else float("nan")
    return {f"{prefix}_rmse": math.sqrt(mse), f"{prefix}_r2": r2, f"{prefix}_loss": mse}


def check_finite(value: float, *, what: str = "loss", epoch: int) -> None:
    """Raise ``FloatingPointError("loss is nan at epoch N")`` for a NaN or infinite value."""
    if not math.isfinite(value):
        raise FloatingPointError(f"{what} is {value} at epoch {epoch}")


class EarlyStopping:
    """Stop when the validation loss has not improved for ``patience`` epochs (Prechelt, 1998).

    Keeps a copy of the best ``state_dict``; :meth:`restore` loads it back. With
    ``patience=None`` it never stops but still remembers the best weights.

    Example::

        stopper = EarlyStopping(patience=5)
        for epoch in range(1, epochs + 1):
            ...
            if stopper.step(val_loss, model, epoch=epoch):
                break
        stopper.restore(model)
    """

    def __init__(self, *, patience: int | None, min_delta: float = 0.0):
        self.patience = patience
        self.min_delta = min_delta
        self.best_loss = math.inf
        self.best_epoch = 0
        self.bad_epochs = 0
        self._best_state: dict[str, torch.Tensor] | None = None

    def step(self, val_loss: float, model: nn.Module, *, epoch: int) -> bool:
        """Record an epoch's validation loss; ``True`` when training should stop."""
        if val_loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_epoch, self.bad_epochs = val_loss, epoch, 0
            self._best_state = copy.deepcopy(model.state_dict())
            return False
        self.bad_epochs += 1
        return self.patience is not None and self.bad_epochs >= self.patience

    def restore(self, model: nn.Module) -> nn.Module:
        """Load the best weights seen into ``model`` (a no-op before the first :meth:`step`)."""
        if self._best_state is not None:
            model.load_state_dict(self._best_state)
        return model

    def state_dict(self) -> dict:
        return {"best_loss": self.best_loss, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
                "best_state": self._best_state}

    def load_state_dict(self, state: dict) -> None:
        self.best_loss, self.best_epoch = float(state["best_loss"]), int(state["best_epoch"])
        self.bad_epochs, self._best_state = int(state["bad_epochs"]), state["best_state"]


def fit_epochs(model: nn.Module, *, epochs: int, reporter, train_one_epoch: Callable[[int], float],
               validate: Callable[[], dict[str, float]], patience: int | None,
               monitor: str = "val_loss", keep_best: bool = True,
               optimizer: torch.optim.Optimizer | None = None) -> dict[str, float]:
    """The epoch loop every supervised family shares: train, validate, report, stop early.

    Each epoch runs ``train_one_epoch(epoch)`` (the mean training loss), then ``validate()``
    (metrics with a ``val_`` prefix, ``monitor`` among them), and reports both at
    step = epoch (where a pruner may stop the trial). Early stopping on ``monitor``
    (Prechelt, 1998) keeps the best weights and restores them at the end; ``keep_best=False``
    trains the whole budget and keeps the last weights. Raises ``FloatingPointError`` when
    a loss becomes NaN or infinite. Returns the metrics of the kept epoch and ``epochs_trained``.

    With ``optimizer`` given, the loop checkpoints through the reporter: it resumes from
    ``reporter.load_checkpoint()`` (weights, optimizer state, epoch, early-stopping state; the
    optimizer keeps the hyperparameters it was built with, which PBT may have changed) and
    saves before each report for which ``reporter.checkpoint_due(epoch)``.
    """
    stopper = EarlyStopping(patience=patience) if keep_best else None
    kept: dict[str, float] = {}
    start = 0
    state = reporter.load_checkpoint() if optimizer is not None else None
    if state is not None:
        start, kept = restore_training_state(state, model=model, optimizer=optimizer, stopper=stopper)
    epoch = start
    for epoch in range(start + 1, epochs + 1):
        train_loss = float(train_one_epoch(epoch))
        check_finite(train_loss, epoch=epoch)
        metrics = {"train_loss": train_loss, **validate()}
        check_finite(metrics[monitor], what=f"validation {monitor.removeprefix('val_')}", epoch=epoch)
        stop = False
        if stopper is None:
            kept = metrics
        else:
            stop = stopper.step(metrics[monitor], model, epoch=epoch)
            if stopper.best_epoch == epoch:
                kept = metrics
        if optimizer is not None and reporter.checkpoint_due(epoch):
            reporter.save_checkpoint(training_state(epoch, model=model, optimizer=optimizer, stopper=stopper,
                                                    kept=kept))
        reporter.report(epoch, metrics)
        if stop:
            break
    if stopper is not None:
        stopper.restore(model)
    return {**kept, "epochs_trained": epoch}


def training_state(epoch: int, *, model: nn.Module, optimizer: torch.optim.Optimizer,
                   stopper: EarlyStopping | None, kept: dict[str, float]) -> dict:
    """What :func:`fit_epochs` needs to resume after ``epoch`` (torch-saveable, ``weights_only``-loadable)."""
    return {"epoch": epoch, "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "optimizer": copy.deepcopy(optimizer.state_dict()),
            "stopper": stopper.state_dict() if stopper is not None else None, "kept": dict(kept)}


def restore_training_state(state: dict, *, model: nn.Module, optimizer: torch.optim.Optimizer,
                           stopper: EarlyStopping | None) -> tuple[int, dict[str, float]]:
    """Load a :func:`training_state` into ``model``, ``optimizer`` and ``stopper``; return (epoch, kept).

    The optimizer's hyperparameters (lr, weight decay, momentum...) stay those it was built
    with from the current config: the checkpoint brings only its running state (moments, steps).
    """
    model.load_state_dict(state["model"])
    current = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    optimizer.load_state_dict(state["optimizer"])
    for group, values in zip(optimizer.param_groups, current):
        group.update(values)
    if stopper is not None and state.get("stopper") is not None:
        stopper.load_state_dict(state["stopper"])
    return int(state["epoch"]), dict(state.get("kept") or {})
