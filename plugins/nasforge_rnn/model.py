"""The recurrent network of the RNN family (imports torch: import it lazily)."""

from __future__ import annotations

import torch
from torch import nn

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentNet(nn.Module):
    """Many-to-one recurrent network: [embedding] -> stacked RNN / LSTM / GRU -> linear head.

    Inputs are a batch of flat rows (``(N, T * F)``, ``(N, T, F)``) reshaped to
    ``(N, T, F)`` with ``sequence_shape = (T, F)``, or integer tokens ``(N, T)`` (any dtype:
    they are rounded to ``long``) looked up in an ``nn.Embedding`` when ``vocab_size`` is
    given. The head reads the top layer's final hidden state; a bidirectional network
    concatenates the forward direction's last state with the backward direction's state
    after it has read back to step 0 (Schuster & Paliwal, 1997), so both have seen the
    whole sequence.

    Cells: Elman (1990) with tanh, LSTM (Hochreiter & Schmidhuber, 1997; with forget gate,
    Gers et al., 2000, as in ``torch.nn.LSTM``) and GRU (Cho et al., 2014). ``dropout``
    is applied between stacked layers only (Zaremba et al., 2014), never on the recurrence.
    """

    def __init__(self, *, cell: str, sequence_shape: tuple[int, ...], hidden_size: int, n_layers: int,
                 bidirectional: bool, dropout: float, n_outputs: int, vocab_size: int | None = None,
                 embedding_dim: int = 32):
        super().__init__()
        self.steps = int(sequence_shape[0])
        self.features = int(sequence_shape[1]) if len(sequence_shape) > 1 else 1
        self.directions = 2 if bidirectional else 1
        self.is_lstm = cell == "lstm"
        self.embedding = nn.Embedding(vocab_size, embedding_dim) if vocab_size else None
        input_size = embedding_dim if self.embedding is not None else self.features
        self.rnn = CELLS[cell](input_size, hidden_size, num_layers=n_layers, batch_first=True,
                               bidirectional=bidirectional, dropout=dropout if n_layers > 1 else 0.0)
        self.head = nn.Linear(hidden_size * self.directions, n_outputs)

    def sequences(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs -> ``(N, T, input_size)`` float sequences (embedded tokens or reshaped rows)."""
        if self.embedding is not None:
            tokens = x.reshape(x.shape[0], self.steps)
            if tokens.is_floating_point():          # the shared loaders hand over float32
                tokens = tokens.round()
            return self.embedding(tokens.long())
        return x.reshape(x.shape[0], self.steps, self.features)

    def forward(self, x: torch.Tensor, tbptt_steps: int = 0) -> torch.Tensor:
        """Outputs ``(N, n_outputs)``; ``tbptt_steps=k > 0`` truncates backpropagation through time.

        Truncated BPTT (Williams & Peng, 1990): the hidden state is carried into the last
        ``k`` steps detached from the graph, so gradients reach back ``k`` steps only. The
        loss of a many-to-one task sits at the last step, so this is the whole effect of
        truncation here: the steps before the window run without building a graph. The
        outputs are the same as without truncation; only the gradients differ.
        """
        seq = self.sequences(x)
        if 0 < tbptt_steps < seq.shape[1]:
            cut = seq.shape[1] - tbptt_steps
            with torch.no_grad():
                _, state = self.rnn(seq[:, :cut])
            _, state = self.rnn(seq[:, cut:], state)
        else:
            _, state = self.rnn(seq)
        return self._head(state)

    def _head(self, state) -> torch.Tensor:
        hidden = state[0] if self.is_lstm else state        # (layers * directions, N, H)
        top = hidden[-self.directions:]                     # the top layer's direction(s)
        return self.head(torch.cat(list(top), dim=1))       # (N, H * directions) -> (N, outputs)
