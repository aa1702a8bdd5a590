"""Data larger than memory: a short search on a >= 4 GB on-disk data set, its peak memory and its speed.

Writes ``x.npy`` (float32, ``--gb`` GB: rows of ``--features`` values) and ``y.npy`` (10 classes
from a fixed linear rule plus noise) into ``--dir`` (reused when present), then, each in a fresh
process so that peak memory is its own:

Each process first imports torch's data loading and nasforge's training helpers, iterates a tiny
DataLoader and takes one Adam step (torch imports its compiler stack on the first step, ~1.4 s):
paid once per process, in a search's first trial only.

* **nasforge**: ``nasforge.search("mlp", data=("x.npy", "y.npy"), data_options={"stream": True,
  "num_workers": W})``, one trial, one epoch, a fixed one-hidden-layer MLP, batch ``--batch``.
  Samples/s = train rows / the trial's ``train_time_s`` (one training epoch and one pass over the
  validation rows, as the baselines do), plus the search's wall time;
* **hand-written, batched**: the same MLP, optimizer and batch size trained one epoch over the
  same train rows and evaluated over the same validation rows with a ``DataLoader`` whose dataset
  reads a whole sorted batch of rows from ``np.load(mmap_mode="r")`` and standardizes it with the
  same statistics -- a careful user's loop;
* **hand-written, per item**: the same with the usual per-item ``__getitem__`` and default collate.

Printed: samples/s of each, nasforge / batched (goal >= 0.9x), and the peak RSS of each process
(``ru_maxrss``; goal for nasforge < 1.5 GB) and of its DataLoader workers. A memory-mapped
baseline's RSS counts the file pages it touched; nasforge reads with ``os.pread``, so the pages
stay in the OS cache, outside the process.

Usage::

    python benchmarks/large_data.py [--gb 4.2] [--features 512] [--workers 2] [--batch 512] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CLASSES = 10


def make_data(folder: str, *, gb: float, features: int, seed: int = 0) -> tuple[str, str]:
    import numpy as np

    from nasforge.data.streams import write_npy

    x_path, y_path = os.path.join(folder, "x.npy"), os.path.join(folder, "y.npy")
    rows = int(gb * 1e9 / (4 * features))
    if os.path.exists(x_path) and os.path.exists(y_path) and np.load(y_path, mmap_mode="r").shape[0] == rows:
        return x_path, y_path
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(features, CLASSES)).astype(np.float32) / np.sqrt(features)
    labels = []
    chunk = 50_000

    def blocks():
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            x = (rng.normal(size=(n, features)) * 2.0 + 3.0).astype(np.float32)   # not standardized
            labels.append(((x - 3.0) @ weights + 0.5 * rng.normal(size=(n, CLASSES))).argmax(axis=1))
            yield x

    started = time.perf_counter()
    write_npy(x_path, blocks(), n_rows=rows, n_features=features)
    np.save(y_path, np.concatenate(labels).astype(np.int64))
    print(f"wrote {rows:,} rows x {features} features ({os.path.getsize(x_path) / 1e9:.2f} GB) in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    return x_path, y_path


# -- the measured sides (each runs in its own process) ----------------------------------------
def run_nasforge(args) -> dict:
    import nasforge

    space = {"family": "mlp", "params": {"n_layers": 1, "layers": {"repeat": "n_layers", "params": {"units": 64}},
                                         "lr": 1e-3, "batch_size": args.batch, "patience": None}}
    work = tempfile.mkdtemp(prefix="nasforge-large-")
    started = time.perf_counter()
    result = nasforge.search("mlp", data=(args.x, args.y), data_options={"stream": True,
                             "num_workers": args.workers, "cache_dir": work}, space=space, trials=1, budget=1,
                             seed=0, plots=False, tracking_uri=f"sqlite:///{work}/mlflow.db",
                             storage=f"sqlite:///{work}/optuna.db")
    wall = time.perf_counter() - started
    trial = result.trials[0]
    rows = result.spec.data.rows
    return {"train_rows": rows["train"], "val_rows": rows["val"], "seconds": trial.user_attrs["metrics"]["train_time_s"],
            "wall_s": wall, "val_accuracy": trial.value, "test_accuracy": result.test_metrics["test_accuracy"]}


def run_baseline(args, *, batched: bool) -> dict:
    import numpy as np
    import torch
    from sklearn.model_selection import train_test_split
    from torch import nn

    torch.manual_seed(0)
    x = np.load(args.x, mmap_mode="r")
    y = np.load(args.y)
    rows = np.arange(len(y))
    rest, _test = train_test_split(rows, test_size=0.15, random_state=0, stratify=y)
    train, val = train_test_split(rest, test_size=0.15 / 0.85, random_state=0, stratify=y[rest])
    sample = np.asarray(x[np.sort(np.random.default_rng(0).choice(train, 8192, replace=False))], dtype=np.float64)
    mean, scale = sample.mean(axis=0), sample.std(axis=0)

    class Batches(torch.utils.data.Dataset):
        def __init__(self, order):
            self.order = order

        def __len__(self):
            return (len(self.order) + args.batch - 1) // args.batch

        def __getitem__(self, i):
            idx = np.sort(self.order[i * args.batch:(i + 1) * args.batch])
            xb = ((np.asarray(x[idx], dtype=np.float32) - mean) / scale).astype(np.float32)
            return torch.from_numpy(xb), torch.from_numpy(y[idx])

    class Items(torch.utils.data.Dataset):
        def __init__(self, rows):
            self.rows = rows

        def __len__(self):
            return len(self.rows)

        def __getitem__(self, i):
            row = self.rows[i]
            return torch.from_numpy(((np.asarray(x[row], dtype=np.float32) - mean) / scale).astype(np.float32)), \
                int(y[row])

    def loader(rows, shuffle):
        workers = dict(num_workers=args.workers, prefetch_factor=4 if args.workers else None)
        if batched:
            order = np.random.default_rng(0).permutation(rows) if shuffle else rows
            return torch.utils.data.DataLoader(Batches(order), batch_size=None, **workers)
        return torch.utils.data.DataLoader(Items(rows), batch_size=args.batch, shuffle=shuffle, **workers)

    model = nn.Sequential(nn.Flatten(), nn.Linear(x.shape[1], 64), nn.ReLU(), nn.Linear(64, CLASSES))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    started = time.perf_counter()
    model.train()
    for xb, yb in loader(train, True):
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for xb, yb in loader(val, False):
            correct += int((model(xb).argmax(dim=1) == yb).sum())
    seconds = time.perf_counter() - started
    return {"train_rows": len(train), "val_rows": len(val), "seconds": seconds, "val_accuracy": correct / len(val)}


def warm_up() -> None:
    """Imports, a first DataLoader pass and a first optimizer step (torch imports its compiler stack
    then, ~1.4 s), outside the timings: paid once per process, not per trial."""
    import torch

    import nasforge.training  # noqa: F401

    layer = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(layer.parameters())
    for (x,) in torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(8, 2)), batch_size=4):
        layer(x).sum().backward()
        optimizer.step()


def measured(side: str, args) -> dict:
    """Run ``side`` in a fresh Python process; its figures and its peak RSS (and its workers')."""
    command = [sys.executable, __file__, "--side", side, "--x", args.x, "--y", args.y, "--workers",
               str(args.workers), "--batch", str(args.batch)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise SystemExit(f"{side} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=4.2, help="size of x.npy in GB (default 4.2)")
    parser.add_argument("--features", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader reader processes")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--dir", default=None, help="where the data set is written (default: a temp dir)")
    parser.add_argument("--side", choices=("nasforge", "batched", "per-item"), help=argparse.SUPPRESS)
    parser.add_argument("--x", help=argparse.SUPPRESS)
    parser.add_argument("--y", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:   # a measured child process
        import resource

        warm_up()
        figures = run_nasforge(args) if args.side == "nasforge" else run_baseline(args, batched=args.side == "batched")
        figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        figures["workers_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(json.dumps(figures))
        return
    folder = args.dir or os.path.join(tempfile.gettempdir(), "nasforge-large-data")
    os.makedirs(folder, exist_ok=True)
    args.x, args.y = make_data(folder, gb=args.gb, features=args.features)
    print(f"data: {os.path.getsize(args.x) / 1e9:.2f} GB in {folder}; workers {args.workers}, batch {args.batch}, "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    results = {}
    for side in ("batched", "nasforge", "per-item"):
        results[side] = r = measured(side, args)
        rate = r["train_rows"] / r["seconds"]
        extra = f", search wall {r['wall_s']:.1f} s, test acc {r['test_accuracy']:.3f}" if "wall_s" in r else ""
        print(f"{side:<9} {rate:>10,.0f} samples/s  ({r['train_rows']:,} train + {r['val_rows']:,} val rows in "
              f"{r['seconds']:.1f} s; val acc {r['val_accuracy']:.3f}{extra})  peak RSS {r['peak_rss_mb']:,.0f} MB, "
              f"workers {r['workers_peak_rss_mb']:,.0f} MB", flush=True)
    rate = {side: r["train_rows"] / r["seconds"] for side, r in results.items()}
    print(f"RATIO nasforge / hand-written batched loop: {rate['nasforge'] / rate['batched']:.2f}x (goal >= 0.9); "
          f"/ per-item loop: {rate['nasforge'] / rate['per-item']:.2f}x")
    print(f"PEAK RSS nasforge: {results['nasforge']['peak_rss_mb']:,.0f} MB (goal < 1500)")


if __name__ == "__main__":
    main()
