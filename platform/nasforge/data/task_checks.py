"""Checks of a loaded task before the first trial: shapes, dtypes, labels, finite values, non-empty splits.

The same checks run for a user's data and for a plugin's registered task, so a task that would
only fail inside every trial (no ``n_classes``, labels out of range, an ``input_shape`` that does not
match the arrays, an empty split, NaN targets) stops the search up front with a
:class:`~nasforge.errors.DataError` naming the task, the split, the field and the value.
"""

from __future__ import annotations

import math

from nasforge.data.streams import is_stream
from nasforge.errors import DataError

SUPERVISED = ("classification", "regression")


def check_task_data(task, *, family=None) -> None:
    """Raise :class:`DataError` if ``task``'s splits cannot be trained on (see the module doc).

    Tasks that carry no arrays (environments, generated on the fly) are left alone.
    """
    import numpy as np

    if task.kind not in SUPERVISED or task.x_train is None:
        return
    where = f"task {task.name!r}"
    if task.kind == "classification":
        if not isinstance(task.n_classes, int) or isinstance(task.n_classes, bool) or task.n_classes < 2:
            raise DataError(f"{where}: n_classes={task.n_classes!r}; a classification task needs the number of "
                            "classes (an integer >= 2)")
    width = math.prod(task.input_shape) if task.input_shape else None
    if not task.input_shape or not all(isinstance(d, int) and d >= 1 for d in task.input_shape):
        raise DataError(f"{where}: input_shape={task.input_shape!r}; give the shape of one input, e.g. (64,)")
    for split in ("train", "val", "test"):
        x, y = task.split(split)
        if x is None and split == "test":
            continue
        if x is None or y is None:
            raise DataError(f"{where}: the {split} split is missing (x_{split} / y_{split} are None)")
        n = len(x)
        if n == 0:
            raise DataError(f"{where}: the {split} split has no rows")
        if len(y) != n:
            raise DataError(f"{where}: x_{split} has {n} rows but y_{split} has {len(y)}")
        shape = tuple(x.shape)
        if len(shape) != 2 or shape[1] != width:
            raise DataError(f"{where}: x_{split} has shape {shape}; inputs are rows of prod(input_shape) = {width} "
                            f"values (input_shape={tuple(task.input_shape)}): shape ({n}, {width})")
        if not is_stream(x):
            x = np.asarray(x)
            if x.dtype.kind not in "biuf":
                raise DataError(f"{where}: x_{split} has dtype {x.dtype}; inputs must be numbers")
            if x.dtype.kind == "f" and not np.isfinite(x).all():
                raise DataError(f"{where}: x_{split} holds {int((~np.isfinite(x)).sum())} NaN or infinite values")
        y = np.asarray(y)
        if task.kind == "classification":
            _check_labels(y, task=task, split=split)
        else:
            _check_regression_target(y, task=task, split=split)
    if task.kind == "classification" and len(np.unique(np.asarray(task.y_train).reshape(-1))) < 2:
        raise DataError(f"{where}: every row of the train split has the same class; a classifier needs two or more")


def _check_labels(y, *, task, split: str) -> None:
    import numpy as np

    where = f"task {task.name!r}"
    if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
        raise DataError(f"{where}: y_{split} has shape {y.shape}; class labels are one integer per row")
    if y.dtype.kind not in "iub":
        whole = y.dtype.kind == "f" and np.isfinite(y).all() and (y == np.round(y)).all()
        if not whole:
            raise DataError(f"{where}: y_{split} has dtype {y.dtype}; class labels must be integers 0..n_classes-1 "
                            "(encode string labels, or pass data= and let nasforge encode them)")
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= task.n_classes:
        raise DataError(f"{where}: y_{split} holds labels {low}..{high}, but n_classes={task.n_classes}: labels must "
                        f"be 0..{task.n_classes - 1}")


def _check_regression_target(y, *, task, split: str) -> None:
    import numpy as np

    where = f"task {task.name!r}"
    if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
        raise DataError(f"{where}: y_{split} has shape {y.shape}; a regression target is one value per row, "
                        "shape (N,) or (N, 1)")
    if y.dtype.kind not in "biuf":
        raise DataError(f"{where}: y_{split} has dtype {y.dtype}; a regression target must be numbers")
    bad = ~np.isfinite(y.astype(np.float64))
    if bad.any():
        raise DataError(f"{where}: y_{split} holds {int(bad.sum())} NaN or infinite targets")
