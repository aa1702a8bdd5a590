"""Reading a user's data as given: arrays, data frames, files, folders of images, torch Datasets.

:func:`read_split` turns one ``data=`` value into a :class:`RawSplit` (inputs and targets, not yet
preprocessed or split); :mod:`nasforge.data.prepare` makes a task of them. Every problem is a
:class:`~nasforge.errors.DataError` naming the file, column or value and what would be valid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from nasforge.errors import DataError

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
X_KEYS = ("x", "X", "inputs", "features", "data")
Y_KEYS = ("y", "Y", "targets", "target", "labels", "label")


@dataclass(frozen=True, kw_only=True)
class NpyFile:
    """A ``.npy`` array left on disk (streamed when large): its path, shape and dtype."""

    path: str
    shape: tuple[int, ...]
    dtype: Any


@dataclass(frozen=True, kw_only=True)
class ParquetFile:
    """A Parquet file read by row groups (streamed when large); ``columns`` are the input columns;
    ``source``: the CSV it was converted from (:mod:`nasforge.data.csv_to_parquet`), if any."""

    path: str
    columns: tuple[str, ...]
    n_rows: int
    target: str
    source: str | None = None


@dataclass(frozen=True, kw_only=True)
class ImageFolder:
    """Image files in one subfolder per class (torchvision's ImageFolder layout)."""

    root: str
    files: tuple[str, ...]
    classes: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class TorchItems:
    """A map-style ``torch.utils.data.Dataset`` whose items are ``(x, y)``."""

    dataset: Any
    item_shape: tuple[int, ...]


@dataclass(kw_only=True)
class RawSplit:
    """One split as read: ``x`` is a DataFrame, a numpy array, or one of the on-disk forms above."""

    x: Any
    y: Any                     # numpy array (N,) or (N, k); None while a stream's targets are unread
    origin: str                # how the user gave it, for messages: "wine.csv", "a pandas DataFrame", ...
    name: str | None = None    # a default name for the data (a file's stem)
    path: str | None = None    # the absolute path of a file or folder
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return n_rows(self.x)


def n_rows(x) -> int:
    if isinstance(x, (NpyFile,)):
        return x.shape[0]
    if isinstance(x, ParquetFile):
        return x.n_rows
    if isinstance(x, ImageFolder):
        return len(x.files)
    if isinstance(x, TorchItems):
        return len(x.dataset)
    return len(x)


def read_split(value: Any, *, target: str | None, options: Mapping[str, Any], what: str = "data") -> RawSplit:
    """One split of ``data=``: ``(X, y)``, a DataFrame + ``target``, a file or folder path, or a Dataset.

    ``options``: the checked data options (:func:`nasforge.data.prepare.check_options`); ``stream``,
    ``memory_limit_mb`` and ``cache_dir`` decide whether a CSV file goes through Parquet to stream.
    """
    import numpy as np

    if isinstance(value, (str, os.PathLike)):
        return _read_path(Path(value), target=target, what=what, options=options)
    if _is_frame(value):
        return _from_frame(value, target=target, what=what, origin="a DataFrame")
    frame = arrow_frame(value)
    if frame is not None:
        return _from_frame(frame, target=target, what=what, origin=f"a {_type_name(value)}")
    if isinstance(value, (tuple, list)) and len(value) == 2:
        if target is not None:
            raise DataError(f"{what}: target={target!r} names a column of a table; with (X, y) arrays leave it out")
        return _from_pair(value[0], value[1], what=what)
    if _is_torch_dataset(value):
        return _from_dataset(value, what=what)
    if isinstance(value, np.ndarray) or hasattr(value, "__array__"):
        raise DataError(f"{what}: an array alone has no targets; pass data=(X, y), or a DataFrame with target=")
    raise DataError(f"{what}: cannot read a {_type_name(value)}; give (X, y) arrays, a DataFrame (pandas, polars, "
                    "a pyarrow Table: anything with __arrow_c_stream__) with target=, a .csv/.parquet/.npz file, a "
                    "folder of class subfolders of images, or a torch Dataset of (x, y) items"
                    + ("; a polars LazyFrame: call .collect() first" if type(value).__name__ == "LazyFrame" else ""))


# -- in memory -----------------------------------------------------------------------------
def _is_frame(value) -> bool:
    """A pandas DataFrame (checked without importing pandas)."""
    return type(value).__name__ == "DataFrame" and type(value).__module__.split(".")[0] == "pandas"


def arrow_frame(value):
    """A pandas DataFrame of any table that speaks the Arrow PyCapsule stream interface
    (``__arrow_c_stream__``: a polars DataFrame, a pyarrow Table, a DuckDB result, ...); None for
    anything else, a pandas DataFrame included (it is used as it is)."""
    if _is_frame(value) or not hasattr(value, "__arrow_c_stream__"):
        return None
    import pyarrow as pa

    try:
        table = pa.table(value)
    except (TypeError, ValueError, pa.ArrowException):   # a stream of arrays, not of record batches
        return None
    return table.to_pandas()


def _type_name(value) -> str:
    kind = type(value)
    module = kind.__module__.split(".")[0]
    return kind.__name__ if module == "builtins" else f"{module} {kind.__name__}"


def _from_frame(frame, *, target: str | None, what: str, origin: str, name: str | None = None,
                path: str | None = None) -> RawSplit:
    columns = [str(c) for c in frame.columns]
    if target is None:
        raise DataError(f"{what}: {origin} needs target= naming the column to predict; its columns: "
                        f"{_listing(columns)}")
    if target not in columns:
        raise DataError(f"{what}: {origin} has no column {target!r}; its columns: {_listing(columns)}")
    frame = frame.copy()
    frame.columns = columns
    if len(frame) == 0:
        raise DataError(f"{what}: {origin} has no rows")
    x = frame.drop(columns=[target])
    if x.shape[1] == 0:
        raise DataError(f"{what}: {origin} has no input column besides the target {target!r}")
    y = frame[target].to_numpy()
    return RawSplit(x=x, y=y, origin=origin, name=name, path=path)


def _from_pair(x, y, *, what: str) -> RawSplit:
    import numpy as np

    name = path = None
    origin = "(X, y) arrays"
    if isinstance(x, (str, os.PathLike)):
        x_path = _existing(Path(x), what=f"{what} (X)")
        if x_path.suffix != ".npy":
            raise DataError(f"{what}: X is a path to {x_path.name}; a path in (X, y) must be a .npy file")
        x = _npy_file(x_path, what=what)
        name, path, origin = x_path.stem, str(x_path), f"{x_path.name}"
    elif (frame := x.copy() if _is_frame(x) else arrow_frame(x)) is not None:
        x = frame
        x.columns = [str(c) for c in x.columns]
        origin = "(DataFrame, y)"
    else:
        x = _array(x, what=f"{what} (X)")
    if isinstance(y, (str, os.PathLike)):
        y_path = _existing(Path(y), what=f"{what} (y)")
        if y_path.suffix != ".npy":
            raise DataError(f"{what}: y is a path to {y_path.name}; a path in (X, y) must be a .npy file")
        y = np.load(y_path, allow_pickle=False)
        origin = f"{origin} + {y_path.name}"
    else:
        y = _array(getattr(y, "to_numpy", lambda: y)(), what=f"{what} (y)", numeric=False)
    if n_rows(x) == 0:
        raise DataError(f"{what}: X has no rows")
    if n_rows(x) != len(y):
        raise DataError(f"{what}: X has {n_rows(x)} rows but y has {len(y)}; they must have the same length")
    return RawSplit(x=x, y=y, origin=origin, name=name, path=path)


def _array(value, *, what: str, numeric: bool = True):
    import numpy as np

    if hasattr(value, "detach"):   # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise DataError(f"{what}: cannot be read as an array ({type(exc).__name__}: {exc})") from None
    if array.ndim == 0:
        raise DataError(f"{what}: a single value, not an array of rows")
    if numeric and array.dtype.kind not in "biuf":
        raise DataError(f"{what}: dtype {array.dtype} is not numeric; give numbers (a DataFrame with target= "
                        "for text or categorical columns)")
    return array


# -- files and folders -----------------------------------------------------------------------
def _existing(path: Path, *, what: str) -> Path:
    path = path.expanduser()
    if not path.exists():
        raise DataError(f"{what}: {str(path)!r} does not exist (working directory: {os.getcwd()})")
    return path.resolve()


def _read_path(path: Path, *, target: str | None, what: str, options: Mapping[str, Any]) -> RawSplit:
    path = _existing(path, what=what)
    if path.is_dir():
        if target is not None:
            raise DataError(f"{what}: {path} is a folder of images (one subfolder per class); target= is for tables")
        return _image_folder(path, what=what)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        if _csv_streams(path, options):
            from nasforge.data.csv_to_parquet import csv_as_parquet

            converted = csv_as_parquet(path, target=target, cache_dir=options["cache_dir"], what=what)
            return _parquet(converted, target=target, what=what, given=path)
        import pandas as pd

        try:
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        except Exception as exc:
            raise DataError(f"{what}: cannot read {path} as CSV: {type(exc).__name__}: {exc}") from None
        return _from_frame(frame, target=target, what=what, origin=path.name, name=path.stem, path=str(path))
    if suffix in (".parquet", ".pq"):
        return _parquet(path, target=target, what=what)
    if suffix == ".npz":
        return _npz(path, target=target, what=what)
    if suffix == ".npy":
        raise DataError(f"{what}: {path.name} holds inputs only; pass data=({str(path)!r}, 'y.npy') with the "
                        "targets in a second .npy file")
    raise DataError(f"{what}: {path.name}: unknown format {suffix or '(no suffix)'!r}; valid: .csv, .tsv, "
                    ".parquet, .npz, a pair of .npy files, or a folder of class subfolders of images")


def _csv_streams(path: Path, options: Mapping[str, Any]) -> bool:
    """Whether a CSV file is read through Parquet: ``stream=True``, or ``"auto"`` and the file is larger
    than ``memory_limit_mb`` (pandas would load all of it, as float64 and Python strings)."""
    if options["stream"] != "auto":
        return bool(options["stream"])
    return path.stat().st_size > options["memory_limit_mb"] * (1 << 20)


def _parquet(path: Path, *, target: str | None, what: str, given: Path | None = None) -> RawSplit:
    """A Parquet file; ``given``: the CSV the user gave, converted to ``path`` (messages name it)."""
    shown = given or path
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{what}: reading {shown.name} needs pyarrow (pip install pyarrow)") from None
    try:
        meta = pq.ParquetFile(path)
    except Exception as exc:
        raise DataError(f"{what}: cannot read {path} as Parquet: {type(exc).__name__}: {exc}") from None
    columns = [str(c) for c in meta.schema_arrow.names]
    if target is None or target not in columns:
        hint = "needs target= naming the column to predict" if target is None else f"has no column {target!r}"
        raise DataError(f"{what}: {shown.name} {hint}; its columns: {_listing(columns)}")
    if meta.metadata.num_rows == 0:
        raise DataError(f"{what}: {shown.name} has no rows")
    inputs = tuple(c for c in columns if c != target)
    if not inputs:
        raise DataError(f"{what}: {shown.name} has no input column besides the target {target!r}")
    y = meta.read(columns=[target]).column(0).to_numpy(zero_copy_only=False)
    x = ParquetFile(path=str(path), columns=inputs, n_rows=meta.metadata.num_rows, target=target,
                    source=str(given) if given else None)
    notes = [f"read through Parquet: converted block by block to {path}"] if given else []
    return RawSplit(x=x, y=y, origin=shown.name, name=shown.stem, path=str(shown), notes=notes)


def _npz(path: Path, *, target: str | None, what: str) -> RawSplit:
    import numpy as np

    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise DataError(f"{what}: cannot read {path} as .npz: {type(exc).__name__}: {exc}") from None
    with archive:
        keys = list(archive.files)
        y_key = target if target is not None else next((k for k in Y_KEYS if k in keys), None)
        others = [k for k in keys if k != y_key]
        x_key = next((k for k in X_KEYS if k in others), others[0] if len(others) == 1 else None)
        if y_key not in keys or x_key is None:
            raise DataError(f"{what}: {path.name} holds arrays {_listing(keys)}; name the inputs one of "
                            f"{', '.join(X_KEYS[:2])} and the targets one of {', '.join(Y_KEYS[:2])} "
                            "(or pass target= naming the targets' array)")
        x, y = archive[x_key], archive[y_key]
    split = _from_pair(x, y, what=what)
    split.origin, split.name, split.path = path.name, path.stem, str(path)
    return split


def _npy_file(path: Path, *, what: str) -> NpyFile:
    from nasforge.data.streams import npy_layout

    try:
        shape, dtype, _ = npy_layout(str(path))
    except (ValueError, OSError) as exc:
        raise DataError(f"{what}: {exc}") from None
    if len(shape) < 2:
        raise DataError(f"{what}: {path.name} has shape {shape}; inputs need one row per sample, (N, features)")
    return NpyFile(path=str(path), shape=shape, dtype=dtype)


def _image_folder(root: Path, *, what: str) -> RawSplit:
    import numpy as np

    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files, labels = [], []
    for index, name in enumerate(classes):
        for file in sorted((root / name).rglob("*")):
            if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
                files.append(str(file))
                labels.append(name)
    if not classes:
        raise DataError(f"{what}: {root} has no subfolders; put each class's images in a subfolder named "
                        "after the class (root/cat/1.png, root/dog/2.png)")
    if not files:
        raise DataError(f"{what}: {root} has no images ({', '.join(IMAGE_SUFFIXES)}) in its class folders "
                        f"{_listing(classes)}")
    x = ImageFolder(root=str(root), files=tuple(files), classes=tuple(classes))
    return RawSplit(x=x, y=np.asarray(labels, dtype=object), origin=f"image folder {root.name}/",
                    name=root.name, path=str(root))


# -- torch Datasets ----------------------------------------------------------------------------
def _is_torch_dataset(value) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.utils.data.Dataset)


def _from_dataset(dataset, *, what: str) -> RawSplit:
    from nasforge.data.streams import as_numpy

    if not hasattr(dataset, "__len__"):
        raise DataError(f"{what}: a {type(dataset).__name__} without __len__ (an IterableDataset?); nasforge "
                        "needs a map-style Dataset (__len__ and __getitem__) to split it")
    if len(dataset) == 0:
        raise DataError(f"{what}: the {type(dataset).__name__} has no items")
    first = dataset[0]
    if not isinstance(first, (tuple, list)) or len(first) != 2:
        raise DataError(f"{what}: items of a Dataset must be (x, y) pairs; item 0 of the {type(dataset).__name__} "
                        f"is a {type(first).__name__}")
    shape = tuple(as_numpy(first[0]).shape)
    return RawSplit(x=TorchItems(dataset=dataset, item_shape=shape), y=None,
                    origin=f"a {type(dataset).__name__} of {len(dataset)} items")


def _listing(names, limit: int = 30) -> str:
    names = [str(n) for n in names]
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
