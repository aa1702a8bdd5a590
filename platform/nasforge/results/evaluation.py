"""Score a search's model on labelled data the search never saw: ``result.evaluate(data)``.

The data come in the forms ``data=`` takes with the target included -- a table (DataFrame, Arrow
table, .csv / .tsv / .parquet path, read in blocks) holding the target column, ``(inputs,
targets)`` arrays, a .npz with ``x`` and ``y``, a torch Dataset of ``(x, y)`` items, or a folder of
class subfolders of images -- and the targets in their own terms (the original class labels, the
regression values in their units). The predictions are those of ``result.predictor()``,
so the figures are those of the served model. Metrics (as scikit-learn defines them):

* classification: ``accuracy``, ``balanced_accuracy`` (the mean recall over the classes present),
  ``log_loss`` (mean cross-entropy of the predicted probabilities, clipped at 1e-15);
* regression: ``rmse``, ``mae``, ``r2`` (against the data's own mean);
* both: ``n_rows``.
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterator

import numpy as np

from nasforge.errors import DataError
from nasforge.results.raw_inputs import is_dataset, read_table, table_blocks

EPS = 1e-15   # scikit-learn's clip of a probability in log_loss


def evaluate(predictor, data, *, target: str | None = None) -> dict[str, float]:
    """The metrics of ``predictor`` on labelled ``data`` (see the module doc)."""
    scores = ClassificationScores(predictor) if predictor.task.kind == "classification" else RegressionScores(predictor)
    for inputs, targets in labelled_blocks(predictor, data, target=target):
        if len(inputs) != len(targets):
            raise DataError(f"evaluate: {len(inputs)} input rows but {len(targets)} targets")
        scores.add(predictor.scores(inputs), targets)
    if scores.n == 0:
        raise DataError("evaluate: the data have no rows")
    return scores.result()


def labelled_blocks(predictor, data, *, target: str | None) -> Iterator[tuple[Any, np.ndarray]]:
    """``(inputs, targets)`` pairs: one for most forms, one per block of a table file."""
    if isinstance(data, (tuple, list)) and len(data) == 2:
        yield data[0], _targets(data[1])
        return
    if is_dataset(data):
        from nasforge.data.streams import as_numpy

        items = [data[i] for i in range(len(data))]
        if items and not all(isinstance(item, (tuple, list)) and len(item) == 2 for item in items):
            raise DataError(f"evaluate: the {type(data).__name__}'s items must be (x, y) pairs")
        yield np.stack([as_numpy(x) for x, _ in items]), _targets([as_numpy(y) for _, y in items])
        return
    if isinstance(data, (str, os.PathLike)):
        path = str(data)
        if not os.path.exists(path):
            raise DataError(f"evaluate: {path!r} does not exist")
        if os.path.isdir(path) or path.endswith(".npz"):   # read as data= reads them: the same names, checks
            yield from _read_as_data(predictor, path)
            return
    column = _target_column(predictor, target)
    blocks = table_blocks(data)
    if blocks is None:
        frame = read_table(data)
        if frame is None:
            what = repr(str(data)) if isinstance(data, (str, os.PathLike)) else f"a {type(data).__name__}"
            raise DataError(f"evaluate: cannot read {what}; give a table holding the target column "
                            f"{column!r} (a DataFrame, .csv, .parquet), (inputs, targets), a .npz with x and y, a "
                            "Dataset of (x, y) items or a folder of class subfolders of images")
        blocks = [frame]
    for block in blocks:
        block = block.rename(columns=str)
        if column not in block.columns:
            raise DataError(f"evaluate: no target column {column!r} in the data (its columns: "
                            f"{', '.join(block.columns[:20])}); name it with target= (--target)")
        yield block.drop(columns=[column]), _targets(block[column].to_numpy(), column=column)


def _target_column(predictor, target: str | None) -> str:
    if predictor.tabular is None:
        raise DataError("evaluate: this search did not train on a table; give (inputs, targets) -- on the command "
                        "line a .npz with x and y, or two .npy files")
    column = target or predictor.preprocessing.get("target_column")
    if not column:
        raise DataError("evaluate: name the target column with target= (--target)")
    return str(column)


def _read_as_data(predictor, path: str) -> Iterator[tuple[Any, np.ndarray]]:
    """A folder of class subfolders of images (its files and their folders' names) or a .npz (its
    inputs and targets arrays), through :func:`nasforge.data.sources.read_split` as ``data=`` reads them."""
    from nasforge.data.sources import ImageFolder, read_split

    folder = os.path.isdir(path)
    if folder and predictor.preprocessing["features"]["type"] != "image":
        raise DataError(f"evaluate: {path} is a folder, but this search did not train on images")
    split = read_split(path, target=None, options={}, what="evaluate")   # options: only a CSV reads them
    yield (list(split.x.files) if isinstance(split.x, ImageFolder) else split.x), _targets(split.y)


def _targets(values, *, column: str | None = None) -> np.ndarray:
    targets = np.asarray(values.detach().cpu().numpy() if hasattr(values, "detach") else values)
    if targets.ndim == 2 and targets.shape[1] == 1:
        targets = targets[:, 0]
    if targets.ndim != 1:
        raise DataError(f"evaluate: targets of shape {targets.shape}; give one target per row")
    missing = _missing(targets)
    if missing:
        where = f" (column {column!r})" if column else ""
        raise DataError(f"evaluate: {missing} rows have no target value{where}; drop them first")
    return targets


def _missing(targets: np.ndarray) -> int:
    if targets.dtype.kind == "f":
        return int(np.isnan(targets).sum())
    if targets.dtype.kind == "O":
        return sum(v is None or (isinstance(v, float) and math.isnan(v)) for v in targets)
    return 0


class ClassificationScores:
    """Running counts for accuracy, balanced accuracy and log loss."""

    def __init__(self, predictor):
        self.predictor = predictor
        k = predictor.task.n_classes
        self.n, self.correct, self.nll = 0, 0, 0.0
        self.per_class = np.zeros(k, dtype=np.int64)
        self.per_class_correct = np.zeros(k, dtype=np.int64)

    def add(self, probabilities: np.ndarray, targets: np.ndarray) -> None:
        codes = self._codes(targets)
        hit = probabilities.argmax(axis=1) == codes
        self.n += len(codes)
        self.correct += int(hit.sum())
        self.nll -= float(np.log(np.clip(probabilities[np.arange(len(codes)), codes], EPS, 1.0)).sum())
        self.per_class += np.bincount(codes, minlength=len(self.per_class))
        self.per_class_correct += np.bincount(codes[hit], minlength=len(self.per_class))

    def _codes(self, targets: np.ndarray) -> np.ndarray:
        labels = self.predictor.labels
        if labels is not None:
            return labels.encode(targets, where="evaluate: the targets")
        k = len(self.per_class)
        if targets.dtype.kind not in "iub" and not (targets.dtype.kind == "f" and np.all(targets == np.round(targets))):
            raise DataError(f"evaluate: class targets must be integers 0..{k - 1}, got {targets.dtype} values")
        codes = targets.astype(np.int64)
        bad = codes[(codes < 0) | (codes >= k)]
        if len(bad):
            raise DataError(f"evaluate: class {int(bad[0])} is not one of the model's classes 0..{k - 1}")
        return codes

    def result(self) -> dict[str, float]:
        present = self.per_class > 0
        recall = self.per_class_correct[present] / self.per_class[present]
        return {"accuracy": self.correct / self.n, "balanced_accuracy": float(recall.mean()),
                "log_loss": self.nll / self.n, "n_rows": self.n}


class RegressionScores:
    """Running sums for RMSE, MAE and R^2 (in the target's units)."""

    def __init__(self, predictor):
        self.predictor = predictor
        self.n, self.sse, self.sae = 0, 0.0, 0.0
        self.mean, self.m2 = 0.0, 0.0   # of the targets, merged block by block (Chan et al. 1979)

    def add(self, outputs: np.ndarray, targets: np.ndarray) -> None:
        try:
            y = targets.astype(np.float64)
        except (TypeError, ValueError):
            raise DataError(f"evaluate: regression targets must be numbers, got {targets[:3].tolist()}") from None
        values = outputs[:, :1]
        scaling = self.predictor.scaling
        predicted = (scaling.invert(values) if scaling else values)[:, 0]
        error = predicted - y
        self.sse += float(error @ error)
        self.sae += float(np.abs(error).sum())
        n, mean = len(y), float(y.mean()) if len(y) else 0.0
        delta, total = mean - self.mean, self.n + n
        if n:
            self.m2 += float(((y - mean) ** 2).sum()) + delta * delta * self.n * n / total
            self.mean += delta * n / total
        self.n = total

    def result(self) -> dict[str, float]:
        return {"rmse": math.sqrt(self.sse / self.n), "mae": self.sae / self.n,
                "r2": 1.0 - self.sse / self.m2 if self.m2 > 0 else float("nan"), "n_rows": self.n}
