"""ENAS's recurrent cell (Pham et al. 2018, Sec. 2.1) as a network and as a supernet (imports torch).

At each time step the cell computes a small graph of nodes from the input ``x_t`` and the previous
state ``h_{t-1}``. The first node reads both:

    c_0 = sigmoid(x_t W_xc + h_{t-1} W_hc),   n_0 = c_0 * f_0(x_t W_xh + h_{t-1} W_hh) + (1 - c_0) * h_{t-1}

and each further node ``k`` reads one earlier node ``j`` (its ``input``) through a highway connection:

    c_k = sigmoid(n_j W_c^(k,j)),   n_k = c_k * f_k(n_j W_h^(k,j)) + (1 - c_k) * n_j

with ``f`` one of tanh, ReLU, identity, sigmoid. The new state ``h_t`` is the average of the loose
ends (the nodes no other node reads). Node ``k``'s ``input`` counts the earlier nodes from 0 (the
first node); a value beyond them wraps around (``input mod k``), so a search space can give every
node the same range.

:class:`ENASCellNet` is one architecture (a weight matrix per node); :class:`ENASCellSupernet` holds
every architecture of a space the way ENAS shares them: one matrix per (node, earlier node) pair,
used by every path that connects that pair, whatever the activations. Many-to-one: a linear head
reads the last state.

``ENASCellSupernet.mixed(x, weights)`` is DARTS's continuous relaxation of the same cell (Liu et al.
2019, "DARTS: Differentiable Architecture Search", ICLR, Sec. 2.1-2.2; its recurrent cell search
relaxes ENAS's cell). Each activation is the weighted sum of the highway node under every function,
each node's predecessor the weighted sum of the node computed from every earlier node through that
pair's matrix, and the state the average of the nodes weighted by the probability that each is a
loose end, ``e_i = prod_k (1 - P(node k reads i))`` over the later nodes ``k``; the number of nodes
is the weighted sum of the states of each count. The mixed state feeds the next step. With one-hot
weights it is :meth:`ENASCellSupernet.forward` of that cell.
"""

from __future__ import annotations

import torch
from torch import nn

from nasforge.errors import ConfigError
from nasforge.weight_sharing import (check_held, count_values, enumerable, find_block, find_param, mixture,
                                     values_at)

FUNCTIONS = {"tanh": torch.tanh, "relu": torch.relu, "identity": lambda x: x, "sigmoid": torch.sigmoid}
HELD = ("enas_activation", "n_nodes", "nodes.*.input", "nodes.*.activation")


def predecessor(k: int, value: int) -> int:
    """The node that node ``k`` (1 = the second node) reads: ``value`` among nodes ``0 .. k - 1``, wrapped."""
    return value % k


def loose_ends(inputs: list[int]) -> list[int]:
    """Nodes no other node reads (``inputs[k - 1]`` is node ``k``'s predecessor)."""
    read = set(inputs)
    return [i for i in range(len(inputs) + 1) if i not in read]


class _Sequences(nn.Module):
    """Inputs as ``(N, T, F)`` float sequences: embedded tokens, or reshaped rows (as ``RecurrentNet``)."""

    def __init__(self, *, sequence_shape, vocab_size: int | None, embedding_dim: int):
        super().__init__()
        self.steps = int(sequence_shape[0])
        self.features = int(sequence_shape[1]) if len(sequence_shape) > 1 else 1
        self.embedding = nn.Embedding(vocab_size, embedding_dim) if vocab_size else None
        self.input_size = embedding_dim if self.embedding is not None else self.features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.embedding is not None:
            tokens = x.reshape(x.shape[0], self.steps)
            return self.embedding((tokens.round() if tokens.is_floating_point() else tokens).long())
        return x.reshape(x.shape[0], self.steps, self.features)


def _run(seq, step, hidden_size: int, tbptt_steps: int):
    """Unroll ``step(x_t, h) -> h`` over ``seq`` (N, T, F) from zeros; the last ``tbptt_steps`` with gradients."""
    h = seq.new_zeros(seq.shape[0], hidden_size)
    cut = seq.shape[1] - tbptt_steps if 0 < tbptt_steps < seq.shape[1] else 0
    if cut:   # truncated BPTT (Williams & Peng 1990): the first steps without a graph
        with torch.no_grad():
            for t in range(cut):
                h = step(seq[:, t], h)
    for t in range(cut, seq.shape[1]):
        h = step(seq[:, t], h)
    return h


def _node(projection: torch.Tensor, state: torch.Tensor, function) -> torch.Tensor:
    c, h = projection.chunk(2, dim=-1)
    c = torch.sigmoid(c)
    return c * function(h) + (1 - c) * state


class ENASCellNet(nn.Module):
    """One ENAS cell architecture, many-to-one (see the module docstring)."""

    def __init__(self, *, sequence_shape, hidden_size: int, first_activation: str, nodes: list[tuple[int, str]],
                 n_outputs: int, vocab_size: int | None = None, embedding_dim: int = 32):
        super().__init__()
        self.sequences = _Sequences(sequence_shape=sequence_shape, vocab_size=vocab_size, embedding_dim=embedding_dim)
        self.hidden_size, self.first_activation = hidden_size, first_activation
        self.inputs = [predecessor(k, value) for k, (value, _) in enumerate(nodes, start=1)]
        self.activations = [activation for _, activation in nodes]
        self.x_proj = nn.Linear(self.sequences.input_size, 2 * hidden_size)
        self.h_proj = nn.Linear(hidden_size, 2 * hidden_size, bias=False)
        self.node_proj = nn.ModuleList(nn.Linear(hidden_size, 2 * hidden_size, bias=False) for _ in nodes)
        self.head = nn.Linear(hidden_size, n_outputs)

    def step(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        states = [_node(self.x_proj(x) + self.h_proj(h), h, FUNCTIONS[self.first_activation])]
        for k, (j, activation, proj) in enumerate(zip(self.inputs, self.activations, self.node_proj), start=1):
            states.append(_node(proj(states[j]), states[j], FUNCTIONS[activation]))
        return torch.stack([states[i] for i in loose_ends(self.inputs)]).mean(0)

    def forward(self, x: torch.Tensor, tbptt_steps: int = 0) -> torch.Tensor:
        return self.head(_run(self.sequences(x), self.step, self.hidden_size, tbptt_steps))


class ENASCellSupernet(nn.Module):
    """Every ENAS cell of a space with ENAS's sharing: one matrix per (node, earlier node) pair."""

    def __init__(self, *, sequence_shape, hidden_size: int, max_nodes: int, n_outputs: int,
                 vocab_size: int | None = None, embedding_dim: int = 32, count: str = "n_nodes",
                 counts: tuple[int, ...] | None = None, held: dict[str, tuple] | None = None):
        super().__init__()
        self.sequences = _Sequences(sequence_shape=sequence_shape, vocab_size=vocab_size, embedding_dim=embedding_dim)
        self.hidden_size, self.max_nodes = hidden_size, max_nodes
        self.count, self.counts = count, tuple(counts) if counts is not None else (max_nodes,)
        self.held = dict(held or {})   # flat name -> the values the space gives it (for ``mixed``)
        self.x_proj = nn.Linear(self.sequences.input_size, 2 * hidden_size)
        self.h_proj = nn.Linear(hidden_size, 2 * hidden_size, bias=False)
        self.pairs = nn.ModuleDict({f"{k}_{j}": nn.Linear(hidden_size, 2 * hidden_size, bias=False)
                                    for k in range(1, max_nodes + 1) for j in range(k)})
        self.head = nn.Linear(hidden_size, n_outputs)

    def forward(self, x: torch.Tensor, config) -> torch.Tensor:
        if config.cell != "enas" or len(config.nodes) > self.max_nodes:
            raise ConfigError(f"the supernet holds ENAS cells of at most 1 + {self.max_nodes} nodes; the config has "
                              f"cell={config.cell!r} with 1 + {len(config.nodes)}")
        inputs = [predecessor(k, node.input) for k, node in enumerate(config.nodes, start=1)]
        ends = loose_ends(inputs)
        first = FUNCTIONS[config.enas_activation]

        def step(x_t, h):
            states = [_node(self.x_proj(x_t) + self.h_proj(h), h, first)]
            for k, (j, node) in enumerate(zip(inputs, config.nodes), start=1):
                states.append(_node(self.pairs[f"{k}_{j}"](states[j]), states[j], FUNCTIONS[node.activation]))
            return torch.stack([states[i] for i in ends]).mean(0)

        return self.head(_run(self.sequences(x), step, self.hidden_size, 0))

    def mixed(self, x: torch.Tensor, weights) -> torch.Tensor:
        """DARTS's relaxation (see the module docstring): ``weights[flat_name]`` maps each value of a
        parameter to its weight; with one-hot weights this is :meth:`forward` of that cell."""
        for d in self.counts:
            if not 0 <= d <= self.max_nodes:
                raise ConfigError(f"the supernet holds ENAS cells of at most 1 + {self.max_nodes} nodes, not 1 + {d}")

        def choose(name, op):
            return mixture(weights, name, self.held.get(name), op)

        def activation(name, projection, state):
            return choose(name, lambda a: _node(projection, state, _function(a, name)))

        def reads(k, i):   # P(node k reads node i): the weight of node k's inputs that wrap to i
            return choose(f"nodes.{k - 1}.input", lambda v: float(predecessor(k, v) == i))

        # per count d of nodes, each node's weight in the state: the probability it is a loose end
        ends = {d: [_product([1 - reads(k, i) for k in range(i + 1, d + 1)]) for i in range(d + 1)]
                for d in self.counts}

        def output(states, d):   # the state of a cell of 1 + d nodes
            return sum(e * n for e, n in zip(ends[d], states)) / sum(ends[d])

        def step(x_t, h):
            states = [activation("enas_activation", self.x_proj(x_t) + self.h_proj(h), h)]
            for k in range(1, max(self.counts) + 1):
                nodes = {}   # earlier node j -> node k computed from it (one projection per pair and step)

                def from_input(v, k=k, nodes=nodes):
                    j = predecessor(k, v)
                    if j not in nodes:
                        nodes[j] = activation(f"nodes.{k - 1}.activation", self.pairs[f"{k}_{j}"](states[j]), states[j])
                    return nodes[j]

                states.append(choose(f"nodes.{k - 1}.input", from_input))
            return choose(self.count, lambda d: output(states, self._known(d)))

        return self.head(_run(self.sequences(x), step, self.hidden_size, 0))

    def _known(self, d: int) -> int:
        if d not in self.counts:
            raise ConfigError(f"the supernet holds no ENAS cell of 1 + {d} nodes (outside its search space)")
        return d


def _function(name: str, flat_name: str):
    if name not in FUNCTIONS:
        raise ConfigError(f"{flat_name}={name!r} is no activation of the ENAS cell ({', '.join(FUNCTIONS)})")
    return FUNCTIONS[name]


def _product(factors):
    total = 1.0
    for factor in factors:
        total = total * factor
    return total


def build_supernet(space, task, *, family) -> ENASCellSupernet:
    """The supernet of ``space`` on ``task`` (checks the space first; see :meth:`RNNFamily.supernet`)."""
    from nasforge_rnn.family import RNNConfig

    check_held(space, family=family.name, held=HELD)
    shape = family.check_sequence_task(task)
    cell = find_param(space, "cell")
    if values_at(space, "cell", RNNConfig().cell) != ("enas",):
        raise ConfigError(f"family 'rnn': the supernet is ENAS's recurrent cell; {space.source} must fix "
                          f"cell: enas (it {'leaves cell out' if cell is None else 'has another cell'})")
    block = find_block(space, "nodes")
    max_nodes = block.max_count if block is not None else 0
    config = RNNConfig()
    held = {"enas_activation": enumerable(values_at(space, "enas_activation", config.enas_activation),
                                          "enas_activation", why="applies one function per node")}
    for i in range(max_nodes):
        held[f"nodes.{i}.activation"] = enumerable(values_at(space, f"nodes.{i}.activation", "tanh"),
                                                   f"nodes.{i}.activation", why="applies one function per node")
        held[f"nodes.{i}.input"] = values_at(space, f"nodes.{i}.input", 0)
    counts = count_values(space, block) if block is not None else (0,)
    hidden = values_at(space, "hidden_size", config.hidden_size)[0]
    embedding = values_at(space, "embedding_dim", config.embedding_dim)[0]
    return ENASCellSupernet(sequence_shape=shape, hidden_size=hidden, max_nodes=max_nodes,
                            n_outputs=task.n_classes if task.kind == "classification" else 1,
                            vocab_size=task.info.get("vocab_size"), embedding_dim=embedding,
                            count=block.count if block is not None else "n_nodes", counts=counts, held=held)
