"""Raw inputs as a search's predictor reads them: table files in blocks, image folders, Datasets.

Shared by :mod:`nasforge.results.predictor` (predictions) and :mod:`nasforge.results.evaluation`
(metrics on labelled data), so a file larger than memory is read the same way by both.
"""

from __future__ import annotations

import os

from nasforge.data.sources import IMAGE_SUFFIXES
from nasforge.errors import DataError

FILE_BLOCK_ROWS = 65_536   # rows of a CSV / Parquet file read and predicted at a time
TABLE_SUFFIXES = {".csv": ",", ".txt": ",", ".tsv": "\t", ".parquet": None, ".pq": None}


def image_files(folder) -> list[str]:
    """The images anywhere under ``folder``, in the order ``predict(folder)`` answers them (sorted paths)."""
    files = sorted(os.path.join(root, f) for root, _, names in os.walk(folder) for f in names
                   if f.lower().endswith(IMAGE_SUFFIXES))
    if not files:
        raise DataError(f"predict: {folder} has no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def read_table(data):
    """A DataFrame from a DataFrame (pandas, or any Arrow table: polars, pyarrow) or a .csv/.tsv/.parquet
    path; None for anything else."""
    import pandas as pd

    from nasforge.data.sources import arrow_frame

    if isinstance(data, pd.DataFrame):
        return data
    frame = arrow_frame(data)
    if frame is not None:
        return frame
    blocks = table_blocks(data)
    if blocks is None:
        return None
    frames = list(blocks)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def table_blocks(data):
    """DataFrames of up to :data:`FILE_BLOCK_ROWS` rows each from a .csv/.tsv/.txt/.parquet path (read
    lazily), or None when ``data`` is not such a path."""
    if not isinstance(data, (str, os.PathLike)):
        return None
    path = str(data)
    if not os.path.exists(path):
        raise DataError(f"predict: {path!r} does not exist")
    suffix = os.path.splitext(path)[1].lower()
    return _read_blocks(path, TABLE_SUFFIXES[suffix]) if suffix in TABLE_SUFFIXES else None


def _read_blocks(path: str, sep: str | None):
    """The blocks of a CSV (``sep``) or Parquet file (``sep`` None); the file is closed when they end or
    the generator is dropped."""
    if sep is None:
        import pyarrow.parquet as pq

        with pq.ParquetFile(path) as parquet:
            for batch in parquet.iter_batches(batch_size=FILE_BLOCK_ROWS):
                yield batch.to_pandas()
        return
    import pandas as pd

    with pd.read_csv(path, sep=sep, chunksize=FILE_BLOCK_ROWS) as reader:
        yield from reader


def is_dataset(data) -> bool:
    """A torch ``Dataset`` (without importing torch when the caller never did)."""
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(data, torch.utils.data.Dataset)
