"""Tasks: a data set or an environment with a kind and fixed, seeded splits; loaded by name.

A plugin registers a :class:`TaskDef` through the ``register_tasks`` hook; a search loads it once
per process with :func:`load_task`. The built-in tasks are in :mod:`nasforge.data.builtin_tasks`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable

from nasforge.errors import DataError

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



_DATA_TASKS: dict[tuple[str, str], Task] = {}   # (name, digest) -> a user's data, prepared in this process


def register_data_task(task: Task, digest: str) -> None:
    """Make a user's prepared data loadable in this process by its name and digest (see :func:`load_task`)."""
    _DATA_TASKS[(task.name, digest)] = task


def load_task(name: str, seed: int, *, data_digest: str | None = None) -> Task:
    """A task by name: a user's data (``data_digest`` given) or a registered task, loaded once per process
    (the splits are fixed by the seed)."""
    if data_digest is None:
        from nasforge.plugins import get_registry

        return _load_registered(get_registry().get("task", name), seed)
    try:
        return _DATA_TASKS[(name, data_digest)]
    except KeyError:
        raise DataError(f"data {name!r} (digest {data_digest}) is not loaded in this process; search it with "
                        "data=... here first") from None


@functools.lru_cache(maxsize=8)
def _load_registered(task_def: TaskDef, seed: int) -> Task:
    """Cached per definition, so a task registered again with another loader is loaded again."""
    return task_def.load(seed)


def task_description(task: Task) -> dict[str, Any]:
    """What a model is built from, without the data: name, kind, classes, input shape, layout info (JSON)."""
    info = {k: (list(v) if isinstance(v, tuple) else v) for k, v in task.info.items()
            if isinstance(v, (str, int, float, bool, list, tuple)) and k != "feature_names"}
    return {"name": task.name, "kind": task.kind, "n_classes": task.n_classes,
            "input_shape": list(task.input_shape), "info": info}


def task_from_description(description: dict[str, Any], *, seed: int = 0) -> Task:
    """A :class:`Task` with no data, enough to build a model (see :func:`task_description`)."""
    info = {k: (tuple(v) if isinstance(v, list) else v) for k, v in description.get("info", {}).items()}
    return Task(name=description["name"], kind=description["kind"], seed=seed, n_classes=description.get("n_classes"),
                input_shape=tuple(description["input_shape"]), info=info)
