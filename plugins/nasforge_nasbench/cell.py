"""A stand-in module for a NAS-Bench-201 cell (the table holds its results; nothing trains)."""

from __future__ import annotations

import torch
from torch import nn

from nasforge_nasbench.table import OPS


class TableCell(nn.Module):
    """Holds the cell's operation indices (a buffer, so they travel with ``state_dict``).

    ``forward(x)`` returns the one-hot encoding of the operations for each row of ``x``
    (shape ``(batch, 6 * 5)``): enough for the platform to save, reload and export it.
    """

    def __init__(self, op_indices):
        super().__init__()
        self.register_buffer("ops", torch.as_tensor(op_indices, dtype=torch.long))

    def forward(self, x):
        encoding = nn.functional.one_hot(self.ops, len(OPS)).flatten().to(x.dtype)
        return torch.zeros_like(x[:, :1]) + encoding
