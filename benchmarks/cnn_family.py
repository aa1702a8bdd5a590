"""Figures for the CNN family: training throughput against plain PyTorch, and a search on MNIST-1D.

``throughput``: the family's ``fit`` (``CNNFamily.fit``: shuffled index minibatches, the
loss accumulated on the device, a validation pass, reporting and early-stopping
bookkeeping every epoch) against a minimal hand-written PyTorch loop (``randperm``,
``zero_grad``, ``cross_entropy``, ``backward``, ``step``; nothing else). Both train the
same model (one ``build``, copied) from the same weights on the same tensors with the same
optimizer, batch size and number of epochs. Repeats alternate the two sides, so load from
other processes hits both alike, and the medians of the training samples per second
(wall clock, and process CPU time as a cross-check) are compared. Goal: ratio >= 0.95.

``search``: ``nasforge.search("cnn", task="mnist1d", ...)`` over a shipped space, in a
temporary MLflow / Optuna store; prints the best trial's validation and test accuracy
next to the published hand-designed CNN of Greydanus (2020), 94% test accuracy, and what
the search cost (wall time, CPU time, epochs trained).

Usage::

    python benchmarks/cnn_family.py throughput [--epochs 5] [--repeats 5] [--torch-threads N]
    python benchmarks/cnn_family.py search [--trials 30] [--epochs 30] [--space cnn]
                                           [--strategy tpe] [--pruner none] [--seed 0] [--torch-threads N]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path

PUBLISHED_CNN = 0.94   # Greydanus (2020), MNIST-1D, hand-designed CNN, test accuracy
# The throughput model: the MNIST-1D reference CNN's shape with batch norm and same padding.
THROUGHPUT_PARAMS = {
    "blocks": [{"filters": 32, "kernel_size": 5, "batch_norm": True, "pool": "max"},
               {"filters": 32, "kernel_size": 3, "batch_norm": True, "pool": "max"},
               {"filters": 32, "kernel_size": 3, "batch_norm": True, "pool": "max"}],
    "lr": 3e-3, "batch_size": 64, "patience": None,
}


# -- throughput ------------------------------------------------------------------------
def plain_loop(model, x, y, *, lr: float, batch_size: int, epochs: int, seed: int) -> None:
    """The minimal PyTorch training loop the family is compared with."""
    import torch
    import torch.nn.functional as F

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator).to(x.device)
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            optimizer.step()
    if x.is_cuda:
        torch.cuda.synchronize()


def throughput(args) -> None:
    import torch

    from nasforge import training
    from nasforge.family import NullReporter
    from nasforge.data.builtin_tasks import load_mnist1d_task
    from nasforge_cnn import CNNFamily

    family, task = CNNFamily(), load_mnist1d_task(0)
    config = family.make_config(THROUGHPUT_PARAMS)
    torch.manual_seed(0)
    reference = family.build(config, task)
    device = training.pick_device()
    data = training.to_tensors(task, device, splits=("train",))
    n = len(task.x_train) * args.epochs

    def run_family():
        model = copy.deepcopy(reference)
        torch.manual_seed(1)
        family.fit(model, task, config, {"epochs": args.epochs}, NullReporter())  # synchronises per epoch

    def run_plain():
        model = copy.deepcopy(reference).to(device)
        plain_loop(model, data.x_train, data.y_train, lr=config.lr, batch_size=config.batch_size,
                   epochs=args.epochs, seed=1)

    sides = {"nasforge fit": run_family, "plain PyTorch": run_plain}
    for run in sides.values():   # warm-up (allocator, kernels), not timed
        run()
    wall = {name: [] for name in sides}
    cpu = {name: [] for name in sides}
    for repeat in range(args.repeats):
        names = list(sides) if repeat % 2 == 0 else list(reversed(sides))
        for name in names:
            w0, c0 = time.perf_counter(), time.process_time()
            sides[name]()
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
    print(f"CNN training throughput on MNIST-1D ({len(task.x_train)} train samples, {args.epochs} epochs, "
          f"batch {config.batch_size}, {training.count_params(reference)} parameters, device {device}, "
          f"torch threads {torch.get_num_threads()}, {args.repeats} alternating repeats, medians)")
    for name in sides:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(f"  {name:14s} {n / w:9.0f} samples/s wall ({w:6.2f} s)   {n / c:9.0f} samples/s CPU ({c:6.2f} s)"
              f"   best wall {n / min(wall[name]):9.0f}")
    ratio_wall = statistics.median(wall["plain PyTorch"]) / statistics.median(wall["nasforge fit"])
    ratio_cpu = statistics.median(cpu["plain PyTorch"]) / statistics.median(cpu["nasforge fit"])
    ratio_best = min(wall["plain PyTorch"]) / min(wall["nasforge fit"])
    print(f"  ratio nasforge / plain: {ratio_wall:.3f} (wall, median)  {ratio_best:.3f} (wall, best)  "
          f"{ratio_cpu:.3f} (CPU)   goal >= 0.95")
    print("  (the family's loop also evaluates the validation split and tracks early stopping each epoch)")


# -- search ----------------------------------------------------------------------------
def search(args) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # MLflow puts a sqlite store's artifacts in ./mlruns of the working directory
        try:
            figures = _search_in(tmp, args)
        finally:
            os.chdir(cwd)
    result, wall, cpu, epochs, tests = figures
    states: dict[str, int] = {}
    for t in result.trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    best, test = result.best_trial, result.test_metrics["test_accuracy"]
    running, curve = 0.0, []
    for t in sorted(result.completed_trials, key=lambda t: t.number):
        running = max(running, t.values[0])
        curve.append(f"{running:.3f}")
    print(f"CNN search on MNIST-1D: space {args.space!r}, strategy {args.strategy}, pruner {args.pruner}, "
          f"{args.trials} trials x <= {args.epochs} epochs, seed {args.seed}")
    print(f"  trials: {states}; wall {wall:.0f} s, process CPU {cpu:.0f} s, epochs trained in all {epochs}")
    print(f"  best trial #{best.number}: val_accuracy {best.values[0]:.4f}, test_accuracy {test:.4f} "
          f"(published hand-designed CNN: {PUBLISHED_CNN:.2f}) -> "
          f"{'BEATS' if test > PUBLISHED_CNN else 'does not beat'} it")
    print(f"  best params: {result.best_params}")
    print(f"  best val_accuracy so far, per finished trial: {' '.join(curve)}")
    print(f"  finished trials with test_accuracy > {PUBLISHED_CNN}: {sum(a > PUBLISHED_CNN for a in tests)} "
          f"of {len(tests)}; max {max(tests, default=float('nan')):.4f} (informative: selection is by val)")


def _search_in(tmp: str, args):
    """Run the search in ``tmp``; (result, wall s, CPU s, epochs trained, test accuracy per finished trial)."""
    import mlflow

    import nasforge
    from nasforge.plugins import get_registry
    from nasforge.results.models import rebuild_model
    from nasforge.data.tasks import load_task

    w0, c0 = time.perf_counter(), time.process_time()
    result = nasforge.search(
        "cnn", task="mnist1d", space=args.space, strategy=args.strategy, pruner=args.pruner,
        trials=args.trials, budget=args.epochs, seed=args.seed, run_dir=Path(tmp) / "runs",
        tracking_uri=f"sqlite:///{tmp}/mlflow.db", storage=f"sqlite:///{tmp}/optuna.db")
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    mlflow.set_tracking_uri(result.tracking_uri)
    runs = mlflow.search_runs(experiment_ids=[result.experiment_id], max_results=10_000)
    epochs = int(runs["metrics.epochs_trained"].fillna(0).sum()) if "metrics.epochs_trained" in runs else 0
    family, task = get_registry().get("family", "cnn"), load_task("mnist1d", args.seed)
    tests = [family.evaluate(rebuild_model(result.spec, t), task)["test_accuracy"] for t in result.completed_trials]
    return result, wall, cpu, epochs, tests


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("throughput", help="family fit loop vs a plain PyTorch loop")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--torch-threads", type=int, default=None)
    p = sub.add_parser("search", help="a search on MNIST-1D against the published CNN")
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--space", default="cnn")
    p.add_argument("--strategy", default="tpe")
    p.add_argument("--pruner", default="none")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--torch-threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    {"throughput": throughput, "search": search}[args.command](args)


if __name__ == "__main__":
    main()
