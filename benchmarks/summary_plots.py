"""Seconds the summary plots (nasforge.results.plots) add to one search.

Runs ``--searches`` searches of ``--trials`` trials in this process (each on its own temp store)
and times ``log_summary_plots`` inside each: the first search pays matplotlib's import, the
later ones do not. Prints wall and CPU seconds and the load average (other processes move them).

    python benchmarks/summary_plots.py [--trials 12] [--searches 3] [--objectives 1|2] [--strategy tpe]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--searches", type=int, default=3)
    parser.add_argument("--objectives", type=int, choices=(1, 2), default=1)
    parser.add_argument("--strategy", default=None, help="default: tpe (1 objective), nsga2 (2)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import nasforge
    import nasforge.results.plots as plots

    inner, spent = plots.log_summary_plots, []

    def timed(*a, **k):
        wall, cpu = time.perf_counter(), time.process_time()
        out = inner(*a, **k)
        spent.append((time.perf_counter() - wall, time.process_time() - cpu, len(out)))
        return out

    plots.log_summary_plots = timed
    objective = ["val_accuracy", "n_params"] if args.objectives == 2 else None
    strategy = args.strategy or ("nsga2" if args.objectives == 2 else "tpe")
    for i in range(args.searches):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            nasforge.search("mlp", task="digits", space="mlp_small", strategy=strategy, objective=objective,
                            trials=args.trials, budget=2, seed=i, tracking_uri=f"sqlite:///{tmp}/mlflow.db",
                            storage=f"sqlite:///{tmp}/optuna.db")
            total = time.perf_counter() - start
        wall, cpu, files = spent[-1]
        note = "  (imports matplotlib)" if i == 0 else ""
        print(f"search {i}: {args.trials} trials, {args.objectives} objective(s), {strategy}: search {total:.2f} s, "
              f"plots {wall:.2f} s wall / {cpu:.2f} s CPU, {files} files{note}; "
              f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
