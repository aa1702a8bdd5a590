"""A user's inputs as the family will see them: scaled or encoded with train statistics, in memory or on disk.

:func:`make_features` takes the splits :mod:`nasforge.data.prepare` made (each a raw split and its
row numbers) and returns float32 rows per split -- arrays, or :mod:`nasforge.data.streams` sources
for data that stays on disk -- with the fitted preprocessing as JSON and the layout's shape hints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasforge.data.csv_to_parquet import cache_folder
from nasforge.data.file_digest import file_fingerprint
from nasforge.data.fingerprint import spec_digest
from nasforge.data.preprocessing import TabularPreprocessor
from nasforge.data.sources import ImageFolder, NpyFile, ParquetFile, RawSplit, TorchItems
from nasforge.errors import DataError

IMAGE_SAMPLE = 512            # images whose size is looked at to choose the common size


def split_name(split: str) -> str:
    """How messages name a split: ``data`` (one data set) or ``data['val']``."""
    return "data" if split == "all" else f"data[{split!r}]"


@dataclass(kw_only=True)
class Features:
    x: dict[str, Any]                  # split -> float32 array (N, n_features) or a RowSource
    n_features: int
    raw_shape: tuple[int, ...]         # one input as given (columns, or (T, F), (C, H, W), ...)
    spec: dict[str, Any]               # what was fitted (JSON)
    info: dict[str, Any]               # task.info entries: the layout's shape keys
    columns: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    streamed: bool = False


def make_features(splits, *, layout: str, opts: dict[str, Any], seed: int) -> Features:
    """The features of every split (``splits``: name -> (raw split, row numbers)) for ``layout``."""
    base = splits["train"][0].x
    if isinstance(base, ImageFolder):
        return _image_foldermake_features(splits, opts=opts)
    if isinstance(base, TorchItems):
        return _datasetmake_features(splits, layout=layout, opts=opts)
    if any(isinstance(split.x, ParquetFile) for split, _ in splits.values()):   # a table, some of it on disk
        return _parquetmake_features(splits, opts=opts, seed=seed)
    if isinstance(base, NpyFile):
        return _npymake_features(splits, layout=layout, opts=opts, seed=seed)
    if hasattr(base, "columns"):
        return _tablemake_features(splits, seed=seed)
    return _arraymake_features(splits, layout=layout)


def _tablemake_features(splits, *, seed: int) -> Features:
    """A DataFrame: numeric columns standardized, categorical ones one-hot encoded (fitted on train)."""
    train = splits["train"][0].x.iloc[splits["train"][1]]
    pre = TabularPreprocessor.fit(train, seed=seed)
    x = {name: pre.transform(split.x.iloc[rows]) for name, (split, rows) in splits.items()}
    numeric = sum(1 for c in pre.columns if not hasattr(c, "categories"))
    notes = [f"{numeric} numeric columns standardized, {len(pre.columns) - numeric} categorical one-hot "
             f"({len(pre.feature_names)} features)"]
    if pre.missing:
        notes.append(f"{sum(pre.missing.values())} missing train values imputed in "
                     f"{', '.join(sorted(pre.missing))}")
    return Features(x=x, n_features=len(pre.feature_names), raw_shape=(len(pre.columns),), spec=pre.to_dict(),
                     info={"feature_names": pre.feature_names}, columns=pre.input_columns, notes=notes)


def _arraymake_features(splits, *, layout: str) -> Features:
    """In-memory numpy inputs, scaled for their layout (statistics from train only)."""
    import numpy as np

    arrays = {name: split.x[rows] for name, (split, rows) in splits.items()}
    shape = tuple(arrays["train"].shape[1:])
    for name, array in arrays.items():
        if tuple(array.shape[1:]) != shape:
            raise DataError(f"{split_name(name)}: inputs of shape {array.shape[1:]}, but train's are {shape}")
        if array.dtype.kind == "f" and not np.isfinite(array).all() and layout != "tabular":
            raise DataError(f"{split_name(name)}: {int((~np.isfinite(array)).sum())} input values are NaN or infinite")
    if layout == "tabular":
        pre = TabularPreprocessor.fit(arrays["train"])
        x = {name: pre.transform(a) for name, a in arrays.items()}
        notes = [f"{shape[0]} columns standardized"]
        if pre.missing:
            notes.append(f"{sum(pre.missing.values())} missing train values imputed")
        return Features(x=x, n_features=shape[0], raw_shape=shape, spec=pre.to_dict(), info={}, notes=notes)
    if layout == "tokens":
        low = min(int(a.min()) for a in arrays.values())
        if low < 0:
            raise DataError(f"data: token ids must be >= 0, found {low}")
        vocab = max(int(a.max()) for a in arrays.values()) + 1
        x = {name: a.astype(np.float32) for name, a in arrays.items()}
        return Features(x=x, n_features=shape[0], raw_shape=shape, spec={"type": "tokens", "vocab_size": vocab},
                         info={"sequence_shape": (shape[0],), "vocab_size": vocab},
                         notes=[f"integer tokens, vocabulary {vocab}"])
    if layout == "image":
        channels_first = len(shape) == 3
        image_shape = shape if channels_first else (1, *shape)
        scale = 1 / 255 if arrays["train"].dtype == np.uint8 else 1.0
        x = {name: (a.reshape(len(a), -1) * scale).astype(np.float32) for name, a in arrays.items()}
        return Features(x=x, n_features=int(np.prod(shape)), raw_shape=shape,
                         spec={"type": "image", "scale": scale, "image_shape": list(image_shape)},
                         info={"image_shape": tuple(int(v) for v in image_shape)},
                         notes=["pixels / 255" if scale != 1.0 else "pixels as given"])
    # sequences (N, T, F) and signals (N, L): standardized per feature with train statistics
    steps, feats = (shape[0], shape[1]) if len(shape) == 2 else (shape[0], 1)
    train = arrays["train"].reshape(len(arrays["train"]), steps, feats).astype(np.float64)
    mean, std = train.mean(axis=(0, 1)), train.std(axis=(0, 1))
    std = np.where(std > 0, std, 1.0)
    x = {name: ((a.reshape(len(a), steps, feats) - mean) / std).reshape(len(a), -1).astype(np.float32)
         for name, a in arrays.items()}
    spec = {"type": layout, "mean": mean.tolist(), "scale": std.tolist()}
    info = {"sequence_shape": (steps, feats)} if layout == "sequence" else {"signal_shape": (1, steps)}
    return Features(x=x, n_features=steps * feats, raw_shape=shape, spec=spec, info=info,
                     notes=[f"standardized per feature ({feats})"])


def stays_on_disk(opts: dict[str, Any], n: int, n_features: int) -> bool:
    if opts["stream"] != "auto":
        return bool(opts["stream"])
    return n * n_features * 4 > opts["memory_limit_mb"] * (1 << 20)


def _npymake_features(splits, *, layout: str, opts: dict[str, Any], seed: int) -> Features:
    """A ``.npy`` pair: loaded when small, else streamed by rows with the numeric preprocessing per batch."""
    import numpy as np

    from nasforge.data.streams import NpyRows, NumericTransform

    base = splits["train"][0].x
    total = sum(len(rows) for _, rows in splits.values())
    n_features = int(np.prod(base.shape[1:]))
    if not stays_on_disk(opts, total, n_features):
        loaded = {name: (RawSplit(x=np.load(split.x.path, allow_pickle=False), y=split.y, origin=split.origin),
                         rows) for name, (split, rows) in splits.items()}
        return _arraymake_features(loaded, layout=layout)
    if layout not in ("tabular", "signal", "image"):
        raise DataError(f"data: streaming {layout} inputs from .npy is not supported; use a torch Dataset")
    sources = {name: NpyRows(split.x.path, num_workers=opts["num_workers"]).subset(rows)
               for name, (split, rows) in splits.items()}
    train = sources["train"]
    sample_rows = min(len(train), max(256, (64 << 20) // max(8 * n_features, 1)))
    sample = train.read(np.random.default_rng(seed).choice(len(train), size=sample_rows, replace=False))
    info: dict[str, Any] = {}
    if layout == "tabular":
        pre = TabularPreprocessor.fit(sample)
        transform = NumericTransform(fill=np.array([c.fill for c in pre.columns]),
                                     mean=np.array([c.mean for c in pre.columns]),
                                     scale=np.array([c.scale for c in pre.columns]))
        spec = pre.to_dict()
        note = f"{n_features} columns standardized (statistics from {sample_rows} train rows)"
    else:
        scale = 1 / 255 if np.dtype(base.dtype) == np.uint8 else 1.0
        transform = NumericTransform(fill=np.zeros(1), mean=np.zeros(1), scale=np.full(1, 1 / scale))
        spec = {"type": layout, "scale": scale}
        shape = tuple(base.shape[1:])
        info = {"image_shape": shape if len(shape) == 3 else (1, *shape)} if layout == "image" \
            else {"signal_shape": (1, shape[0])}
        note = "pixels / 255" if scale != 1.0 else ""
    x = {name: NpyRows(s.path, rows=s.rows, transform=transform, num_workers=opts["num_workers"])
         for name, s in sources.items()}
    return Features(x=x, n_features=n_features, raw_shape=tuple(base.shape[1:]), spec=spec, info=info,
                     notes=[n for n in (note,) if n], streamed=True)


def _parquetmake_features(splits, *, opts: dict[str, Any], seed: int) -> Features:
    """Parquet: small files become DataFrames; large ones are read by row groups into float32 caches,
    one per file, with the train rows' preprocessing. The splits may come from one file, from a file
    each, or some from a DataFrame (a small CSV next to a large one): those are preprocessed in memory."""
    import pyarrow.parquet as pq

    from nasforge.data.streams import NpyRows, write_npy

    train, train_rows = splits["train"]
    columns = list(train.x.columns)
    files = {}                                         # path -> ParquetFile, each file once
    for split, _ in splits.values():
        if isinstance(split.x, ParquetFile):
            files.setdefault(split.x.path, split.x)
    width = len(columns) * 8
    total = sum(f.n_rows for f in files.values()) + sum(len(s.x) for s, _ in splits.values()
                                                         if not isinstance(s.x, ParquetFile))
    if not stays_on_disk(opts, total, width // 4):
        frames = {path: pq.ParquetFile(path).read(columns=columns).to_pandas() for path in files}
        loaded = {name: (RawSplit(x=frames[split.x.path] if isinstance(split.x, ParquetFile) else split.x,
                                  y=split.y, origin=split.origin), rows)
                  for name, (split, rows) in splits.items()}
        return _tablemake_features(loaded, seed=seed)
    fitted = _fit_rows(train.x, train_rows, columns=columns, limit=max(1000, (64 << 20) // max(width, 1)))
    pre = TabularPreprocessor.fit(fitted, seed=seed)
    cache_dir = cache_folder(opts["cache_dir"])
    sources = {}
    for path, file in files.items():
        cache = cache_dir / f"{Path(path).stem}-{file_fingerprint(path)}-{spec_digest(pre.to_dict())}.npy"
        if not cache.exists():
            reader = pq.ParquetFile(path)
            blocks = (pre.transform(reader.read_row_group(g, columns=columns).to_pandas())
                      for g in range(reader.num_row_groups))
            write_npy(str(cache), blocks, n_rows=file.n_rows, n_features=len(pre.feature_names))
        sources[path] = NpyRows(str(cache), num_workers=opts["num_workers"])
    x = {name: sources[split.x.path].subset(rows) if isinstance(split.x, ParquetFile)
         else pre.transform(split.x.iloc[rows][columns])
         for name, (split, rows) in splits.items()}
    notes = [f"{len(pre.columns)} columns preprocessed by row groups into "
             + ", ".join(str(s.path) for s in sources.values())]
    return Features(x=x, n_features=len(pre.feature_names), raw_shape=(len(pre.columns),), spec=pre.to_dict(),
                     info={"feature_names": pre.feature_names}, columns=pre.input_columns, notes=notes,
                     streamed=True)


def _fit_rows(x, rows, *, columns: list[str], limit: int):
    """The train rows the preprocessing is fitted on: a DataFrame's, or the first row groups' of a
    Parquet file until ``limit`` rows."""
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    if not isinstance(x, ParquetFile):
        return x.iloc[rows]
    reader = pq.ParquetFile(x.path)
    in_train = np.zeros(x.n_rows, dtype=bool)
    in_train[rows] = True
    parts, seen = [], 0
    for group in range(reader.num_row_groups):
        part = reader.read_row_group(group, columns=columns).to_pandas()
        parts.append(part[in_train[seen:seen + len(part)]])
        seen += len(part)
        if sum(len(p) for p in parts) >= limit:
            break
    return pd.concat(parts)


def _image_foldermake_features(splits, *, opts: dict[str, Any]) -> Features:
    """Images: every file opened (an unreadable one is named), one size and channel count, in [0, 1]."""
    from collections import Counter

    import numpy as np
    from PIL import Image, UnidentifiedImageError

    sizes, modes = Counter(), set()
    files = [f for split, rows in splits.values() for f in (split.x.files[i] for i in rows)]
    for index, file in enumerate(files):
        try:
            with Image.open(file) as image:
                if index < IMAGE_SAMPLE:
                    sizes[(image.height, image.width)] += 1
                modes.add(image.mode)
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"data: cannot read image {file}: {type(exc).__name__}: {exc}") from None
    size = tuple(opts["image_size"] or sizes.most_common(1)[0][0])
    channels = 1 if modes <= {"L", "1", "I", "I;16", "F", "LA"} else 3
    n_features = channels * size[0] * size[1]
    stream = stays_on_disk(opts, len(files), n_features)
    from nasforge.data.streams import ImageRows

    x = {}
    for name, (split, rows) in splits.items():
        source = ImageRows([split.x.files[i] for i in rows], size=size, channels=channels,
                           num_workers=opts["num_workers"])
        x[name] = source if stream else source.read(np.arange(len(source)))
    resized = sum(count for s, count in sizes.items() if s != size)
    notes = [f"{channels} channel(s), {size[0]}x{size[1]} pixels in [0, 1]"]
    if resized:
        notes.append(f"images of other sizes resized to {size[0]}x{size[1]}")
    return Features(x=x, n_features=n_features, raw_shape=(channels, *size),
                     spec={"type": "image", "scale": 1 / 255, "image_shape": [channels, *size],
                           "resize_to": list(size)},
                     info={"image_shape": (channels, *size)}, notes=notes, streamed=stream)


def _datasetmake_features(splits, *, layout: str, opts: dict[str, Any]) -> Features:
    """A torch Dataset: items read as they are (no preprocessing), loaded when small, streamed otherwise."""
    import numpy as np

    from nasforge.data.streams import DatasetRows

    base = splits["train"][0].x
    shape = base.item_shape
    n_features = int(np.prod(shape))
    total = sum(len(rows) for _, rows in splits.values())
    stream = stays_on_disk(opts, total, n_features)
    x = {}
    for name, (split, rows) in splits.items():
        if tuple(split.x.item_shape) != tuple(shape):
            raise DataError(f"{split_name(name)}: items of shape {split.x.item_shape}, but train's are {shape}")
        source = DatasetRows(split.x.dataset, indices=rows, n_features=n_features, num_workers=opts["num_workers"])
        x[name] = source if stream else source.read(np.arange(len(source)))
    if layout == "image":
        image_shape = shape if len(shape) == 3 else (1, *shape)
        info = {"image_shape": tuple(int(v) for v in image_shape)}
    elif layout == "sequence":
        info = {"sequence_shape": (shape[0], shape[1] if len(shape) > 1 else 1)}
    elif layout == "signal":
        info = {"signal_shape": (1, shape[0])}
    else:
        info = {}
    return Features(x=x, n_features=n_features, raw_shape=shape, spec={"type": "dataset", "item_shape": list(shape)},
                     info=info, notes=["Dataset items used as given"], streamed=stream)
