"""A user's data made into a task: a layout for the family, the kind, seeded splits, preprocessing, a digest.

``nasforge.search("mlp", data=..., target=...)`` calls :func:`prepare_data` before anything else
runs. It reads the data (:mod:`nasforge.data.sources`), picks how the family sees it (a table, images,
a 1-D signal, sequences of features, or integer tokens), infers classification or regression from
the target (``kind=`` overrides), splits off validation and test rows (seeded, stratified for
classification) where the user gave no such split, fits the preprocessing on the train split only
(:mod:`nasforge.data.preprocessing`) and fingerprints the data (:attr:`UserData.digest`). Data
larger than ``memory_limit_mb`` stays on disk and is streamed (:mod:`nasforge.data.streams`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from nasforge.data.features import make_features, split_name
from nasforge.data.fingerprint import digests
from nasforge.data.preprocessing import LabelEncoding, TargetScaling, is_numeric, plain
from nasforge.data.sources import ImageFolder, NpyFile, ParquetFile, RawSplit, TorchItems, read_split
from nasforge.data.tasks import Task, task_description
from nasforge.errors import DataError

SPLITS = ("train", "val", "test")
LAYOUTS = ("tabular", "image", "signal", "sequence", "tokens")
KINDS = ("classification", "regression")
OPTIONS = {
    "val": 0.15,              # fraction of the rows for validation, when no "val" split is given
    "test": 0.15,             # fraction for the test split, when no "test" split is given
    "stream": "auto",         # True: keep the inputs on disk; False: load them; auto: stream above the limit
    "memory_limit_mb": 1024,  # "auto" streams inputs whose float32 rows take more than this
    "num_workers": 0,         # DataLoader reader processes when streaming
    "name": None,             # the data's name (MLflow experiment <family>-<name>); default: the file's stem
    "image_size": None,       # (height, width) images are resized to; default: the most common size
    "cache_dir": None,        # where a streamed Parquet file's preprocessed rows are written
}


@dataclass(kw_only=True)
class UserData:
    """A user's data ready to search: the task, what was inferred and done, and its fingerprint."""

    name: str
    kind: str
    layout: str
    digest: str                          # sha256 (16 hex) of the data as given
    task: Task
    origin: str                          # how it was given ("wine.csv", "(X, y) arrays", ...)
    source: str | None = None            # its path, when it came from a file or folder
    target: str | None = None
    columns: list[str] | None = None     # the input columns, for a table
    example: Any = None                  # a few train rows as given (a DataFrame or an array): a model's example
    preprocessing: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    split_digests: dict[str, str] = field(default_factory=dict)
    kind_note: str = ""                  # why this kind
    split_note: str = ""                 # how the splits were made
    notes: list[str] = field(default_factory=list)   # what preprocessing did
    streamed: bool = False

    def summary(self) -> str:
        """What was found and done, a few lines: source, kind, splits, preprocessing, digest."""
        if self.kind == "classification":
            what = f"classification, {self.task.n_classes} classes"
        else:
            what = "regression (the target is standardized; predictions come back in its units)"
        stream = ", streamed from disk" if self.streamed else ""
        rows = " / ".join(f"{k} {v}" for k, v in self.rows.items())
        lines = [f"data {self.name!r} from {self.origin} ({sum(self.rows.values())} rows, {self.layout}{stream}, "
                 f"digest {self.digest})",
                 f"  {what}" + (f": {self.kind_note}" if self.kind_note else ""),
                 f"  rows: {rows}" + (f" ({self.split_note})" if self.split_note else "")]
        if self.notes:
            lines.append(f"  preprocessing: {'; '.join(self.notes)}")
        return "\n".join(lines)

    def tags(self) -> dict[str, str]:
        """The parent run's tags that say which data was searched."""
        out = {"data_name": self.name, "data_kind": self.kind, "data_layout": self.layout,
               "data_digest": self.digest, "data_origin": self.origin}
        if self.source:
            out["data_source"] = self.source
        if self.target:
            out["data_target"] = self.target
        return out


def check_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``data_options`` merged over the defaults; an unknown key or a bad value is a :class:`DataError`."""
    if options is not None and not isinstance(options, Mapping):
        raise DataError(f"data_options must be a mapping of option -> value, got {options!r}")
    unknown = sorted(set(options or {}) - set(OPTIONS))
    if unknown:
        raise DataError(f"data_options: unknown option {unknown[0]!r}; valid: {', '.join(OPTIONS)}")
    out = {**OPTIONS, **(options or {})}
    for key in ("val", "test"):
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 0.5:
            raise DataError(f"data_options.{key} must be a fraction in (0, 0.5), got {value!r}")
    if out["val"] + out["test"] >= 0.9:
        raise DataError(f"data_options: val + test = {out['val'] + out['test']:g} leaves too little to train on")
    if out["stream"] not in (True, False, "auto"):
        raise DataError(f"data_options.stream must be True, False or 'auto', got {out['stream']!r}")
    for key, low in (("memory_limit_mb", 1), ("num_workers", 0)):
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise DataError(f"data_options.{key} must be an integer >= {low}, got {value!r}")
    if out["name"] is not None and (not isinstance(out["name"], str) or not re.fullmatch(r"[\w.\-]{1,100}",
                                                                                         out["name"])):
        raise DataError(f"data_options.name may use letters, digits, '_', '-', '.', got {out['name']!r}")
    size = out["image_size"]
    if size is not None and (not isinstance(size, (tuple, list)) or len(size) != 2
                             or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size)):
        raise DataError(f"data_options.image_size must be (height, width) in pixels, got {size!r}")
    return out


def prepare_data(data: Any, *, family, target: str | None = None, kind: str | None = None,
                 options: Mapping[str, Any] | None = None, seed: int = 0, taken_names=(),
                 families=None) -> UserData:
    """Read, check, split and preprocess ``data`` for ``family`` (see the module doc).

    ``taken_names``: registered task names the data's name must not shadow; ``families``: the
    registered families, to name those that could take data ``family`` cannot.
    """
    opts = check_options(options)
    if kind is not None and kind not in KINDS:
        raise DataError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if target is not None and not isinstance(target, str):
        raise DataError(f"target must be a column name (a string), got {target!r}")
    raw = _read_splits(data, target=target, options=opts)
    first = raw.get("train", raw.get("all"))
    if hasattr(first.x, "iloc") or isinstance(first.x, ParquetFile):   # a table: every split has its columns
        for name, split in raw.items():
            what = f"{split_name(name)} ({split.origin})" if split.path else split_name(name)
            _check_columns(split.x, what=what, columns=list(first.x.columns),
                           any_order=isinstance(first.x, ParquetFile) or isinstance(split.x, ParquetFile))
    layout = choose_layout(first.x, family=family, families=families)
    for split in raw.values():
        if choose_layout(split.x, family=family, families=families) != layout:
            raise DataError(f"the splits of data are not alike: {first.origin} and {split.origin}")
    for name, split in raw.items():
        if split.y is None:
            split.y = _dataset_labels(split.x, what=split_name(name))
        split.y = _check_targets(split.y, what=split_name(name))
    kind, kind_note = infer_kind(first.y, kind=kind, target=target)
    labels = None
    if kind == "classification":
        labels = LabelEncoding.fit(first.y if "train" in raw else raw["all"].y)
        if len(labels.classes) < 2:
            raise DataError(f"{split_name('train' if 'train' in raw else 'all')}: the target has one class "
                            f"({labels.classes[0]!r}); classification needs at least two")
    splits, split_note = _split(raw, labels=labels, val=opts["val"], test=opts["test"], seed=seed)
    codes = {}
    for name, (split, rows) in splits.items():
        y = _take(split.y, rows)
        if labels is not None:
            codes[name] = labels.encode(y, where=split_name(name))
            if len(codes[name]) == 0:
                raise DataError(f"{split_name(name)}: no rows; give more data or smaller val/test fractions")
        else:
            codes[name] = y
    if labels is not None and len(set(codes["train"].tolist())) < 2:
        raise DataError(f"{split_name('train')}: all rows have one class; classification needs at least two in train")
    features = make_features(splits, layout=layout, opts=opts, seed=seed)
    scaling = TargetScaling.fit(codes["train"]) if kind == "regression" else None
    if scaling is not None and len(scaling.mean) != 1:
        raise DataError(f"data: the regression target has {len(scaling.mean)} columns; give one target column")
    digest, split_digests = digests(raw, splits)
    name = opts["name"] or _default_name(first)
    if name in set(taken_names):
        name = f"{name}-data"
    info = dict(features.info, layouts=(layout,), data_digest=digest)
    task = Task(name=name, kind=kind, seed=seed, n_classes=len(labels.classes) if labels else None,
                input_shape=(features.n_features,), info=info,
                **{f"x_{s}": features.x[s] for s in SPLITS},
                **{f"y_{s}": (codes[s] if labels is not None else scaling.apply(codes[s])) for s in SPLITS})
    preprocessing = {"layout": layout, "kind": kind, "features": features.spec,
                     "target": labels.to_dict() if labels else scaling.to_dict(), "target_column": target,
                     "input_columns": features.columns, "input_shape": list(features.raw_shape),
                     "splits": {s: len(features.x[s]) for s in SPLITS}, "seed": seed}
    preprocessing["task"] = task_description(task)
    return UserData(name=name, kind=kind, layout=layout, digest=digest, task=task, origin=first.origin,
                    source=first.path, target=target, columns=features.columns, preprocessing=preprocessing,
                    rows={s: len(features.x[s]) for s in SPLITS}, split_digests=split_digests,
                    kind_note=kind_note, split_note=split_note, streamed=features.streamed,
                    notes=[*(note for split in raw.values() for note in split.notes), *features.notes],
                    example=_example(first, features.spec))


# -- reading and checking ------------------------------------------------------------------------
def _read_splits(data: Any, *, target: str | None, options: Mapping[str, Any]) -> dict[str, RawSplit]:
    if isinstance(data, Mapping):
        unknown = sorted(set(map(str, data)) - set(SPLITS))
        if unknown:
            raise DataError(f"data: unknown split {unknown[0]!r}; give train and optionally val, test")
        if "train" not in data:
            raise DataError("data: a mapping of splits needs 'train' (val and test are split off it when absent)")
        return {name: read_split(data[name], target=target, what=split_name(name), options=options)
                for name in SPLITS if name in data}
    return {"all": read_split(data, target=target, what="data", options=options)}


def _check_columns(frame, *, what: str, columns: list[str], any_order: bool = False) -> None:
    """Columns match the train split's (``any_order``: as a set, where a Parquet file is read by column
    name) and none of a DataFrame's mixes strings with numbers."""
    if not hasattr(frame, "columns"):
        return   # not a table: "the splits of data are not alike" (below in prepare_data)
    if (set(map(str, frame.columns)) != set(map(str, columns))) if any_order else (list(frame.columns) != columns):
        _column_mismatch(frame.columns, columns=columns, what=what)
    if not hasattr(frame, "iloc"):
        return
    for column in columns:
        values = frame[column]
        if is_numeric(values):
            continue
        kinds = {type(plain(v)).__name__ for v in values.dropna()}
        if len(kinds) > 1 and not kinds <= {"int", "float"}:
            raise DataError(f"{what}: column {column!r} mixes types ({', '.join(sorted(kinds))}); "
                            "make it all numbers or all text")


def _column_mismatch(have, *, columns, what: str):
    missing = sorted(set(map(str, columns)) - set(map(str, have)))
    extra = sorted(set(map(str, have)) - set(map(str, columns)))
    raise DataError(f"{what}: its columns differ from the train split's (missing: {', '.join(missing) or '-'}; "
                    f"extra: {', '.join(extra) or '-'})")


def choose_layout(x, *, family, families=None) -> str:
    """How ``family`` sees inputs ``x``: one of :data:`LAYOUTS`, or a :class:`DataError` saying who could."""
    import numpy as np

    accepted = tuple(getattr(family, "data_layouts", ("tabular",)))
    if not accepted:
        raise DataError(f"family {family.name!r} takes no data of the user's (it learns from its own tasks: "
                        f"task=...); for your data use one of: {', '.join(_takers(families, LAYOUTS))}")
    if isinstance(x, ImageFolder):
        offered, what = ("image",), "a folder of images"
    elif isinstance(x, TorchItems):
        offered, what = _offered(len(x.item_shape) + 1, integer=False, accepted=accepted), \
            f"a Dataset of {x.item_shape} inputs"
    elif isinstance(x, (NpyFile,)):
        offered = _offered(len(x.shape), integer=np.dtype(x.dtype).kind in "iub", accepted=accepted)
        what = f"{Path(x.path).name} of shape {x.shape}"
    elif isinstance(x, ParquetFile) or hasattr(x, "columns"):
        offered, what = ("tabular",), "a table"
    else:
        offered = _offered(x.ndim, integer=x.dtype.kind in "iub", accepted=accepted)
        what = f"an array of shape {x.shape}"
    for layout in offered:
        if layout in accepted:
            return layout
    able = [name for name in _takers(families, offered) if name != family.name]
    hint = f"; families that can: {', '.join(able)}" if able else ""
    raise DataError(f"family {family.name!r} cannot take {what} ({' or '.join(offered)} data; it takes "
                    f"{', '.join(accepted)}){hint}")


def _takers(families, layouts) -> list[str]:
    """Names of the families that take data of any of ``layouts``."""
    return sorted(f.name for f in families or () if set(getattr(f, "data_layouts", ("tabular",))) & set(layouts))


def _offered(ndim: int, *, integer: bool, accepted: tuple[str, ...]) -> tuple[str, ...]:
    """The layouts an array of ``ndim`` dimensions can be read as, in order of preference."""
    if ndim == 2:
        return ("tabular", "signal", "tokens" if integer else "sequence")
    if ndim == 3:
        return ("sequence", "image")      # (N, T, F) for sequence models, (N, H, W) grayscale for CNNs
    if ndim == 4:
        return ("image",)
    return ("tabular",) if ndim == 1 else ()


def _dataset_labels(x, *, what: str):
    """The targets of a torch Dataset: its ``targets`` attribute, else each item's second element."""
    import numpy as np

    dataset = x.dataset
    labels = getattr(dataset, "targets", None)
    if labels is not None and len(labels) == len(dataset):
        return np.asarray([plain(v) for v in labels])
    out = []
    for i in range(len(dataset)):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise DataError(f"{what}: items of a Dataset must be (x, y) pairs; item {i} is a {type(item).__name__}")
        y = item[1]
        out.append(plain(y.detach().cpu().reshape(-1)[0]) if hasattr(y, "detach") and y.numel() == 1 else plain(y))
    return np.asarray(out)


def _check_targets(y, *, what: str):
    """Targets as a numpy array of one kind of value; mixed types and 2-D shapes beyond one column refused."""
    import numpy as np

    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{what}: targets of shape {y.shape}; give one target per row, shape (N,) or (N, 1)")
    if y.dtype == object:
        kinds = {type(plain(v)).__name__ for v in y if plain(v) is not None}
        if len(kinds) > 1 and not kinds <= {"int", "float"}:
            raise DataError(f"{what}: the target mixes types ({', '.join(sorted(kinds))}); give labels of one type")
        if any(plain(v) is None for v in y):
            raise DataError(f"{what}: {sum(plain(v) is None for v in y)} targets are missing (None/NaN); "
                            "drop those rows first")
        if kinds <= {"int", "float"}:
            y = y.astype(np.float64)
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y)
        if bad.any():
            raise DataError(f"{what}: {int(bad.sum())} targets are NaN or infinite (first at row "
                            f"{int(np.flatnonzero(bad)[0])}); drop those rows first")
    return y


def infer_kind(y, *, kind: str | None, target: str | None) -> tuple[str, str]:
    """``classification`` for integer, string and boolean targets, ``regression`` for floats; and why."""
    import numpy as np

    name = f"target {target!r}" if target else "the target"
    if kind is not None:
        return kind, "given (kind=)"
    if y.dtype.kind == "f":
        return "regression", f"{name} holds floats (kind='classification' to override)"
    if y.dtype.kind in "iu":
        distinct = len(np.unique(y))
        if distinct > max(50, 0.05 * len(y)):
            return "regression", f"{name} holds {distinct} distinct integers (kind='classification' to override)"
        return "classification", f"{name} holds integers, {distinct} values (kind='regression' to override)"
    return "classification", f"{name} holds labels"


# -- splitting -----------------------------------------------------------------------------------
def _split(raw: dict[str, RawSplit], *, labels, val: float, test: float, seed: int):
    """``{split: (RawSplit, row indices)}`` for train, val, test; absent splits come out of train."""
    import numpy as np

    base = raw.get("train", raw.get("all"))
    rows = np.arange(len(base))
    missing = [s for s in ("val", "test") if s not in raw]
    out = {s: (raw[s], np.arange(len(raw[s]))) for s in ("val", "test") if s in raw}
    note = ""
    if missing:
        codes = labels.encode(base.y, where=split_name("train" if "train" in raw else "all")) if labels else None
        strat = codes
        if codes is not None and np.bincount(codes).min() < 3:
            strat = None
            note = "some class has fewer than 3 rows: the split is not stratified"
        fractions = {"val": val, "test": test}
        from sklearn.model_selection import train_test_split

        rest = rows
        taken = 0.0
        for name in missing:
            share = fractions[name] / (1.0 - taken)
            try:
                rest, part = train_test_split(rest, test_size=share, random_state=seed,
                                              stratify=None if strat is None else strat[rest])
            except ValueError as exc:
                raise DataError(f"data: cannot split off a {name} set from {len(base)} rows ({exc}); "
                                "give more rows or a separate split") from None
            out[name] = (base, np.sort(part))
            taken += fractions[name]
        rows = np.sort(rest)
        done = "stratified" if strat is not None else "random"
        note = note or f"{' and '.join(missing)} split off, {done}, seed {seed}"
    out["train"] = (base, rows)
    return {s: out[s] for s in SPLITS}, note


def _take(values, rows):
    import numpy as np

    if hasattr(values, "iloc"):
        return values.iloc[rows]
    return np.asarray(values)[rows] if not isinstance(values, np.ndarray) else values[rows]


def _example(split: RawSplit, spec: dict[str, Any], rows: int = 5):
    """The first rows of a split as the user gave them (inputs only): what a served model is shown."""
    import numpy as np

    x = split.x
    if isinstance(x, ImageFolder):
        channels, height, width = spec["image_shape"]
        from nasforge.data.streams import decode_image

        images = [decode_image(f, size=(height, width), channels=channels) for f in x.files[:2]]
        return (np.stack(images) * 255).round().astype(np.uint8)
    if isinstance(x, TorchItems):
        from nasforge.data.streams import as_numpy

        return np.stack([as_numpy(x.dataset[i][0]) for i in range(min(rows, len(x.dataset)))])
    if isinstance(x, NpyFile):
        return np.array(np.load(x.path, mmap_mode="r")[:rows])
    if isinstance(x, ParquetFile):
        import pyarrow.parquet as pq

        return pq.ParquetFile(x.path).read_row_group(0, columns=list(x.columns)).to_pandas().head(rows)
    if hasattr(x, "iloc"):
        return x.head(rows).reset_index(drop=True)
    return np.array(x[:rows])


# -- naming ----------------------------------------------------------------------------------------
def _default_name(split: RawSplit) -> str:
    name = split.name or "data"
    return re.sub(r"[^\w.\-]", "_", name)[:100] or "data"
