"""The controller network of Zoph & Le (2017): an LSTM that emits one token per decision.

At each step the LSTM reads the embedding of the previous decision's token (a learned
start vector at the first step), and the decision's own softmax head turns its top hidden
state into logits. Following ENAS (Pham et al., 2018), logits may be divided by a
temperature and squashed with ``c * tanh``, which keeps the policy from collapsing early,
and decisions with the same choices may share one embedding and head (each then adds logit
offsets of its own).
Every weight starts uniform in ``[-init_range, init_range]`` (0.08 in Zoph & Le).

Decisions are added by index (``add_decision``); a batch of token sequences that share the
same decisions is scored in one pass (``score``) for the REINFORCE update.
"""

from __future__ import annotations

import contextlib
import zlib
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn


def _seeded(seed: int, *salt: int) -> torch.Generator:
    mixed = np.random.SeedSequence([seed, *salt]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(mixed[0]) << 32 | int(mixed[1]))


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread meanwhile (restored after).

    The controller's tensors are tiny (35 units): threads only add synchronization, and on
    a busy machine OpenMP's waiting made one update 30x slower with 2 threads than with 1.
    """
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class ControllerPolicy(nn.Module):
    """A ``num_layers``-layer LSTM with an embedding table and a softmax head per decision (or shared)."""

    def __init__(self, *, hidden_size: int, num_layers: int, init_range: float, seed: int,
                 temperature: float | None = None, tanh_constant: float | None = None):
        super().__init__()
        self.hidden_size, self.init_range, self.seed = hidden_size, init_range, seed
        self.temperature, self.tanh_constant = temperature, tanh_constant
        self.start = nn.Parameter(torch.empty(1, hidden_size))
        self.cells = nn.ModuleList(nn.LSTMCell(hidden_size, hidden_size) for _ in range(num_layers))
        self.embeddings = nn.ModuleList()
        self.heads = nn.ModuleList()
        self.slots: list[int] = []   # decision -> its (possibly shared) embedding and head
        self.offsets = nn.ParameterList()   # logit offsets of decisions that share a head
        self.offset_of: list[int | None] = []
        generator = _seeded(seed, 0)
        for p in [self.start, *self.cells.parameters()]:
            nn.init.uniform_(p, -init_range, init_range, generator=generator)

    @property
    def n_decisions(self) -> int:
        return len(self.slots)

    def add_decision(self, key: str, n_choices: int, *, tie_to: int | None = None,
                     offset: bool = False) -> list[nn.Parameter]:
        """Append a decision: its own embedding and head (seeded by its key), or, with ``tie_to``,
        those of an earlier decision with the same choices (ENAS shares them so). ``offset``
        gives it logit offsets of its own (zeros at first, added after the temperature), so a
        decision that shares a head still learns its own preferences about as fast as with a head
        of its own. Returns the new parameters."""
        own = []
        self.offset_of.append(len(self.offsets) if offset else None)
        if offset:
            self.offsets.append(nn.Parameter(torch.zeros(n_choices)))
            own.append(self.offsets[-1])
        if tie_to is not None:
            self.slots.append(self.slots[tie_to])
            return own
        embedding, head = nn.Embedding(n_choices, self.hidden_size), nn.Linear(self.hidden_size, n_choices)
        generator = _seeded(self.seed, 1, zlib.crc32(key.encode()))
        params = [embedding.weight, head.weight, head.bias]
        with torch.no_grad():
            for p in params:
                nn.init.uniform_(p, -self.init_range, self.init_range, generator=generator)
        self.embeddings.append(embedding)
        self.heads.append(head)
        self.slots.append(len(self.heads) - 1)
        return params + own

    # -- one step --------------------------------------------------------------------
    def initial(self, batch: int):
        zeros = self.start.new_zeros(batch, self.hidden_size)
        return self.start.expand(batch, -1), [(zeros, zeros) for _ in self.cells]

    def step(self, x, state, decision: int):
        """One LSTM step: ``x`` (B, H) -> logits (B, n_choices) of ``decision``, new state."""
        new_state = []
        for cell, (h, c) in zip(self.cells, state):
            h, c = cell(x, (h, c))
            new_state.append((h, c))
            x = h
        logits = self.heads[self.slots[decision]](x)
        if self.temperature is not None:
            logits = logits / self.temperature
        if self.offset_of[decision] is not None:   # after the temperature: not slowed down by it
            logits = logits + self.offsets[self.offset_of[decision]]
        if self.tanh_constant is not None:
            logits = self.tanh_constant * torch.tanh(logits)
        return logits, new_state

    def feed(self, decision: int, tokens):
        """The next input: the embedding of the tokens just chosen for ``decision``."""
        return self.embeddings[self.slots[decision]](tokens)

    # -- sequences -------------------------------------------------------------------
    @torch.no_grad()
    def replay(self, sequence: Sequence[tuple[int, int]]):
        """The (input, state) after feeding a sequence of ``(decision, token)`` pairs."""
        x, state = self.initial(1)
        for decision, token in sequence:
            _, state = self.step(x, state, decision)
            x = self.feed(decision, torch.tensor([token]))
        return x, state

    def score(self, decisions: Sequence[int], tokens) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability and entropy (summed over steps) of each row of ``tokens`` (B, L)."""
        batch = tokens.shape[0]
        x, state = self.initial(batch)
        log_prob = self.start.new_zeros(batch)
        entropy = self.start.new_zeros(batch)
        for t, decision in enumerate(decisions):
            logits, state = self.step(x, state, decision)
            log_p = torch.log_softmax(logits, dim=-1)
            log_prob = log_prob + log_p.gather(1, tokens[:, t:t + 1]).squeeze(1)
            entropy = entropy - (log_p.exp() * log_p).sum(-1)
            x = self.feed(decision, tokens[:, t])
        return log_prob, entropy
