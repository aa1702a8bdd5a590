"""Fingerprints of a user's data: the digest that names it in MLflow and guards a resume, and per split.

In-memory arrays and frames are hashed whole, files up to 256 MB too (:mod:`.file_digest`); larger files by
their size and 64 blocks spread over them; an image folder by each file's name and fingerprint; a
torch Dataset by its class, length and three items.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from nasforge.data.file_digest import file_fingerprint
from nasforge.data.sources import ImageFolder, NpyFile, ParquetFile, RawSplit, TorchItems


def digests(raw: dict[str, RawSplit], splits) -> tuple[str, dict[str, str]]:
    """The data's digest (of what the user gave) and one per split (of its rows)."""
    import numpy as np

    whole = hashlib.sha256()
    for name in sorted(raw):
        whole.update(name.encode())
        whole.update(fingerprint(raw[name]).encode())
    digest = whole.hexdigest()[:16]
    per_split = {}
    for name, (split, rows) in splits.items():
        h = hashlib.sha256(digest.encode())
        h.update(name.encode())
        h.update(np.ascontiguousarray(rows, dtype=np.int64).tobytes())
        per_split[name] = h.hexdigest()[:16]
    return digest, per_split


def fingerprint(split: RawSplit) -> str:
    import numpy as np

    h = hashlib.sha256()
    x = split.x
    if isinstance(x, (NpyFile, ParquetFile)):   # a CSV read through Parquet: the CSV's bytes
        h.update(file_fingerprint(getattr(x, "source", None) or x.path).encode())
    elif isinstance(x, ImageFolder):
        for file in x.files:
            h.update(os.path.relpath(file, x.root).encode())
            h.update(file_fingerprint(file).encode())
    elif isinstance(x, TorchItems):
        h.update(f"{type(x.dataset).__qualname__}:{len(x.dataset)}:{x.item_shape}".encode())
        for i in sorted({0, len(x.dataset) // 2, len(x.dataset) - 1}):
            h.update(np.ascontiguousarray(np.asarray(x.dataset[i][0], dtype=np.float64)).tobytes())
    elif hasattr(x, "columns"):
        import pandas as pd

        h.update(",".join(map(str, x.columns)).encode())
        h.update(pd.util.hash_pandas_object(x, index=False).to_numpy().tobytes())
    else:
        h.update(f"{x.dtype}:{x.shape}".encode())
        h.update(np.ascontiguousarray(x).tobytes())
    y = np.asarray(split.y)
    h.update(np.asarray([str(v) for v in y]).astype("U").tobytes() if y.dtype == object
             else np.ascontiguousarray(y).tobytes())
    return h.hexdigest()


def spec_digest(spec: dict[str, Any]) -> str:
    import json

    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:8]
