"""Configuration of the CNN family: one :class:`BlockConfig` per convolutional block.

Validation runs in ``__post_init__`` and never imports torch, so a bad configuration
stops with a :class:`ConfigError` naming the field, the value and the valid choices
before anything is built or trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nasforge.checks import check_bool, check_choice, check_int, check_number, check_part, check_training, fail

# Kept in step with nasforge.training (which imports torch); a test checks they agree.
ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "selu", "silu")
OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta", "rmsprop", "adagrad")
INITS = ("default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "orthogonal")
CLIP_MODES = ("none", "norm", "value")
POOLS = ("max", "avg", "none")
PADDINGS = ("same", "valid")      # or a non-negative integer (zeros on each side)
HEADS = ("linear", "dense")


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
        check_int(f"{where}.filters", self.filters, low=1)
        check_int(f"{where}.kernel_size", self.kernel_size, low=1)
        check_int(f"{where}.stride", self.stride, low=1)
        integer = isinstance(self.padding, int) and not isinstance(self.padding, bool)
        if not (self.padding in PADDINGS if isinstance(self.padding, str) else integer and self.padding >= 0):
            raise fail(f"{where}.padding", self.padding,
                        f"choose one of: {', '.join(PADDINGS)}, or an integer >= 0")
        check_choice(f"{where}.activation", self.activation, ACTIVATIONS)
        check_choice(f"{where}.pool", self.pool, POOLS)
        check_int(f"{where}.pool_size", self.pool_size, low=1)
        check_bool(f"{where}.batch_norm", self.batch_norm)
        check_number(f"{where}.dropout", self.dropout, low=0.0, high=1.0, high_open=True)


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
            raise fail("blocks", self.blocks, "expected a non-empty list of blocks "
                        f"(fields: {', '.join(BLOCK_FIELDS)})")
        self.blocks = [check_part(f"blocks[{i}]", block, BlockConfig, BLOCK_FIELDS)
                       for i, block in enumerate(self.blocks)]
        if self.n_blocks is not None:
            check_int("n_blocks", self.n_blocks, low=1)
            if self.n_blocks != len(self.blocks):
                raise fail("n_blocks", self.n_blocks, f"it must equal len(blocks) = {len(self.blocks)}")
        check_choice("head", self.head, HEADS)
        check_int("dense_units", self.dense_units, low=1)
        check_choice("dense_activation", self.dense_activation, ACTIVATIONS)
        check_number("dense_dropout", self.dense_dropout, low=0.0, high=1.0, high_open=True)
        check_training(self, optimizers=OPTIMIZERS, inits=INITS, clip_modes=CLIP_MODES)
