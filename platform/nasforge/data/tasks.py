"""Tasks: a data set or an environment with a kind and fixed, seeded splits; loaded by name.

A plugin registers a :class:`TaskDef` through the ``register_tasks`` hook; a search loads it once
per process with :func:`load_task`. The built-in tasks are in :mod:`nasforge.data.builtin_tasks`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable

TASK_KINDS = ("classification", "regression", "sequence", "generation", "control")


@dataclass(kw_only=True)
class Task:
    """A loaded task. Supervised tasks fill the ``x_*``/``y_*`` splits (numpy arrays)."""

    name: str
    kind: str
    seed: int
    x_train: Any = None
    y_train: Any = None
    x_val: Any = None
    y_val: Any = None
    x_test: Any = None
    y_test: Any = None
    n_classes: int | None = None          # classification only
    input_shape: tuple[int, ...] = ()      # shape of one input, without the batch axis
    info: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> tuple[Any, Any]:
        """``(x, y)`` of ``"train"``, ``"val"`` or ``"test"``."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; valid: train, val, test")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")


@dataclass(frozen=True, kw_only=True)
class TaskDef:
    """A registered task: ``load(seed)`` returns a :class:`Task` with fixed splits."""

    name: str
    kind: str
    load: Callable[[int], Task]
    description: str = ""

    def __post_init__(self):
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task {self.name!r}: kind {self.kind!r} is not one of {', '.join(TASK_KINDS)}")


def split_arrays(x, y, *, seed: int, val: float = 0.15, test: float = 0.15, stratify: bool = False) -> dict:
    """Seeded train/val/test split (stratified for classification)."""
    from sklearn.model_selection import train_test_split

    strat = y if stratify else None
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=test, random_state=seed, stratify=strat)
    strat = y_rest if stratify else None
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val / (1 - test), random_state=seed, stratify=strat)
    return dict(x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val, x_test=x_test, y_test=y_test)


def standardize(splits: dict, key: str = "x") -> None:
    import numpy as np

    mean = splits[f"{key}_train"].mean(axis=0)
    std = splits[f"{key}_train"].std(axis=0) + 1e-8
    for name in ("train", "val", "test"):
        splits[f"{key}_{name}"] = ((splits[f"{key}_{name}"] - mean) / std).astype(np.float32)



@functools.lru_cache(maxsize=8)
def load_task(name: str, seed: int) -> Task:
    """Load a registered task once per process (splits are fixed by the seed)."""
    from nasforge.plugins import get_registry

    return get_registry().get("task", name).load(seed)
