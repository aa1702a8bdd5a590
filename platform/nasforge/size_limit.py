"""Size caps of a search: ``max_params`` and ``max_flops``.

``max_params`` is KerasTuner's ``max_model_size``; ``max_flops`` the budget of MnasNet and
ProxylessNAS, with forward FLOPs standing in for latency.

Every strategy keeps them the same way: a trial whose network breaks a cap is recorded as pruned
before any training, the sizes in its reason and as its ``n_params`` / ``flops`` metrics; it counts
toward ``trials`` and costs no epochs. The weight-sharing strategies also keep them inside their
supernet phase: ``rsws`` draws only paths within the caps, ``enas`` penalises the controller's reward
of a path beyond them (MnasNet's hard constraint, Tan et al. 2019, Eq. 2 with ``alpha = 0, beta = -1``),
``darts`` adds how far alpha's expected size is over them to alpha's loss (ProxylessNAS's resource
loss; :mod:`nasforge.strategies.oneshot.size_penalty`), and all three retrain only picks within them
(:mod:`nasforge.strategies.oneshot.phase`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from nasforge.errors import SpecError

CAPS = {"max_params": ("n_params", "parameters"), "max_flops": ("flops", "FLOPs")}   # argument: metric, unit
PREFLIGHT_DRAWS = 64   # architectures drawn to find out whether the space holds one within the caps


def count_params(model) -> int:
    """Scalars in ``model``'s parameters (what a trial logs as ``n_params``)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model, example) -> int:
    """Forward FLOPs of ``model`` on one row of ``example`` (``torch.utils.flop_counter``: matrix
    products and convolutions, 2 per multiply-add), in eval mode without gradients, on the model's
    device; its train/eval mode and the torch random stream (a forward that samples) are left as
    they were."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    training = model.training
    counter = FlopCounterMode(display=False)
    try:
        model.eval()
        with torch.random.fork_rng(devices=[]), counter, torch.no_grad():
            model(torch.as_tensor(example[:1]).to(device))
    finally:
        model.train(training)
    return int(counter.get_total_flops())


@dataclass(frozen=True, kw_only=True)
class SizeLimit:
    """The caps of one search (None: no cap); falsy when it has none."""

    max_params: int | None = None
    max_flops: int | None = None

    def __bool__(self) -> bool:
        return bool(self.caps())

    def caps(self) -> dict[str, int]:
        """``{argument: cap}`` of the caps set."""
        return {name: getattr(self, name) for name in CAPS if getattr(self, name) is not None}

    def describe(self) -> str:
        """The caps set as arguments (``"max_params=5000, max_flops=10000"``; empty without any)."""
        return ", ".join(f"{name}={cap}" for name, cap in self.caps().items())

    def measure(self, model, family, task) -> dict[str, int]:
        """``{"n_params": ..., "flops": ...}`` of ``model`` (FLOPs only under ``max_flops``: one forward
        pass on the family's example input)."""
        sizes = {"n_params": count_params(model)}
        if self.max_flops is not None:
            sizes["flops"] = count_flops(model, family.example_input(task))
        return sizes

    def broken(self, sizes: Mapping[str, int]) -> str | None:
        """Why a network of ``sizes`` is not trained (each cap it breaks), or None when it fits."""
        over = [f"{sizes[CAPS[name][0]]} {CAPS[name][1]} > {name}={cap}" for name, cap in self.caps().items()
                if sizes[CAPS[name][0]] > cap]
        return "; ".join(over) + ": not trained" if over else None

    def factor(self, sizes: Mapping[str, int]) -> float:
        """MnasNet's hard-constraint factor: the product over the caps broken of ``cap / size`` (1 within them)."""
        beyond = {name: sizes[CAPS[name][0]] for name, cap in self.caps().items() if sizes[CAPS[name][0]] > cap}
        return math.prod(getattr(self, name) / size for name, size in beyond.items())


def penalised_reward(reward: float, factor: float) -> float:
    """A controller's reward under size caps: MnasNet's hard constraint (Tan et al. 2019, "MnasNet:
    Platform-Aware Neural Architecture Search for Mobile", CVPR, Eq. 2 with ``alpha = 0, beta = -1``)
    scales an accuracy by ``factor`` (:meth:`SizeLimit.factor`: 1 within the caps, ``cap / size``
    beyond); a negative reward (minus an MSE) is divided by it instead, so it too gets worse the
    further the network is beyond a cap."""
    if factor >= 1.0:
        return reward
    return reward * factor if reward >= 0 else reward / factor


class NetworkSizes:
    """:meth:`SizeLimit.measure` of the stand-alone network of each flat architecture of ``space``
    (cached). The network is built under a forked torch RNG, so measuring leaves the caller's random
    stream (a seeded supernet phase, say) where it was."""

    def __init__(self, *, family, space, task, limit: SizeLimit):
        self.family, self.space, self.task, self.limit = family, space, task, limit
        self._sizes: dict[str, dict[str, int]] = {}

    def __call__(self, flat: Mapping[str, Any]) -> dict[str, int]:
        import torch

        from nasforge.strategies.oneshot.paths import arch_key

        key = arch_key(flat)
        if key not in self._sizes:
            config = self.family.make_config(self.space.config_from_flat(dict(flat)))
            with torch.random.fork_rng(devices=[]):
                self._sizes[key] = self.limit.measure(self.family.build(config, self.task), self.family, self.task)
        return self._sizes[key]


def check_size_limit(*, max_params: Any, max_flops: Any, family, space, task, seed: int) -> SizeLimit:
    """Each cap None or an integer >= 1, and at least one architecture of ``space`` within them all
    (up to :data:`PREFLIGHT_DRAWS` seeded uniform draws, stopping at the first that fits)."""
    for name, value in (("max_params", max_params), ("max_flops", max_flops)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise SpecError(f"{name} must be an integer >= 1 (the most {CAPS[name][1]} a network may have) or None, "
                            f"got {value!r}")
    limit = SizeLimit(max_params=max_params, max_flops=max_flops)
    if not limit:
        return limit
    caps = limit.describe()
    import numpy as np

    from nasforge.strategies.oneshot.paths import UniformPaths

    sizes = NetworkSizes(family=family, space=space, task=task, limit=limit)
    smallest: dict[str, int] = {}
    try:
        for flat, _ in UniformPaths(space=space).draw(np.random.default_rng([seed, 0xCA9]), PREFLIGHT_DRAWS):
            measured = sizes(flat)
            if limit.broken(measured) is None:
                return limit
            smallest = {k: min(v, smallest.get(k, v)) for k, v in measured.items()}
    except Exception as exc:   # FLOPs need a forward pass on the family's example input
        raise SpecError(f"{caps}: family {family.name!r}'s networks could not be measured on its example input "
                        f"({type(exc).__name__}: {exc})") from None
    least = ", ".join(f"{smallest[CAPS[name][0]]} {CAPS[name][1]}" for name in limit.caps())
    raise SpecError(f"{caps}: none of {PREFLIGHT_DRAWS} architectures drawn from space {space.source} fits "
                    f"(the smallest have {least}); raise the cap or narrow the space")
