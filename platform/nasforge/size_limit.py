"""``max_params``: a search's cap on a network's number of parameters (KerasTuner's ``max_model_size``).

Every strategy keeps it the same way: a trial whose network has more parameters is recorded as
pruned before any training, its count in the reason and its ``n_params`` metric; it counts toward
``trials`` and costs no epochs. The weight-sharing strategies also keep it inside their supernet
phase: ``rsws`` draws only paths within the cap, ``enas`` penalises the controller's reward of a
path beyond it (MnasNet's hard constraint, Tan et al. 2019, Eq. 2 with ``alpha = 0, beta = -1``),
and both retrain only picks within it (:mod:`nasforge.strategies.oneshot.phase`).
"""

from __future__ import annotations

from typing import Any, Mapping

from nasforge.errors import SpecError

PREFLIGHT_DRAWS = 64   # architectures drawn to find out whether the space holds one within the cap


def count_params(model) -> int:
    """Scalars in ``model``'s parameters (what a trial logs as ``n_params``)."""
    return sum(p.numel() for p in model.parameters())


def over_limit_reason(n_params: int, max_params: int) -> str:
    """Why a network beyond the cap is not trained (a pruned trial's reason)."""
    return f"{n_params} parameters > max_params={max_params}: not trained"


def penalised_reward(reward: float, n_params: int, max_params: int) -> float:
    """A controller's reward of a network with ``n_params`` under the cap ``max_params``: unchanged
    within it; beyond it MnasNet's hard constraint (Tan et al. 2019, "MnasNet: Platform-Aware Neural
    Architecture Search for Mobile", CVPR, Eq. 2 with ``alpha = 0, beta = -1``) scales an accuracy by
    ``max_params / n_params``; a negative reward (minus an MSE) is divided by it instead, so it too
    gets worse the further the network is beyond the cap."""
    if n_params <= max_params:
        return reward
    factor = max_params / n_params
    return reward * factor if reward >= 0 else reward / factor


class ParamCounter:
    """Parameters of the stand-alone network of each flat architecture of ``space`` (cached).

    The network is built under a forked torch RNG, so counting leaves the caller's random stream
    (a seeded supernet phase, say) where it was.
    """

    def __init__(self, *, family, space, task):
        self.family, self.space, self.task = family, space, task
        self._counts: dict[str, int] = {}

    def __call__(self, flat: Mapping[str, Any]) -> int:
        import torch

        from nasforge.strategies.oneshot.paths import arch_key

        key = arch_key(flat)
        if key not in self._counts:
            config = self.family.make_config(self.space.config_from_flat(dict(flat)))
            with torch.random.fork_rng(devices=[]):
                self._counts[key] = count_params(self.family.build(config, self.task))
        return self._counts[key]


def check_max_params(max_params: Any, *, family, space, task, seed: int, darts: bool) -> int | None:
    """``max_params`` is None or an integer >= 1 that at least one architecture of ``space`` fits
    (up to :data:`PREFLIGHT_DRAWS` seeded uniform draws, stopping at the first that fits); darts
    refuses it."""
    if max_params is None:
        return None
    if isinstance(max_params, bool) or not isinstance(max_params, int) or max_params < 1:
        raise SpecError(f"max_params must be an integer >= 1 (the most parameters a network may have) or None, "
                        f"got {max_params!r}")
    if darts:
        raise SpecError("strategy 'darts' cannot keep max_params: its architecture is the argmax of relaxed "
                        "weights learnt by gradient, with no way to hold it under a size; strategy='enas' or "
                        "'rsws' keep the cap in their supernet phase")
    import numpy as np

    from nasforge.strategies.oneshot.paths import UniformPaths

    counter = ParamCounter(family=family, space=space, task=task)
    rng = np.random.default_rng([seed, 0xCA9])
    smallest = None
    for flat, _ in UniformPaths(space=space).draw(rng, PREFLIGHT_DRAWS):
        n = counter(flat)
        if n <= max_params:
            return max_params
        smallest = n if smallest is None else min(smallest, n)
    raise SpecError(f"max_params={max_params}: none of {PREFLIGHT_DRAWS} architectures drawn from space "
                    f"{space.source} fits (the smallest has {smallest} parameters); raise max_params or "
                    "narrow the space")
