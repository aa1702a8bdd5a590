"""Preprocessing of a user's data: fitted on the train split with scikit-learn, kept as JSON, applied in numpy.

Tabular features (:class:`TabularPreprocessor`): numeric columns have missing values replaced by
the train median (``SimpleImputer``) and are standardized (``StandardScaler``); categorical
columns (strings, categories, booleans stored as objects) have missing values replaced by the
most frequent train value and are one-hot encoded (``OneHotEncoder``; at most
``MAX_CATEGORIES`` columns each, rarer categories share one "other" column, unseen ones too).
Classification labels are encoded as 0..K-1 in sorted order (:class:`LabelEncoding`);
regression targets are standardized (:class:`TargetScaling`).

What was fitted is kept as plain numbers and strings (:meth:`to_dict`), so the search's parent
run records it (``preprocessing.json``) and whoever serves the model re-applies it without
unpickling anything; :meth:`transform` applies exactly those numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from nasforge.errors import DataError

MAX_CATEGORIES = 32     # one-hot columns per categorical feature, "other" included
FIT_ROWS = 200_000      # rows of the train split the statistics are fitted on (all, below this)


def plain(value: Any) -> Any:
    """A numpy scalar (or anything with ``.item()``) as the Python value JSON can hold."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


@dataclass(kw_only=True)
class NumericColumn:
    name: str
    fill: float       # the train median: replaces a missing value
    mean: float
    scale: float      # the train standard deviation (1.0 for a constant column)


@dataclass(kw_only=True)
class CategoricalColumn:
    name: str
    fill: Any                 # the most frequent train value: replaces a missing value
    categories: list[Any]     # one output column each, in this order
    other: bool               # one more column for rarer and unseen categories


@dataclass(kw_only=True)
class TabularPreprocessor:
    """Numeric standardization and one-hot encoding of a table's columns (see the module doc)."""

    columns: list[NumericColumn | CategoricalColumn]
    missing: dict[str, int] = field(default_factory=dict)   # column -> missing train values imputed

    # -- fitting -------------------------------------------------------------------------
    @classmethod
    def fit(cls, table, *, seed: int = 0) -> "TabularPreprocessor":
        """Fit on ``table`` (a pandas DataFrame, or a 2-D numeric array whose columns are named 0..n-1)."""
        import numpy as np
        import pandas as pd
        from sklearn.impute import SimpleImputer
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        frame = table if isinstance(table, pd.DataFrame) else pd.DataFrame(np.asarray(table))
        if len(frame) > FIT_ROWS:
            frame = frame.sample(n=FIT_ROWS, random_state=seed)
        columns: list[NumericColumn | CategoricalColumn] = []
        missing: dict[str, int] = {}
        for name in frame.columns:
            values = frame[name]
            n_missing = int(values.isna().sum())
            if n_missing:
                missing[str(name)] = n_missing
            if is_numeric(values):
                numbers = values.to_numpy(dtype=np.float64, na_value=np.nan).reshape(-1, 1)
                if np.isnan(numbers).all():
                    numbers = np.zeros_like(numbers)          # an empty column: a constant 0
                imputer = SimpleImputer(strategy="median").fit(numbers)
                scaler = StandardScaler().fit(imputer.transform(numbers))
                columns.append(NumericColumn(name=str(name), fill=float(imputer.statistics_[0]),
                                             mean=float(scaler.mean_[0]), scale=float(scaler.scale_[0])))
            else:
                texts = values.astype(object).where(values.notna(), None).to_numpy().reshape(-1, 1)
                imputer = SimpleImputer(strategy="most_frequent", missing_values=None).fit(texts)
                encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=MAX_CATEGORIES,
                                        sparse_output=False).fit(imputer.transform(texts))
                rare = encoder.infrequent_categories_[0]
                rare = set() if rare is None else {plain(v) for v in rare}
                kept = [plain(v) for v in encoder.categories_[0] if plain(v) not in rare]
                columns.append(CategoricalColumn(name=str(name), fill=plain(imputer.statistics_[0]),
                                                 categories=kept, other=bool(rare)))
        return cls(columns=columns, missing=missing)

    # -- applying ------------------------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        """The names of the output columns (``col`` or ``col=category``, ``col=<other>``)."""
        out: list[str] = []
        for column in self.columns:
            if isinstance(column, NumericColumn):
                out.append(column.name)
            else:
                out += [f"{column.name}={c}" for c in column.categories] + ([f"{column.name}=<other>"]
                                                                           if column.other else [])
        return out

    @property
    def input_columns(self) -> list[str]:
        return [c.name for c in self.columns]

    def transform(self, table):
        """The table's rows as a float32 array ``(N, len(feature_names))``."""
        import numpy as np
        import pandas as pd

        frame = table if isinstance(table, pd.DataFrame) else pd.DataFrame(np.asarray(table))
        frame.columns = [str(c) for c in frame.columns]
        blocks = []
        for column in self.columns:
            values = frame[column.name]
            if isinstance(column, NumericColumn):
                numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
                numbers = np.where(np.isnan(numbers), column.fill, numbers)
                blocks.append(((numbers - column.mean) / column.scale)[:, None])
            else:
                texts = values.astype(object).where(values.notna(), column.fill).to_numpy()
                index = {category: i for i, category in enumerate(column.categories)}
                width = len(column.categories) + (1 if column.other else 0)
                codes = np.array([index.get(plain(v), len(column.categories)) for v in texts], dtype=np.int64)
                block = np.zeros((len(texts), width + 1))
                block[np.arange(len(texts)), codes] = 1.0
                blocks.append(block[:, :width])   # without "other": unseen categories are all zeros
        if not blocks:
            return np.zeros((len(frame), 0), dtype=np.float32)
        return np.concatenate(blocks, axis=1).astype(np.float32)

    # -- keeping -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"type": "tabular", "columns": [
            {"name": c.name, "kind": "numeric", "fill": c.fill, "mean": c.mean, "scale": c.scale}
            if isinstance(c, NumericColumn) else
            {"name": c.name, "kind": "categorical", "fill": c.fill, "categories": c.categories, "other": c.other}
            for c in self.columns], "missing_imputed": dict(self.missing)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TabularPreprocessor":
        columns: list[NumericColumn | CategoricalColumn] = []
        for c in data["columns"]:
            if c["kind"] == "numeric":
                columns.append(NumericColumn(name=c["name"], fill=c["fill"], mean=c["mean"], scale=c["scale"]))
            else:
                columns.append(CategoricalColumn(name=c["name"], fill=c["fill"], categories=list(c["categories"]),
                                                 other=c["other"]))
        return cls(columns=columns, missing=dict(data.get("missing_imputed", {})))


def is_numeric(values) -> bool:
    """Whether a pandas column holds numbers (booleans count as 0/1)."""
    import pandas as pd

    return pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)


@dataclass(kw_only=True)
class LabelEncoding:
    """Class labels <-> 0..K-1 (sorted, as ``numpy.unique`` orders them)."""

    classes: list[Any]

    @classmethod
    def fit(cls, labels) -> "LabelEncoding":
        import numpy as np

        return cls(classes=[plain(v) for v in np.unique(np.asarray(labels))])

    def encode(self, labels, *, where: str = "labels"):
        import numpy as np

        labels = np.asarray(labels)
        index = {c: i for i, c in enumerate(self.classes)}
        codes = np.fromiter((index.get(plain(v), -1) for v in labels.reshape(-1)), dtype=np.int64, count=labels.size)
        if (codes < 0).any():
            unknown = sorted({str(plain(v)) for v, c in zip(labels.reshape(-1), codes) if c < 0})
            raise DataError(f"{where}: labels {', '.join(unknown[:5])} do not occur in the train split "
                            f"(its classes: {', '.join(map(str, self.classes[:20]))})")
        return codes

    def decode(self, codes: Sequence[int]):
        import numpy as np

        return np.asarray(self.classes, dtype=object)[np.asarray(codes, dtype=np.int64)]

    def to_dict(self) -> dict[str, Any]:
        return {"type": "labels", "classes": list(self.classes)}


@dataclass(kw_only=True)
class TargetScaling:
    """A regression target standardized with the train mean and standard deviation."""

    mean: list[float]
    scale: list[float]

    @classmethod
    def fit(cls, y) -> "TargetScaling":
        import numpy as np

        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        scale = y.std(axis=0)
        return cls(mean=[float(v) for v in y.mean(axis=0)], scale=[float(s) if s > 0 else 1.0 for s in scale])

    def apply(self, y):
        import numpy as np

        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        return ((y - np.asarray(self.mean)) / np.asarray(self.scale)).astype(np.float32)

    def invert(self, y):
        import numpy as np

        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        return y * np.asarray(self.scale) + np.asarray(self.mean)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "standardize", "mean": self.mean, "scale": self.scale}
