"""DARTS's architecture parameters: one vector of logits per decision of a space (imports torch).

Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search" (ICLR 2019), Sec. 2.2: each choice
gets real-valued parameters ``alpha``; the softmax of ``alpha`` weighs the choice's operations in the
supernet's mixed forward (:meth:`nasforge.Family.supernet`), and the discrete architecture is read off
at the end (Sec. 2.4: the most likely operation of each choice). The decisions are the controller's
(:func:`nasforge.strategies.controller.decisions.to_controller`: each parameter's choices, numeric
ranges binned), so ``darts``, ``enas`` and ``rsws`` search exactly the same architectures.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from nasforge.errors import ConfigError
from nasforge.spec.space import Suggester
from nasforge.strategies.controller.decisions import to_controller


class ArchitectureWeights(nn.Module):
    """``alpha`` of every decision with more than one value, initialised as DARTS does (``1e-3 * N(0, 1)``)."""

    def __init__(self, *, space, seed: int):
        super().__init__()
        self.space = space
        self.decisions = {d.name: d for d in to_controller(space) if len(d.values) > 1}
        generator = torch.Generator().manual_seed(seed)
        self.alpha = nn.ParameterList(nn.Parameter(1e-3 * torch.randn(len(d.values), generator=generator))
                                      for d in self.decisions.values())

    def probabilities(self) -> dict[str, torch.Tensor]:
        return {name: torch.softmax(a, 0) for name, a in zip(self.decisions, self.alpha)}

    def weights(self, *, detach: bool = False) -> dict[str, dict[Any, torch.Tensor]]:
        """``{flat name: {value: weight}}`` for the supernet's ``mixed`` forward (the softmax of alpha)."""
        out = {}
        for name, p in self.probabilities().items():
            p = p.detach() if detach else p
            out[name] = {value: p[i] for i, value in enumerate(self.decisions[name].values)}
        return out

    def perturbed_weights(self, epsilon: float, generator: torch.Generator) -> dict[str, dict[Any, torch.Tensor]]:
        """SDARTS-RS's weights for a weight step (Chen & Hsieh 2020, "Stabilizing Differentiable Architecture
        Search via Perturbation-based Regularization", ICML): each softmax plus ``U(-epsilon, epsilon)``
        noise, clipped to [0, 1] and renormalised (all clipped to 0: the most likely value alone);
        detached, as :meth:`weights` with ``detach=True``. No host synchronisation (a GPU step stays queued)."""
        out = {}
        with torch.no_grad():
            for name, p in self.probabilities().items():
                noise = torch.rand(p.shape, generator=generator, dtype=torch.float64) * 2 - 1
                q = (p + (epsilon * noise).to(p)).clamp(0, 1)
                q = torch.where(q.sum() == 0, nn.functional.one_hot(p.argmax(), len(p)).to(q), q)
                q = q / q.sum()
                out[name] = {value: q[i] for i, value in enumerate(self.decisions[name].values)}
        return out

    def entropy(self) -> float:
        """Mean entropy of the decisions' softmaxes, in nats (log of the choices when uniform)."""
        with torch.no_grad():
            values = [float(-(p * p.clamp_min(1e-12).log()).sum()) for p in self.probabilities().values()]
        return float(np.mean(values)) if values else 0.0

    def most_likely(self) -> dict[str, Any]:
        """The discrete architecture (DARTS Sec. 2.4): each active decision at its largest weight."""
        with torch.no_grad():
            best = {name: int(p.argmax()) for name, p in self.probabilities().items()}
        return self._sample(lambda name: best[name])

    def draw(self, rng: np.random.Generator, n: int, *, accept: Callable[[dict[str, Any]], bool] | None = None,
             max_tries: int = 10_000) -> list[dict[str, Any]]:
        """``n`` architectures drawn from the softmaxes (each active decision independently); with
        ``accept`` (a size cap), each drawn again until accepted, at most ``max_tries`` times."""
        with torch.no_grad():
            p = {name: q.double().cpu().numpy() for name, q in self.probabilities().items()}

        def one() -> dict[str, Any]:
            for _ in range(max_tries if accept else 1):
                flat = self._sample(lambda name: int(rng.choice(len(p[name]), p=p[name] / p[name].sum())))
                if accept is None or accept(flat):
                    return flat
            raise ConfigError(f"none of {max_tries} architectures drawn from alpha over space {self.space.source} "
                              "was accepted (max_params / max_flops): raise the cap, or size_penalty so that "
                              "alpha learns it")

        return [one() for _ in range(n)]

    def token_indices(self, flats: list[Mapping[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rows, columns)``: for each active decision of each architecture, its row in ``flats`` and
        its value's index among all decisions' values (alpha concatenated), for :meth:`log_likelihoods`."""
        offsets = np.cumsum([0] + [len(d.values) for d in self.decisions.values()])
        rows, columns = [], []
        for row, flat in enumerate(flats):
            for offset, (name, decision) in zip(offsets, self.decisions.items()):
                if name in flat:
                    rows.append(row)
                    columns.append(int(offset) + decision.index(flat[name]))
        return torch.tensor(rows, dtype=torch.long), torch.tensor(columns, dtype=torch.long)

    def log_likelihoods(self, indices: tuple[torch.Tensor, torch.Tensor], n: int) -> torch.Tensor:
        """Log-probabilities of ``n`` architectures under the softmaxes, from their :meth:`token_indices`,
        as a tensor with alpha's gradient: for each, the sum over its active decisions."""
        log_p = torch.cat([torch.log_softmax(a, 0) for a in self.alpha])
        rows, columns = (i.to(log_p.device) for i in indices)
        return log_p.new_zeros(n).index_add(0, rows, log_p[columns])

    def log_uniform(self, flats: list[Mapping[str, Any]]) -> torch.Tensor:
        """Log-probabilities of architectures drawn uniformly (each active decision among its values:
        :class:`~nasforge.strategies.oneshot.paths.UniformPaths`)."""
        return torch.tensor([-sum(math.log(len(d.values)) for name, d in self.decisions.items() if name in flat)
                             for flat in flats], dtype=torch.float64)

    def log_prob(self, flat: Mapping[str, Any]) -> float:
        """Log-probability of an architecture: the sum over its active decisions (-inf for a value
        outside them)."""
        total = 0.0
        with torch.no_grad():
            for name, p in self.probabilities().items():
                if name in flat:
                    index = self.decisions[name].index(flat[name])
                    total += math.log(max(float(p[index]), 1e-300)) if index is not None else -math.inf
        return total

    def _sample(self, pick) -> dict[str, Any]:
        suggester = _PickSuggester(self.decisions, pick)
        self.space.sample(suggester)
        return suggester.flat


class _PickSuggester(Suggester):
    def __init__(self, decisions, pick):
        self.decisions, self.pick = decisions, pick
        self.flat: dict[str, Any] = {}

    def suggest(self, flat_name, param):
        decision = self.decisions.get(flat_name)
        if decision is None:   # a parameter with one value
            value = param.grid()[0]
        else:
            value = decision.values[self.pick(flat_name)]
        self.flat[flat_name] = value
        return value
