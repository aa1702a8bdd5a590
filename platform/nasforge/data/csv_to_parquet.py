"""A CSV too large to load, converted once to Parquet block by block, so that it streams as Parquet does.

pandas reads a CSV whole (as float64, with Python objects for text): a file of a few GB does not fit.
pyarrow reads it in blocks of ``BLOCK_BYTES`` and each block is written as one Parquet row group;
memory stays at a few blocks. The column types come from the first block, with integer input
columns widened to float64 (a later block's 2.5 or missing value then still fits); a later value
that fits no type of its column (text in a number column) stops with its column named. The
Parquet file goes to the data cache, named by the CSV's stem and fingerprint, so the next search
on the same file reuses it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from nasforge.errors import DataError

BLOCK_BYTES = 64 << 20
DEFAULT_CACHE_DIR = Path("nasforge_runs") / "data-cache"


def cache_folder(cache_dir) -> Path:
    """The data cache (``data_options["cache_dir"]``, default ``nasforge_runs/data-cache``), created."""
    folder = Path(cache_dir or DEFAULT_CACHE_DIR).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def csv_as_parquet(path: Path, *, target: str | None, cache_dir, what: str, block_bytes: int = BLOCK_BYTES) -> Path:
    """The Parquet copy of CSV (TSV) file ``path`` in the cache, written now unless already there."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from nasforge.data.file_digest import file_fingerprint

    out = cache_folder(cache_dir) / f"{path.stem}-{file_fingerprint(str(path))}.parquet"
    if out.exists():
        return out
    parse = pacsv.ParseOptions(delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    read = pacsv.ReadOptions(block_size=block_bytes)
    try:
        first = pacsv.open_csv(path, read_options=read, parse_options=parse).schema
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{what}: cannot read {path} as CSV: {exc}") from None
    widened = {f.name: pa.float64() for f in first if pa.types.is_integer(f.type) and f.name != target}
    convert = pacsv.ConvertOptions(column_types=widened)
    partial = out.with_name(f"{out.name}.{os.getpid()}.partial")
    try:
        reader = pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
        with pq.ParquetWriter(partial, reader.schema) as writer:
            for batch in reader:
                writer.write_table(pa.Table.from_batches([batch]))
    except pa.ArrowInvalid as exc:
        partial.unlink(missing_ok=True)
        found = re.search(r"column #(\d+)", str(exc))
        column = f"column {first.names[int(found.group(1))]!r}: " if found and int(found.group(1)) < len(first) else ""
        raise DataError(f"{what}: {path.name}, read in blocks of {block_bytes / 2**20:.3g} MB with the column types "
                        f"of the first block: {column}{exc}; give the column one type throughout (or convert the "
                        "file to Parquet yourself)") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, out)   # whole or not at all: a killed conversion leaves no half file behind
    return out
