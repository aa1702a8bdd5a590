"""The options of ``strategy="enas"`` / ``"rsws"`` / ``"darts"`` and the supernet phase's job, checked without torch.

The defaults are sized for a CPU and small data (MNIST-1D, digits): ENAS itself trained its CIFAR-10
supernet for 310 epochs with 2000 controller steps each on a GPU (Pham et al. 2018, Sec. 3.2);
``benchmarks/weight_sharing.py`` prints what these defaults buy.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from nasforge.errors import ConfigError
from nasforge.size_limit import SizeLimit

WEIGHT_SHARING = ("enas", "rsws", "darts")
# Study system attributes: the phase's picks (best first), and the pick each trial retrains.
TOP_ATTR, RANK_ATTR = "oneshot:top", "oneshot:rank"
CHANCE_ATTR = "oneshot:chance"   # the best path against ignoring the inputs (SupernetPhase.against_chance)
CHANCE_Z = 3.0   # standard errors by which the best path must beat the predictor that ignores its inputs
SHARED_OPTIMIZERS = ("sgd", "adam")
# Options only some strategies have; the others refuse them rather than ignore them.
CONTROLLER_ONLY = ("controller_lr", "entropy_weight", "baseline_decay", "controller_hidden_size")
SAMPLED_ONLY = ("controller_steps", "controller_batch", "eval_batch_size",   # enas, rsws: scored draws,
                "finalists", "finetune_epochs", "finetune_lr")                # ranked by their scores
DARTS_ONLY = ("arch_lr", "arch_weight_decay", "arch_order", "size_penalty", "arch_perturbation")
ARCH_ORDERS = (1, 2)
# float options with an upper bound: (whether a value is within it, how the error message says it)
UPPER_BOUNDS = {"baseline_decay": (lambda v: v < 1, " and < 1"), "shared_momentum": (lambda v: v < 1, " and < 1"),
                "arch_perturbation": (lambda v: v <= 1, " and <= 1 (noise on probabilities)")}
NOT_FOR = {"enas": DARTS_ONLY, "rsws": (*CONTROLLER_ONLY, "warmup_epochs", *DARTS_ONLY),
           "darts": (*CONTROLLER_ONLY, *SAMPLED_ONLY)}
WHY_NOT = {"enas": "it trains a controller by REINFORCE, not architecture parameters by gradient (strategy='darts' has)",
           "rsws": "it draws architectures uniformly and trains no controller (strategy='enas' has)",
           "darts": "it learns architecture parameters by gradient, one step per train minibatch, with no controller "
                    "and no scored draws, and ranks its picks by those parameters (strategy='enas' has)"}


@dataclass(frozen=True, kw_only=True)
class PhaseOptions:
    """What the supernet phase does; every field is a ``strategy_options`` key.

    ENAS (Pham et al. 2018, Sec. 2.2) alternates two phases each epoch: (a) one pass over the train
    split, each minibatch through an architecture drawn from the controller, updating the shared
    weights; (b) ``controller_steps`` REINFORCE updates of the controller, each on the rewards
    (shared-weight accuracy on a validation minibatch) of ``controller_batch`` drawn architectures.
    RS-WS (Li & Talwalkar 2019) does the same with uniform draws and no controller; it still scores
    the same number of drawn architectures per epoch, for its curves and an equal budget. Both end
    by scoring ``candidates`` draws (and, if asked, fine-tuning the ``finalists`` best). DARTS (Liu
    et al. 2019) trains the relaxed supernet instead, one step on ``alpha`` (a validation minibatch)
    before each weight step, with the shared weights' options and the ``arch_*`` ones.
    """

    supernet_epochs: int = 40           # passes of (a) over the train split
    warmup_epochs: int | None = None    # first epochs with uniform paths and no controller updates (enas; darts:
                                        # alpha left uniform); None: half the supernet epochs for enas, 0 for darts
    controller_steps: int = 5           # updates of (b) per epoch (ENAS: 2000, on far larger data)
    controller_batch: int = 10          # architectures per update (ENAS's code: 20)
    batch_size: int = 32                # shared-weight minibatch: each step trains one path, so small
                                        # data needs small batches for enough steps (ENAS: 128 on CIFAR)
    eval_batch_size: int = 256          # validation minibatch of one reward
    shared_optimizer: str = "sgd"       # ENAS: SGD, Nesterov momentum, cosine-annealed learning rate
    shared_lr: float = 0.05             # ENAS: 0.05 (macro search)
    shared_momentum: float = 0.9
    shared_weight_decay: float = 1e-4   # ENAS: 1e-4 (L2)
    grad_clip: float = 5.0              # ENAS: global norm 5
    controller_lr: float = 0.003        # Adam (ENAS: 3.5e-4 over ~300k updates; here a few hundred).
                                        # 0.01 collapsed onto 1-block CNNs within 3 epochs on MNIST-1D
    entropy_weight: float = 0.01        # ENAS: 1e-4 on the reward; more here against that collapse
    baseline_decay: float = 0.95        # moving-average baseline of the rewards (ENAS: 0.99 for PTB)
    controller_hidden_size: int = 35    # the LSTM (Zoph & Le: 35 units; ENAS: 100)
    candidates: int = 100               # architectures drawn and scored at the end (ENAS: 10 on one minibatch)
    rate_samples: int = 2048            # validation rows each candidate is scored on (at most)
    finetune_epochs: int = 0            # enas, rsws: epochs each finalist trains on its own path from the shared
                                        # weights before the final ranking; 0: none (docs/weight_sharing.md: it
                                        # raised the ranking's tau, not the picks' accuracy, for +25-30% CPU)
    finalists: int = 10                 # the best-scored candidates fine-tuned
    finetune_lr: float = 0.01           # their SGD (the shared weights' momentum and L2), constant
    arch_lr: float = 3e-3               # darts: Adam on alpha (DARTS: 3e-4 over ~20k steps; here ~2k)
    arch_weight_decay: float = 1e-3     # darts: L2 on alpha (DARTS: 1e-3)
    arch_order: int = 1                 # darts: 1 first-order gradient of alpha (xi = 0), 2 second-order, through a
                                        # virtual weight step (DARTS Sec. 2.3; four passes per alpha step instead of
                                        # one: 2.2x the search's CPU on cnn/MNIST-1D)
    size_penalty: float = 1.0           # darts under max_params / max_flops: weight in alpha's loss of
                                        # max(0, log(E[size] / cap)) (ProxylessNAS's resource loss); 0: none
    arch_perturbation: float = 0.3      # darts: SDARTS-RS (Chen & Hsieh 2020): each weight step on the softmax of
                                        # alpha plus U(-eps, eps) noise, eps rising from 0.03 to this (the paper's
                                        # 0.3) over the phase; 0: none, plain DARTS (8 seeds: 67.2 % against 76.5 %
                                        # on rnn, 96.6 % against 97.4 % on cnn; benchmarks/README.md)

    @property
    def total_controller_steps(self) -> int:
        return self.supernet_epochs * self.controller_steps


def check_options(strategy: str, options: Mapping[str, Any]) -> PhaseOptions:
    """``options`` as :class:`PhaseOptions`, or a :class:`ConfigError` naming the bad key or value."""
    fields = {f.name: f for f in dataclasses.fields(PhaseOptions)}
    for key in options:
        if key not in fields:
            raise ConfigError(f"strategy {strategy!r} has no option {key!r}; its options: "
                              f"{', '.join(n for n in fields if n not in NOT_FOR[strategy])}")
        if key in NOT_FOR[strategy]:
            raise ConfigError(f"strategy {strategy!r} has no option {key!r}: {WHY_NOT[strategy]}")
    options = dict(options)
    for key, value in options.items():
        kind = fields[key].type.removesuffix(" | None")
        if kind == "float" and isinstance(value, str):   # the CLI's YAML reads 1e-3 as a string
            try:
                options[key] = value = float(value)
            except ValueError:
                pass
        if kind == "int":
            low = 0 if key in ("controller_steps", "warmup_epochs", "finetune_epochs") else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"strategy {strategy!r}: {key} must be an integer >= {low}, got {value!r}")
            if key == "arch_order" and value not in ARCH_ORDERS:
                raise ConfigError(f"strategy {strategy!r}: arch_order={value!r} is not valid; choose 1 (first-order "
                                  "DARTS) or 2 (second-order)")
        elif kind == "float":
            positive = key in ("shared_lr", "controller_lr", "grad_clip", "arch_lr", "finetune_lr")
            bad = isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            inside, bound = UPPER_BOUNDS.get(key, (lambda v: True, ""))
            if bad or value < 0 or (positive and value == 0) or not inside(value):
                need = "a positive number" if positive else f"a number >= 0{bound}"
                raise ConfigError(f"strategy {strategy!r}: {key} must be {need}, got {value!r}")
        elif value not in SHARED_OPTIMIZERS:
            raise ConfigError(f"strategy {strategy!r}: shared_optimizer={value!r} is not valid; choose one of: "
                              f"{', '.join(SHARED_OPTIMIZERS)}")
    checked = PhaseOptions(**{k: (float(v) if fields[k].type == "float" else v) for k, v in options.items()})
    if checked.warmup_epochs is None:
        checked = dataclasses.replace(checked, warmup_epochs=checked.supernet_epochs // 2 if strategy == "enas" else 0)
    if checked.warmup_epochs >= checked.supernet_epochs:
        learner = "architecture parameters" if strategy == "darts" else "controller"
        raise ConfigError(f"strategy {strategy!r}: warmup_epochs ({checked.warmup_epochs}) must be below "
                          f"supernet_epochs ({checked.supernet_epochs}): the {learner} needs epochs to learn")
    return checked


@dataclass(frozen=True, kw_only=True)
class PhaseJob:
    """Everything the supernet phase needs, wherever it runs (this process or a Ray worker; picklable)."""

    strategy: str                       # "enas", "rsws" or "darts"
    family: str
    task: str
    data_digest: str | None             # the user's own data (data=...), by digest
    space: Any                          # the SearchSpace
    seed: int
    options: PhaseOptions
    top: int                            # architectures to hand to the retraining trials (K)
    tracking_uri: str
    experiment_id: str
    run_id: str                         # the supernet phase's MLflow run (child of the search's)
    deadline: float | None = None       # the search's timeout as a time.time(): the phase stops at the
                                        # first epoch's end past it and rates with the weights it has
    size_limit: SizeLimit = field(default_factory=SizeLimit)   # the search's max_params / max_flops

    def summary(self) -> dict[str, Any]:
        """The run's params: the strategy, the caps if any and every option."""
        return {"strategy": self.strategy, "top": self.top, "seed": self.seed,
                **self.size_limit.caps(), **dataclasses.asdict(self.options)}
