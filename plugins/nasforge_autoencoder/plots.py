"""PNG figures of generated data, shared by the generative families (autoencoder, gan).

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot, so no global
state and no GUI backend): ``figure.savefig`` renders them with Agg, which is what
``Reporter.log_figure`` (``MlflowClient.log_figure``) calls.

Tasks with ``info["image_shape"]`` (``(C, H, W)``, e.g. digits ``(1, 8, 8)``) are drawn as
image grids; any other flat ``x`` (MNIST-1D signals, tabular features) as line plots.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def image_shape_of(task) -> tuple[int, ...] | None:
    """The task's ``(C, H, W)`` image shape, or ``None`` for non-image data."""
    shape = task.info.get("image_shape") if task.info else None
    return tuple(shape) if shape else None


def rows_figure(task, rows: Sequence[np.ndarray], labels: Sequence[str], *, title: str):
    """One figure showing each array in ``rows`` (``(n, D)``, same ``n``) for ``task``.

    Images: a grid with one row per array (e.g. originals above reconstructions). Other
    data: one panel per sample with the arrays overlaid as lines.
    """
    shape = image_shape_of(task)
    rows = [np.asarray(r, dtype=np.float32) for r in rows]
    if shape is not None:
        return _image_rows(rows, labels, shape, title=title)
    return _line_panels(rows, labels, title=title)


def samples_figure(task, samples: np.ndarray, *, title: str, ncols: int = 8):
    """A grid of generated samples (``(n, D)``): images, or one line plot per sample."""
    samples = np.asarray(samples, dtype=np.float32)
    shape = image_shape_of(task)
    nrows = math.ceil(len(samples) / ncols)
    if shape is not None:
        chunks = [samples[i * ncols:(i + 1) * ncols] for i in range(nrows)]
        return _image_rows(chunks, [""] * nrows, shape, title=title)
    return _line_panels([samples], [""], title=title, ncols=ncols)


def _to_image(vector: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    image = vector.reshape(shape)
    if len(shape) == 3:  # (C, H, W) -> (H, W) or (H, W, C)
        image = image[0] if shape[0] == 1 else np.moveaxis(image, 0, -1)
    return np.clip(image, 0.0, 1.0)


def mosaic(rows, shape, *, pad: int = 1) -> np.ndarray:
    """The images of ``rows`` (a list of ``(n, D)`` arrays) tiled into one array, ``pad`` pixels apart.

    Drawing one tiled image is much faster than one matplotlib axes per image.
    """
    tiles = [[_to_image(v, shape) for v in row] for row in rows]
    h, w = tiles[0][0].shape[:2]
    ncols = max(len(row) for row in tiles)
    extra = tiles[0][0].shape[2:]
    grid = np.ones((len(tiles) * (h + pad) + pad, ncols * (w + pad) + pad, *extra), dtype=np.float32)
    for i, row in enumerate(tiles):
        for j, tile in enumerate(row):
            top, left = pad + i * (h + pad), pad + j * (w + pad)
            grid[top:top + h, left:left + w] = tile
    return grid


def _image_rows(rows, labels, shape, *, title: str):
    from matplotlib.figure import Figure

    grid = mosaic(rows, shape)
    ncols = max(len(r) for r in rows)
    left = 1.2 if any(labels) else 0.1           # inches kept for the row labels
    width, height = 0.6 * ncols + left + 0.1, 0.6 * len(rows) + 0.5
    fig = Figure(figsize=(width, height), dpi=100)
    ax = fig.add_axes((left / width, 0.05 / height, 0.6 * ncols / width, 0.6 * len(rows) / height))
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if any(labels):
        h = (grid.shape[0] - 1) / len(rows)
        ax.set_yticks([h * (i + 0.5) for i in range(len(rows))], labels, fontsize=7)
    fig.suptitle(title, fontsize=9)
    return fig


def _line_panels(rows, labels, *, title: str, ncols: int = 4):
    from matplotlib.figure import Figure

    n = len(rows[0])
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(2.2 * ncols, 1.6 * nrows + 0.5), dpi=80)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k in range(nrows * ncols):
        ax = axes[k // ncols][k % ncols]
        if k >= n:
            ax.set_axis_off()
            continue
        for row, label in zip(rows, labels):
            ax.plot(row[k], linewidth=1.0, label=label or None)
        ax.tick_params(labelsize=6)
    if any(labels):
        axes[0][0].legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    return fig
