"""A CSV larger than memory: nasforge's search through Parquet against pandas loading the file whole.

Writes ``big.csv`` (``--mb`` MB: ``--features`` float columns, one text column with 3 values and
a string label from a fixed rule; reused when present) into ``--dir``, then, each in a fresh
process so that peak memory is its own:

* **pandas**: ``pd.read_csv`` of the file -- what nasforge did with every CSV before, and the first
  step of a hand-written script;
* **nasforge**: ``nasforge.search("mlp", data="big.csv", target="label", data_options={"stream":
  True})``, one trial of one epoch of a fixed small MLP: the CSV converted block by block to Parquet
  (timed on its own too, from the search's log), preprocessed into the float32 cache and streamed.

* **predict**: ``nasforge.load(...)`` of that search and ``result.predict("big.csv")`` -- the file
  read and predicted ``FILE_BLOCK_ROWS`` rows at a time; beside it **predict whole**,
  ``result.predict(pd.read_csv("big.csv"))``, what ``predict`` did with a path before.

Printed: wall seconds and peak RSS (``ru_maxrss``) of each, and their ratios.

Usage::

    python benchmarks/large_csv.py [--mb 1000] [--features 32] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

SMALL_MLP = {"family": "mlp", "params": {"n_layers": 1, "layers": {"repeat": "n_layers", "params": {"units": 64}},
                                         "lr": 1.0e-3, "batch_size": 512, "patience": None}}


def make_csv(folder: str, *, mb: float, features: int, seed: int = 0) -> str:
    import numpy as np
    import pandas as pd

    path = os.path.join(folder, "big.csv")
    if os.path.exists(path) and os.path.getsize(path) >= mb * 1e6 * 0.95:
        return path
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=features)
    chunk, written = 100_000, 0
    with open(path, "w", encoding="utf-8") as f:
        while written < mb * 1e6:
            x = rng.normal(size=(chunk, features)).round(5)
            frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(features)])
            frame["kind"] = rng.choice(["red", "green", "blue"], chunk)
            frame["label"] = np.where(x @ weights + (frame["kind"] == "red") > 0, "yes", "no")
            frame.to_csv(f, index=False, header=written == 0)
            written = f.tell()
    return path


def child(mode: str, path: str, folder: str) -> dict:
    import resource

    started = time.perf_counter()
    if mode == "pandas":
        import pandas as pd

        rows = len(pd.read_csv(path))
        out = {"rows": rows}
    elif mode in ("predict", "predict-whole"):
        import pandas as pd

        import nasforge

        result = nasforge.load(tracking_uri=f"sqlite:///{folder}/mlflow.db")
        predicted = result.predict(path if mode == "predict" else pd.read_csv(path))
        out = {"rows": len(predicted), "share_yes": float((predicted == "yes").mean())}
    else:
        import nasforge

        result = nasforge.search("mlp", data=path, target="label", data_options={
            "stream": True, "cache_dir": os.path.join(folder, "cache")}, space=SMALL_MLP, trials=1, budget=1,
            seed=0, plots=False, tracking_uri=f"sqlite:///{folder}/mlflow.db",
            storage=f"sqlite:///{folder}/optuna.db", experiment=f"csv-{time.time_ns()}")
        out = {"rows": sum(result.spec.data.rows.values()), "test_accuracy": result.test_metrics["test_accuracy"]}
    out.update(wall_s=time.perf_counter() - started,
               peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def convert_alone(path: str, folder: str) -> float:
    """Seconds of the conversion by itself (into a fresh cache)."""
    from pathlib import Path

    from nasforge.data.csv_to_parquet import csv_as_parquet

    started = time.perf_counter()
    csv_as_parquet(Path(path), target="label", cache_dir=os.path.join(folder, f"cache-{time.time_ns()}"),
                   what="data")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=1000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    folder = args.dir or tempfile.mkdtemp(prefix="nasforge-csv-")
    os.makedirs(folder, exist_ok=True)
    path = make_csv(folder, mb=args.mb, features=args.features)
    print(f"{path}: {os.path.getsize(path) / 1e6:.0f} MB")
    results = {}
    for mode in ("pandas", "nasforge", "predict", "predict-whole"):
        done = subprocess.run([sys.executable, __file__, "--child", mode, path, folder], capture_output=True,
                              text=True, check=True)
        results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{mode:9s} {json.dumps(results[mode])}")
    conversion = convert_alone(path, folder)
    p, n, r, w = (results[mode] for mode in ("pandas", "nasforge", "predict", "predict-whole"))
    print(f"conversion to Parquet alone: {conversion:.1f} s ({os.path.getsize(path) / 1e6 / conversion:.0f} MB/s)")
    print(f"peak RSS nasforge / pandas: {n['peak_rss_mb']:.0f} / {p['peak_rss_mb']:.0f} MB = "
          f"{n['peak_rss_mb'] / p['peak_rss_mb']:.2f}x; wall: whole search {n['wall_s']:.1f} s, "
          f"pandas read_csv alone {p['wall_s']:.1f} s")
    print(f"peak RSS predict by blocks / whole: {r['peak_rss_mb']:.0f} / {w['peak_rss_mb']:.0f} MB = "
          f"{r['peak_rss_mb'] / w['peak_rss_mb']:.2f}x; wall {r['wall_s']:.1f} / {w['wall_s']:.1f} s "
          f"for {r['rows']} rows")


if __name__ == "__main__":
    main()
