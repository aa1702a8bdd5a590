"""Strategies side by side: each strategy's share of the trials, its seed, and which trial is whose.

``nasforge.search(..., strategy=["controller", "tpe", "random"])`` runs the strategies in ONE
study whose sampler (:mod:`nasforge.strategies.side_by_side`) deals each trial to one of them;
each trial carries the user attribute and MLflow tag ``strategy``. Per-strategy results are in
:mod:`nasforge.results.by_strategy`. Nothing here imports optuna.
"""

from __future__ import annotations

import zlib
from typing import Sequence

STRATEGY_ATTR = "strategy"


def split_trials(total: int, strategies: Sequence[str]) -> dict[str, int]:
    """``total`` trials split evenly; the first ``total % len(strategies)`` strategies get one more."""
    base, extra = divmod(total, len(strategies))
    return {name: base + (1 if i < extra else 0) for i, name in enumerate(strategies)}


def strategy_seed(seed: int, strategy: str) -> int:
    """Each strategy's sampler seed, derived from the search seed (so two strategies that start
    with random sampling, e.g. ``tpe`` and ``random``, do not draw the same first trials)."""
    return (seed * 1_000_003 + zlib.crc32(strategy.encode())) % (2**31 - 1)


def strategy_of(trial, spec) -> str:
    """The strategy that proposed ``trial`` (a single-strategy search has no attribute: its own)."""
    return trial.user_attrs.get(STRATEGY_ATTR) or spec.strategies[0]
