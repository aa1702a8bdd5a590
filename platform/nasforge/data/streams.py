"""Inputs that stay on disk: rows of a 2-D float32 array read a batch at a time (data larger than memory).

A :class:`RowSource` stands where a task would hold an in-memory ``x`` array: it has a
``shape``, a length, and :meth:`RowSource.read` returns the float32 rows asked for, with the
search's preprocessing applied. Rows come from a ``.npy`` file read with ``os.preadv``
(:class:`NpyRows`), an image decoder, or a user's ``torch.utils.data.Dataset``: memory use stays
at a few batches whatever the file size.

The families that stream (mlp, cnn, rnn) iterate a source through a ``torch`` DataLoader
(:mod:`nasforge.training`); ``num_workers`` reader processes overlap reading with training.
Everything here is picklable (paths and row indices), so Ray workers and DataLoader workers read
the files themselves.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np

FLOAT32 = np.dtype(np.float32)


class RowSource:
    """A read-only ``(rows, features)`` float32 array on disk (see the module doc)."""

    is_stream = True
    dtype = FLOAT32

    def __init__(self, *, n_rows: int, n_features: int, num_workers: int = 0):
        self._n_rows, self.n_features, self.num_workers = int(n_rows), int(n_features), int(num_workers)

    @property
    def shape(self) -> tuple[int, int]:
        return (self._n_rows, self.n_features)

    @property
    def ndim(self) -> int:
        return 2

    def __len__(self) -> int:
        return self._n_rows

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` (positions in this source), in that order, as a float32 array."""
        raise NotImplementedError

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, slice):
            rows = np.arange(*index.indices(len(self)))
        elif np.isscalar(index):
            return self.read(np.asarray([int(index) % len(self)]))[0]
        else:
            rows = np.asarray(index, dtype=np.int64) % max(len(self), 1)
        return self.read(rows)

    def __array__(self, dtype=None, copy=None):
        raise TypeError(f"a {type(self).__name__} of {len(self)} rows stays on disk; read rows with "
                        "source.read(indices) or source[a:b] instead of converting it to one array")


class NumericTransform:
    """``(x with NaN -> fill - mean) / scale`` per column: the numeric part of a tabular preprocessor.

    Works in float32, in place on the batch it is given (a fresh array from :meth:`RowSource.read`).
    """

    def __init__(self, *, fill, mean, scale):
        self.fill = np.asarray(fill, dtype=np.float32)
        self.mean = np.asarray(mean, dtype=np.float32)
        self.inverse_scale = (1.0 / np.asarray(scale, dtype=np.float64)).astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        missing = np.isnan(x)
        if missing.any():
            np.copyto(x, np.broadcast_to(self.fill, x.shape), where=missing)
        x -= self.mean
        x *= self.inverse_scale
        return x


class NpyRows(RowSource):
    """Rows of a 2-D ``.npy`` file (any numeric dtype; C order), read with ``os.preadv`` straight into the batch.

    One system call per run of consecutive rows, no memory map: what was read stays in the OS page
    cache (fast to read again), not in the process. (A memory map would be faster still, but the
    kernel maps whole neighbourhoods of pages on each fault: one batch of random rows put a
    300 MB file in the process's resident memory.) Each process opens its own file descriptor.
    """

    def __init__(self, path: str, *, rows: np.ndarray | None = None, transform: Callable | None = None,
                 num_workers: int = 0):
        self.path = os.path.abspath(path)
        self.file_shape, self.file_dtype, self.offset = npy_layout(self.path)
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self.transform = transform
        n = self.file_shape[0] if self.rows is None else len(self.rows)
        super().__init__(n_rows=n, n_features=int(np.prod(self.file_shape[1:])), num_workers=num_workers)
        self._fd: tuple[int, int] | None = None     # (pid, file descriptor): one per process

    def subset(self, rows: Sequence[int]) -> "NpyRows":
        rows = np.asarray(rows, dtype=np.int64)
        return NpyRows(self.path, rows=rows if self.rows is None else self.rows[rows], transform=self.transform,
                       num_workers=self.num_workers)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fd": None}

    def _file(self) -> int:
        if self._fd is None or self._fd[0] != os.getpid():
            self._fd = (os.getpid(), os.open(self.path, os.O_RDONLY))
        return self._fd[1]

    def read(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        file_rows = rows if self.rows is None else self.rows[rows]
        order = None
        if len(file_rows) > 1 and (np.diff(file_rows) < 0).any():
            order = np.argsort(file_rows, kind="stable")        # read in file order, hand back as asked
            file_rows = file_rows[order]
        out = np.empty((len(file_rows), self.n_features), dtype=self.file_dtype)
        if len(out):
            self._read_runs(file_rows, out)
        if order is not None:
            ordered, out = out, np.empty_like(out)
            out[order] = ordered
        out = out.astype(np.float32, copy=False)
        return self.transform(out) if self.transform is not None else out

    def _read_runs(self, sorted_rows: np.ndarray, out: np.ndarray) -> None:
        width = self.n_features * self.file_dtype.itemsize
        target = memoryview(out).cast("B")
        fd = self._file()
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_rows) != 1) + 1]
        stops = np.r_[starts[1:], len(sorted_rows)]
        for start, stop, first in zip(starts.tolist(), stops.tolist(), sorted_rows[starts].tolist()):
            size = (stop - start) * width
            if os.preadv(fd, [target[start * width:stop * width]], self.offset + first * width) != size:
                raise OSError(f"{self.path}: short read at row {first} (was the file truncated?)")


def npy_layout(path: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, data offset)`` of a ``.npy`` file, from its header alone."""
    mapped = np.load(path, mmap_mode="r", allow_pickle=False)   # maps the file; reads the header only
    shape, dtype, offset = mapped.shape, mapped.dtype, int(mapped.offset)
    fortran = mapped.flags.f_contiguous and not mapped.flags.c_contiguous
    del mapped
    if fortran and len(shape) > 1:
        raise ValueError(f"{path}: a Fortran-ordered array; save it in C order (np.ascontiguousarray)")
    if dtype.hasobject or dtype.kind not in "biuf":
        raise ValueError(f"{path}: dtype {dtype} is not numeric")
    return tuple(int(d) for d in shape), dtype, offset


def write_npy(path: str, blocks, *, n_rows: int, n_features: int) -> None:
    """Write float32 ``blocks`` (each ``(k, n_features)``) one after the other as a ``.npy`` file."""
    header = {"descr": np.lib.format.dtype_to_descr(FLOAT32), "fortran_order": False,
              "shape": (int(n_rows), int(n_features))}
    written = 0
    tmp = f"{path}.part-{os.getpid()}"
    with open(tmp, "wb") as f:
        np.lib.format.write_array_header_2_0(f, header)
        for block in blocks:
            block = np.ascontiguousarray(block, dtype=FLOAT32)
            f.write(block.tobytes())
            written += len(block)
    if written != n_rows:
        os.unlink(tmp)
        raise ValueError(f"{path}: wrote {written} rows, expected {n_rows}")
    os.replace(tmp, path)


class ImageRows(RowSource):
    """Images decoded on read (PNG/JPEG through Pillow): grayscale or RGB, resized to one size, in [0, 1]."""

    def __init__(self, files: Sequence[str], *, size: tuple[int, int], channels: int, num_workers: int = 0):
        self.files = [os.path.abspath(f) for f in files]
        self.size, self.channels = (int(size[0]), int(size[1])), int(channels)
        super().__init__(n_rows=len(self.files), n_features=self.channels * self.size[0] * self.size[1],
                         num_workers=num_workers)

    def subset(self, rows: Sequence[int]) -> "ImageRows":
        return ImageRows([self.files[i] for i in rows], size=self.size, channels=self.channels,
                         num_workers=self.num_workers)

    def read(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), self.n_features), dtype=np.float32)
        for i, row in enumerate(np.asarray(rows, dtype=np.int64)):
            out[i] = decode_image(self.files[int(row)], size=self.size, channels=self.channels).reshape(-1)
        return out


def decode_image(path: str, *, size: tuple[int, int], channels: int) -> np.ndarray:
    """One image as ``(channels, height, width)`` float32 in [0, 1] (resized when its size differs)."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        if (image.height, image.width) != size:
            image = image.resize((size[1], size[0]), Image.BILINEAR)
        array = np.asarray(image, dtype=np.float32) / 255.0
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


class DatasetRows(RowSource):
    """The inputs of a map-style ``torch.utils.data.Dataset`` giving ``(x, y)`` items, flattened to float32."""

    def __init__(self, dataset, *, indices: Sequence[int] | None = None, n_features: int, num_workers: int = 0):
        self.dataset = dataset
        self.indices = np.arange(len(dataset)) if indices is None else np.asarray(indices, dtype=np.int64)
        super().__init__(n_rows=len(self.indices), n_features=n_features, num_workers=num_workers)

    def subset(self, rows: Sequence[int]) -> "DatasetRows":
        return DatasetRows(self.dataset, indices=self.indices[np.asarray(rows, dtype=np.int64)],
                           n_features=self.n_features, num_workers=self.num_workers)

    def read(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), self.n_features), dtype=np.float32)
        for i, row in enumerate(np.asarray(rows, dtype=np.int64)):
            x = self.dataset[int(self.indices[int(row)])][0]
            out[i] = as_numpy(x).reshape(-1)
        return out


def as_numpy(value) -> np.ndarray:
    """A tensor, array or list as a float32 numpy array (a CUDA tensor is copied to the host)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float32)


def is_stream(x) -> bool:
    """Whether a task's inputs stay on disk (a :class:`RowSource`) rather than in an array."""
    return getattr(x, "is_stream", False) is True
