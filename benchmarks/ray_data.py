"""Own data on Ray: per-trial overhead of a 200 MB in-memory data set, ``backend="ray"`` against local.

The same search -- ``nasforge.search("mlp", data=(X, y))`` with X of ``--mb`` MB float32, a fixed
small MLP, one epoch per trial over a ``--rows-per-epoch`` slice of the rows (the data set is the
``train`` split, the epoch ``budget`` small), ``--trials`` trials one at a time -- runs on the local
executor and on a Ray started beforehand (``ray.init`` is not timed: a Ray user has it running).
The data goes to the Ray workers once, through Ray's object store (``tune.with_parameters``), not
with every trial.

A trial's overhead is the time from the end of one trial to the end of the next, minus the next
trial's own ``train_time_s`` (build and fit). Printed: the median per backend over trials 2..N
(the first one pays the worker start and the data fetch; it is printed separately) and the ratio.

Usage::

    python benchmarks/ray_data.py [--mb 200] [--trials 8]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time


def search(x, y, *, backend: str, trials: int, work: str):
    import nasforge

    space = {"family": "mlp", "params": {"n_layers": 1, "layers": {"repeat": "n_layers", "params": {"units": 16}},
                                         "lr": {"float": [1e-3, 1e-2], "log": True}, "batch_size": 4096,
                                         "patience": None}}
    started = time.perf_counter()
    result = nasforge.search("mlp", data=(x, y), space=space, strategy="random", trials=trials, budget=1, seed=0,
                             plots=False, backend=backend, max_concurrent=1 if backend == "ray" else None,
                             tracking_uri=f"sqlite:///{work}/mlflow-{backend}.db",
                             storage=f"sqlite:///{work}/optuna-{backend}.db")
    wall = time.perf_counter() - started
    done = sorted(result.trials, key=lambda t: t.datetime_complete)
    gaps = [(b.datetime_complete - a.datetime_complete).total_seconds() - b.user_attrs["metrics"]["train_time_s"]
            for a, b in zip(done, done[1:])]
    first = (done[0].datetime_complete - done[0].datetime_start).total_seconds() \
        - done[0].user_attrs["metrics"]["train_time_s"]
    return {"wall_s": wall, "overheads": gaps, "first_s": first,
            "train_s": statistics.median(t.user_attrs["metrics"]["train_time_s"] for t in done)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=200.0)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    import numpy as np
    import ray

    rows = int(args.mb * 1e6 / (4 * args.features))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, args.features)).astype(np.float32)
    y = (x[:, :4].sum(axis=1) > 0).astype(np.int64)
    print(f"data: {rows:,} rows x {args.features} float32 = {x.nbytes / 1e6:.0f} MB; {args.trials} trials, "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    work = tempfile.mkdtemp(prefix="nasforge-ray-data-")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        figures = {backend: search(x, y, backend=backend, trials=args.trials, work=work) for backend in ("local", "ray")}
    finally:
        ray.shutdown()
    for backend, f in figures.items():
        print(f"{backend:<6} per-trial overhead {statistics.median(f['overheads']) * 1e3:7.0f} ms (median of trials "
              f"2..{args.trials}); first trial {f['first_s'] * 1e3:6.0f} ms; train {f['train_s']:.2f} s/trial; "
              f"search wall {f['wall_s']:.1f} s", flush=True)
    local, remote = (statistics.median(figures[b]["overheads"]) for b in ("local", "ray"))
    print(f"RATIO ray / local per-trial overhead: {remote / local:.2f}x (+{(remote - local) * 1e3:.0f} ms per trial)")


if __name__ == "__main__":
    main()
