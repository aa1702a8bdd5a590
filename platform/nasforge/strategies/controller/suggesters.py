"""How a :class:`nasforge.SearchSpace` is walked with controller tokens.

``SearchSpace.sample`` asks a :class:`~nasforge.spec.space.Suggester` for each *active* parameter
in order, so conditions and repeat counts are resolved by the space itself, as the tokens
come: :class:`TokenSuggester` draws them from the controller, :class:`TokenReplayer` walks the
space as far as a partly drawn architecture's tokens go (drawing many at once), :class:`ParamsReader`
reads a trial's parameters back as tokens (for the update).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from nasforge.spec.space import Suggester


class TokenSuggester(Suggester):
    """Feeds ``SearchSpace.sample`` with controller tokens (``rng=None``: the most probable).

    ``fixed`` values (an enqueued trial's) are taken as given and fed to the LSTM as tokens.
    """

    def __init__(self, sampler, rng, fixed: Mapping[str, Any] = ()):
        self.sampler, self.rng, self.fixed = sampler, rng, dict(fixed)
        self.x, self.state = sampler.policy.initial(1)
        self.sequence: list[tuple[int, int]] = []
        self.flat: dict[str, Any] = {}
        self.log_prob = 0.0

    def suggest(self, flat_name, param):
        sampler = self.sampler
        index = sampler._index[flat_name]
        decision = sampler.decisions[index]
        if flat_name in self.fixed:
            value = self.fixed[flat_name]
            token = decision.index(value)
            self.flat[flat_name] = value
            if token is None:   # off the controller's grid: nothing to feed
                return value
            with torch.no_grad():
                _, self.state = sampler.policy.step(self.x, self.state, index)
                self.x = sampler.policy.feed(index, torch.tensor([token]))
        elif self.rng is None:
            with torch.no_grad():
                logits, self.state = sampler.policy.step(self.x, self.state, index)
                log_p = torch.log_softmax(logits[0], -1)
                token = int(log_p.argmax())
                self.log_prob += float(log_p[token])
                self.x = sampler.policy.feed(index, torch.tensor([token]))
        else:
            token, self.x, self.state = sampler._draw(self.x, self.state, index, self.rng)
        value = decision.values[token] if flat_name not in self.fixed else self.fixed[flat_name]
        self.sequence.append((index, token))
        self.flat[flat_name] = value
        return value


class _Undecided(Exception):
    """Raised by :class:`TokenReplayer` at the first parameter its tokens do not decide."""

    def __init__(self, index: int):
        super().__init__(index)
        self.index = index


class TokenReplayer(Suggester):
    """Walks a space with the tokens drawn so far, and stops at the first parameter they leave open."""

    def __init__(self, sampler, sequence: list[tuple[int, int]]):
        self.sampler, self.sequence = sampler, sequence
        self.flat: dict[str, Any] = {}

    def next_decision(self, space) -> int | None:
        """The decision the architecture needs next, or None when its tokens decide it all (``flat``)."""
        self.flat = {}
        try:
            space.sample(self)
        except _Undecided as undecided:
            return undecided.index
        return None

    def suggest(self, flat_name, param):
        position = len(self.flat)
        index = self.sampler._index[flat_name]
        if position == len(self.sequence):
            raise _Undecided(index)
        decided, token = self.sequence[position]
        if decided != index:
            raise RuntimeError(f"controller tokens out of step with the space at {flat_name!r}")
        value = self.sampler.decisions[index].values[token]
        self.flat[flat_name] = value
        return value


class ParamsReader(Suggester):
    """Reads an architecture's tokens off its parameter values (KeyError if one is not a token)."""

    def __init__(self, sampler, params: Mapping[str, Any]):
        self.sampler, self.params = sampler, params
        self.sequence: list[tuple[int, int]] = []

    def suggest(self, flat_name, param):
        index = self.sampler._index.get(flat_name)
        if index is None or flat_name not in self.params:
            raise KeyError(flat_name)
        token = self.sampler.decisions[index].index(self.params[flat_name])
        if token is None:
            raise KeyError(flat_name)
        self.sequence.append((index, token))
        return self.sampler.decisions[index].values[token]
