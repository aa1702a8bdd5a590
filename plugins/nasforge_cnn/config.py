"""Configuration of the CNN family: one :class:`BlockConfig` per convolutional block.

Validation runs in ``__post_init__`` and never imports torch, so a bad configuration
stops with a :class:`ConfigError` naming the field, the value and the valid choices
before anything is built or trained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from nasforge.errors import ConfigError

# Kept in step with nasforge.training (which imports torch); a test checks they agree.
ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "selu", "silu")
OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta", "rmsprop", "adagrad")
INITS = ("default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "orthogonal")
CLIP_MODES = ("none", "norm", "value")
POOLS = ("max", "avg", "none")
PADDINGS = ("same", "valid")      # or a non-negative integer (zeros on each side)
HEADS = ("linear", "dense")


def _fail(field_name: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{field_name}={value!r} is not valid; {expected}")


def _check_choice(field_name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise _fail(field_name, value, f"choose one of: {', '.join(choices)}")


def _check_int(field_name: str, value: Any, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _fail(field_name, value, f"expected an integer >= {low}")


def _check_bool(field_name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise _fail(field_name, value, "expected true or false")


def _check_number(field_name: str, value: Any, *, low: float, high: float = math.inf,
                  low_open: bool = False, high_open: bool = False) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open or high == math.inf else ']'}"
        raise _fail(field_name, value, f"expected a finite number in {interval}")


@dataclass(kw_only=True)
class BlockConfig:
    """One block: ``Conv -> [BatchNorm] -> activation -> [pool] -> [Dropout]``.

    ``padding="same"`` keeps ``ceil(size / stride)`` positions (TensorFlow's rule, zeros
    split evenly with the extra one at the end); ``"valid"`` pads nothing; an integer pads
    that many zeros on each side. Pooling windows are ``pool_size`` wide with stride
    ``pool_size`` (non-overlapping).
    """

    filters: int = 32            # output channels
    kernel_size: int = 3         # the smallest kernel with a centre (Simonyan & Zisserman, 2015)
    stride: int = 1
    padding: str | int = "same"  # keeps the spatial size, so depth does not eat small inputs
    activation: str = "relu"     # ReLU (Nair & Hinton, 2010), the usual CNN non-linearity
    pool: str = "max"            # max pooling halves the size at pool_size 2
    pool_size: int = 2
    batch_norm: bool = False     # before the activation, as in Ioffe & Szegedy (2015)
    dropout: float = 0.0         # element-wise, after pooling; off by default

    def validate(self, where: str) -> None:
        _check_int(f"{where}.filters", self.filters, low=1)
        _check_int(f"{where}.kernel_size", self.kernel_size, low=1)
        _check_int(f"{where}.stride", self.stride, low=1)
        integer = isinstance(self.padding, int) and not isinstance(self.padding, bool)
        if not (self.padding in PADDINGS if isinstance(self.padding, str) else integer and self.padding >= 0):
            raise _fail(f"{where}.padding", self.padding,
                        f"choose one of: {', '.join(PADDINGS)}, or an integer >= 0")
        _check_choice(f"{where}.activation", self.activation, ACTIVATIONS)
        _check_choice(f"{where}.pool", self.pool, POOLS)
        _check_int(f"{where}.pool_size", self.pool_size, low=1)
        _check_bool(f"{where}.batch_norm", self.batch_norm)
        _check_number(f"{where}.dropout", self.dropout, low=0.0, high=1.0, high_open=True)


BLOCK_FIELDS = ("filters", "kernel_size", "stride", "padding", "activation", "pool", "pool_size",
                "batch_norm", "dropout")


@dataclass(kw_only=True)
class CNNConfig:
    """Configuration of a :class:`~nasforge_cnn.CNNFamily` model and its training.

    ``blocks`` takes dicts (as sampled from a search space) or :class:`BlockConfig`.
    ``n_blocks``, when given, must equal ``len(blocks)`` (the space's repeat count).
    ``head="dense"`` puts one hidden ``Linear(dense_units) -> activation -> Dropout``
    between the flattened features and the logits; ``"linear"`` maps features to logits.
    """

    blocks: list[BlockConfig] = field(default_factory=lambda: [BlockConfig(filters=16), BlockConfig(filters=32)])
    n_blocks: int | None = None   # only checked against len(blocks)
    head: str = "linear"          # features -> logits directly, like the MNIST-1D reference CNN
    dense_units: int = 128        # head="dense" only
    dense_activation: str = "relu"
    dense_dropout: float = 0.0
    optimizer: str = "adam"       # robust default across learning rates
    lr: float = 1e-3              # Adam's usual step size (Kingma & Ba, 2015)
    momentum: float = 0.9         # used by sgd and rmsprop only
    weight_decay: float = 0.0     # L2 penalty, off by default
    batch_size: int = 64
    init: str = "default"         # PyTorch's own init unless a scheme is chosen
    clip: str = "none"            # gradient clipping: none, norm (global L2) or value
    clip_value: float = 1.0
    patience: int | None = 5      # early stopping on val loss (Prechelt, 1998); None disables

    def __post_init__(self):
        if not isinstance(self.blocks, (list, tuple)) or not self.blocks:
            raise _fail("blocks", self.blocks, "expected a non-empty list of blocks "
                        f"(fields: {', '.join(BLOCK_FIELDS)})")
        self.blocks = [self._block(i, block) for i, block in enumerate(self.blocks)]
        if self.n_blocks is not None:
            _check_int("n_blocks", self.n_blocks, low=1)
            if self.n_blocks != len(self.blocks):
                raise _fail("n_blocks", self.n_blocks, f"it must equal len(blocks) = {len(self.blocks)}")
        _check_choice("head", self.head, HEADS)
        _check_int("dense_units", self.dense_units, low=1)
        _check_choice("dense_activation", self.dense_activation, ACTIVATIONS)
        _check_number("dense_dropout", self.dense_dropout, low=0.0, high=1.0, high_open=True)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_number("lr", self.lr, low=0.0, low_open=True)
        _check_number("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        _check_number("weight_decay", self.weight_decay, low=0.0)
        _check_int("batch_size", self.batch_size, low=1)
        _check_choice("init", self.init, INITS)
        _check_choice("clip", self.clip, CLIP_MODES)
        _check_number("clip_value", self.clip_value, low=0.0, low_open=True)
        if self.patience is not None:
            _check_int("patience", self.patience, low=1)

    @staticmethod
    def _block(i: int, block: Any) -> BlockConfig:
        where = f"blocks[{i}]"
        if isinstance(block, Mapping):
            unknown = sorted(set(block) - set(BLOCK_FIELDS))
            if unknown:
                raise ConfigError(f"{where} has no field {unknown[0]!r}; valid fields: {', '.join(BLOCK_FIELDS)}")
            block = BlockConfig(**block)
        if not isinstance(block, BlockConfig):
            raise _fail(where, block, f"expected a mapping with fields {', '.join(BLOCK_FIELDS)}")
        block.validate(where)
        return block
