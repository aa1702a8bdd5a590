"""Predictions on raw data: the search's preprocessing, the best network, labels decoded.

A :class:`Predictor` holds what a search found -- the family, the best configuration and weights,
the task's shape and the preprocessing fitted on the train split (``preprocessing.json``) -- and
turns inputs in any form ``data=`` took (a DataFrame with the original columns, arrays, a CSV or
Parquet path, ``.npy``, a folder of images) into predictions in the target's own terms: the
original class labels, or regression values in the target's units. ``SearchResult.predict`` and
the MLflow pyfunc model (:mod:`nasforge.results.serving`) are the same code on the same weights.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Mapping

import numpy as np

from nasforge.data.preprocessing import LabelEncoding, TabularPreprocessor, TargetScaling
from nasforge.data.streams import as_numpy, decode_image
from nasforge.data.tasks import Task, task_description
from nasforge.errors import DataError
from nasforge.results.raw_inputs import image_files, is_dataset, read_table, table_blocks

IDENTITY = {"features": {"type": "none"}, "target": {"type": "none"}}   # a registered task: inputs as it has them
CHUNK = 8192


class Predictor:
    """The best model of a search with its preprocessing (see the module doc)."""

    def __init__(self, *, family, network, task: Task, preprocessing: Mapping[str, Any] | None):
        if not getattr(family, "predicts_target", False):
            raise DataError(f"family {family.name!r} does not predict a target (its model's forward is not a "
                            "classifier or regressor); use result.best_model() for the network itself")
        self.family, self.network, self.task = family, network, task
        self.preprocessing = dict(preprocessing or IDENTITY)
        features = self.preprocessing["features"]
        self.tabular = TabularPreprocessor.from_dict(features) if features["type"] == "tabular" else None
        target = self.preprocessing["target"]
        self.labels = LabelEncoding(classes=list(target["classes"])) if target["type"] == "labels" else None
        self.scaling = TargetScaling(mean=target["mean"], scale=target["scale"]) \
            if target["type"] == "standardize" else None
        self.network.eval()

    @property
    def classes(self) -> list[Any] | None:
        """The class labels, in the order of :meth:`predict_proba`'s columns (None for regression)."""
        if self.task.kind != "classification":
            return None
        return list(self.labels.classes) if self.labels else list(range(self.task.n_classes))

    def describe(self) -> dict[str, Any]:
        """What the MLflow pyfunc model stores beside the weights to rebuild this predictor."""
        return {"family": self.family.name, "task": task_description(self.task), "preprocessing": self.preprocessing}

    # -- predicting ----------------------------------------------------------------------
    def predict(self, data) -> np.ndarray:
        """Class labels (the original ones) or regression values (in the target's units), one per row."""
        scores = self.scores(data)
        if self.task.kind == "classification":
            index = scores.argmax(axis=1)
            return self.labels.decode(index) if self.labels else index
        values = scores[:, :1]
        values = self.scaling.invert(values) if self.scaling else values
        return values[:, 0]

    def predict_proba(self, data):
        """Class probabilities as a pandas DataFrame, one column per class label."""
        import pandas as pd

        if self.task.kind != "classification":
            raise DataError("predict_proba is for classification; this search is a regression (use predict)")
        return pd.DataFrame(self.scores(data), columns=self.classes)

    def evaluate(self, data, *, target: str | None = None) -> dict[str, float]:
        """Metrics against known targets (accuracy, balanced_accuracy, log_loss; or rmse, mae, r2):
        see :mod:`nasforge.results.evaluation`."""
        from nasforge.results.evaluation import evaluate

        return evaluate(self, data, target=target)

    def scores(self, data) -> np.ndarray:
        """The network's class probabilities or regression outputs; a table file (tabular searches) is
        read and predicted :data:`~nasforge.results.raw_inputs.FILE_BLOCK_ROWS` rows at a time, so a file larger than memory works."""
        import torch

        blocks = table_blocks(data) if self.tabular is not None else None
        inputs = (self.inputs(block) for block in blocks) if blocks is not None else [self.inputs(data)]
        device = next(self.network.parameters()).device
        out = []
        with torch.no_grad():
            for x in inputs:
                for start in range(0, len(x), CHUNK):
                    batch = torch.as_tensor(x[start:start + CHUNK], dtype=torch.float32, device=device)
                    out.append(self.family.predictions(self.network(batch), self.task).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.task.n_classes or 1))

    # -- inputs --------------------------------------------------------------------------
    def inputs(self, data) -> np.ndarray:
        """``data`` preprocessed as in training: float32 rows of ``prod(task.input_shape)`` values."""
        features = self.preprocessing["features"]
        kind = features["type"]
        width = int(np.prod(self.task.input_shape))
        if kind == "tabular":
            x = self._table(data)
        elif kind == "image":
            x = self._images(data, features)
        else:
            x = self._array(data)
            x = x.reshape(len(x), -1).astype(np.float64) if x.ndim >= 2 else x
            if x.ndim == 2 and x.shape[1] == width and kind in ("sequence", "signal"):
                mean, scale = np.asarray(features["mean"]), np.asarray(features["scale"])
                x = ((x.reshape(len(x), -1, len(mean)) - mean) / scale).reshape(len(x), -1)
        if x.ndim != 2 or x.shape[1] != width:
            raise DataError(f"predict: {x.shape[1] if x.ndim == 2 else x.shape} input values per row, but the model "
                            f"takes {width} ({self._expected()})")
        return np.ascontiguousarray(x, dtype=np.float32)

    def _expected(self) -> str:
        columns = self.preprocessing.get("input_columns")
        if columns:
            return f"{len(columns)} columns: {', '.join(columns[:20])}{' ...' if len(columns) > 20 else ''}"
        return f"inputs of shape {tuple(self.preprocessing.get('input_shape') or self.task.input_shape)}"

    def _table(self, data):
        import pandas as pd

        frame = read_table(data)
        if frame is None:   # arrays: the columns in training order
            array = self._array(data)
            if array.ndim != 2 or array.shape[1] != len(self.tabular.columns):
                raise DataError(f"predict: arrays of shape {array.shape}; the model takes {self._expected()}")
            frame = pd.DataFrame(array, columns=self.tabular.input_columns)
        frame = frame.copy()
        frame.columns = [str(c) for c in frame.columns]
        expected = self.tabular.input_columns
        target = self.preprocessing.get("target_column")
        missing = [c for c in expected if c not in frame.columns]
        extra = [c for c in frame.columns if c not in expected and c != target]
        if missing or extra:
            raise DataError(f"predict: the columns do not match training's (missing: {', '.join(missing) or '-'}; "
                            f"extra: {', '.join(extra) or '-'}); the model takes {self._expected()}")
        trained_missing = set(self.tabular.missing)
        new_missing = [c for c in expected if frame[c].isna().any() and c not in trained_missing]
        if new_missing:
            warnings.warn(f"predict: missing values in {', '.join(new_missing)}, which had none in training; they "
                          "are filled as in training (the train median, or the most frequent category)",
                          stacklevel=4)
        return self.tabular.transform(frame[expected])

    def _images(self, data, features) -> np.ndarray:
        """Images as training read them: a folder (every image under it, in sorted order), a list of
        image files, or arrays ``(N, C, H, W)`` in the training data's scale."""
        channels, height, width = features["image_shape"]
        if isinstance(data, (str, os.PathLike)) and os.path.isdir(data):
            data = image_files(data)
        if isinstance(data, (list, tuple)) and data and all(isinstance(f, (str, os.PathLike)) for f in data):
            return np.stack([decode_image(str(f), size=(height, width), channels=channels).reshape(-1) for f in data])
        array = self._array(data).astype(np.float64)
        if array.ndim == 3 and channels == 1:
            array = array[:, None]
        if array.ndim != 4 or tuple(array.shape[1:]) != (channels, height, width):
            raise DataError(f"predict: images of shape {array.shape[1:]}; the model takes (C, H, W) = "
                            f"{(channels, height, width)} (a folder of image files is resized for you)")
        return (array * features.get("scale", 1.0)).reshape(len(array), -1)

    def _array(self, data) -> np.ndarray:
        if isinstance(data, (str, os.PathLike)):
            path = str(data)
            if path.endswith(".npy"):
                return np.load(path, allow_pickle=False)
            if path.endswith(".npz"):
                with np.load(path, allow_pickle=False) as archive:
                    key = next((k for k in ("x", "X", "inputs", "features") if k in archive.files), None)
                    if key is None:
                        raise DataError(f"predict: {path} has no array named x (it holds {', '.join(archive.files)})")
                    return archive[key]
            raise DataError(f"predict: cannot read {path}; give a DataFrame, arrays, a .csv/.parquet/.npy/.npz file")
        if is_dataset(data):   # items (x, y) or x
            items = (data[i] for i in range(len(data)))
            return np.stack([as_numpy(item[0] if isinstance(item, (tuple, list)) else item) for item in items])
        if hasattr(data, "to_numpy"):
            data = data.to_numpy()
        return as_numpy(data) if hasattr(data, "detach") else np.asarray(data)
