"""Figures for the rnn family: loop throughput, the adding problem, MNIST-1D.

1. **Throughput.** The family's training loop (``nasforge_rnn.loop.train_epoch``, as
   ``RNNFamily.fit`` runs it) against a minimal hand-written loop, training the same model
   (``RNNFamily.build``, same seed) on the same data (task ``adding``, T = 50) with the same
   optimizer, batch size, shuffling and gradient clipping; both end with the same weights
   (checked). Samples per second, median over interleaved repeats; goal: ratio >= 0.95.
   The whole ``RNNFamily.fit`` (with per-epoch validation, early-stopping copies and
   reporting) is printed too, against the same hand loop.
2. **The adding problem** (Hochreiter & Schmidhuber, 1997; Le et al., 2015): a grid search
   over cell type x learning rate (``search_spaces/rnn_adding.yaml``) on ``adding``. Always
   predicting 1 gives MSE 1/6 ~ 0.167; the table shows which cells get far below it.
3. **MNIST-1D** as a 40-step sequence: a small search (``rnn_mnist1d.yaml``) and the best
   model's test accuracy against the published GRU's 91% (Greydanus, 2020).

Searches write to a temporary MLflow / Optuna store that is deleted at the end.

Usage::

    python benchmarks/rnn_family.py [--sections throughput,adding,mnist1d] [--quick]
                                    [--torch-threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

GOAL = 0.95
PUBLISHED_GRU_MNIST1D = 0.91   # Greydanus (2020), "Scaling down deep learning", GRU test accuracy


# -- 1. throughput ---------------------------------------------------------------------------
def _hand_loop(model, x, y, *, epochs, batch_size, lr, clip_norm, seed):
    """The minimal loop: shuffle, forward, MSE, backward, clip the global norm, Adam step."""
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            optimizer.step()
    return model


def throughput(args) -> None:
    import torch

    from nasforge import training
    from nasforge.family import NullReporter
    from nasforge.plugins import get_registry
    from nasforge_rnn import RNNFamily
    from nasforge_rnn.loop import train_epoch

    family = RNNFamily()
    task = get_registry().get("task", "adding").load(0)
    config = family.make_config({"cell": "lstm", "hidden_size": 64, "batch_size": 64, "lr": 3e-3,
                                 "clip": "norm", "clip_value": 1.0, "patience": None})
    device = training.pick_device()
    data = training.to_tensors(task, device, splits=("train", "val"))
    n, epochs = len(data.x_train), args.epochs

    def fresh_model():
        torch.manual_seed(0)
        return family.build(config, task).to(device)

    def run_family_loop():
        model = fresh_model()
        optimizer = training.make_optimizer(config.optimizer, model.parameters(), lr=config.lr)
        generator = training.seeded_generator()
        started = time.perf_counter()
        for _ in range(epochs):
            train_epoch(model, optimizer, torch.nn.functional.mse_loss, data.x_train, data.y_train,
                        batch_size=config.batch_size, generator=generator, clip=config.clip,
                        clip_value=config.clip_value).item()
        return time.perf_counter() - started, model

    def run_hand_loop():
        model = fresh_model()
        started = time.perf_counter()
        _hand_loop(model, data.x_train, data.y_train, epochs=epochs, batch_size=config.batch_size,
                   lr=config.lr, clip_norm=config.clip_value, seed=0)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started, model

    def run_fit():
        model = fresh_model()
        torch.manual_seed(0)
        started = time.perf_counter()
        family.fit(model, task, config, {"epochs": epochs}, NullReporter())
        return time.perf_counter() - started, model

    runs = {"hand": run_hand_loop, "loop": run_family_loop, "fit": run_fit}
    rates: dict[str, list[float]] = {name: [] for name in runs}
    models = {}
    for repeat in range(args.repeats):
        names = list(runs) if repeat % 2 == 0 else list(reversed(runs))   # alternate who goes first
        for name in names:
            seconds, models[name] = runs[name]()
            rates[name].append(n * epochs / seconds)
    same = all(torch.equal(a, b) for a, b in zip(models["hand"].state_dict().values(),
                                                  models["loop"].state_dict().values()))
    hand, loop, fit = (statistics.median(rates[k]) for k in ("hand", "loop", "fit"))
    print(f"\n== 1. Throughput: LSTM(64) on adding (T=50, {n} sequences), batch 64, Adam, clip norm 1, "
          f"{epochs} epochs x {args.repeats} repeats, device {device}, torch threads {torch.get_num_threads()}")
    print(f"{'loop':<44}{'samples/s (median)':>20}{'ratio':>9}   all repeats")
    print(f"{'hand-written minimal loop':<44}{hand:>20.0f}{1.0:>9.3f}   {_fmt(rates['hand'])}")
    print(f"{'nasforge_rnn.loop.train_epoch (fit loop)':<44}{loop:>20.0f}{loop / hand:>9.3f}   {_fmt(rates['loop'])}")
    print(f"{'RNNFamily.fit (+ validation, early stopping)':<44}{fit:>20.0f}{fit / hand:>9.3f}   {_fmt(rates['fit'])}")
    print(f"same final weights (hand vs family loop): {same};  goal: loop ratio >= {GOAL} -> "
          f"{'met' if loop / hand >= GOAL else 'NOT met'}")


def _fmt(values) -> str:
    return " ".join(f"{v:.0f}" for v in values)


# -- 2. the adding problem -----------------------------------------------------------------
def adding(args, store) -> None:
    import nasforge

    epochs = 8 if args.quick else 15
    started = time.perf_counter()
    result = nasforge.search("rnn", task="adding", space="rnn_adding", strategy="grid", trials=6,
                             budget=epochs, seed=0, **store)
    elapsed = time.perf_counter() - started
    print(f"\n== 2. Adding problem, T=50 (5000 train / 1000 val sequences): grid over cell x lr, "
          f"LSTM/GRU/RNN(64), Adam, clip norm 1, up to {epochs} epochs ({elapsed:.0f} s)")
    print("predicting 1 (the mean) gives MSE 1/6 = 0.167")
    print(f"{'rank':<6}{'cell':<6}{'lr':>8}{'val MSE':>10}{'epochs':>8}{'vs baseline':>13}   val MSE per epoch")
    rows = []
    for trial in result.completed_trials:
        metrics = trial.user_attrs["metrics"]
        rows.append((metrics["val_loss"], trial.params["cell"], trial.params["lr"],
                     int(metrics["epochs_trained"]), _curve(result, trial, "val_loss")))
    for rank, (mse, cell, lr, trained, curve) in enumerate(sorted(rows), start=1):
        print(f"{rank:<6}{cell:<6}{lr:>8g}{mse:>10.4f}{trained:>8}{mse / (1 / 6):>12.1%}   {curve}")
    by_cell = {}
    for mse, cell, *_ in rows:
        by_cell.setdefault(cell, []).append(mse)
    print("best val MSE per cell: " + ", ".join(f"{c} {min(v):.4f}" for c, v in sorted(by_cell.items())))
    print(f"best trial: {result.best_params} -> test MSE {result.test_metrics['test_loss']:.4f}")


def _curve(result, trial, metric) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(result.spec.tracking_uri)
    history = client.get_metric_history(trial.user_attrs["mlflow_run_id"], metric)
    points = sorted((m.step, m.timestamp, m.value) for m in history)[:-1]   # the last is the final value
    return " ".join(f"{v:.3f}" for _, _, v in points)


# -- 3. MNIST-1D -------------------------------------------------------------------------
def mnist1d(args, store) -> None:
    import nasforge

    trials, epochs = (2, 10) if args.quick else (3, 20)
    started = time.perf_counter()
    result = nasforge.search("rnn", task="mnist1d", space="rnn_mnist1d", strategy="random", trials=trials,
                             budget=epochs, seed=0, **store)
    elapsed = time.perf_counter() - started
    print(f"\n== 3. MNIST-1D as a 40-step sequence (3400 train / 600 val / 1000 test): random search, "
          f"{trials} trials x up to {epochs} epochs ({elapsed:.0f} s)")
    print(f"{'trial':<7}{'cell':<6}{'hidden':>7}{'lr':>9}{'val acc':>9}{'epochs':>8}")
    for trial in result.completed_trials:
        metrics, params = trial.user_attrs["metrics"], trial.params
        print(f"{trial.number:<7}{params['cell']:<6}{params['hidden_size']:>7}{params['lr']:>9.4f}"
              f"{metrics['val_accuracy']:>9.3f}{int(metrics['epochs_trained']):>8}")
    test = result.test_metrics["test_accuracy"]
    print(f"best: {result.best_params} -> test accuracy {test:.3f}; published GRU: {PUBLISHED_GRU_MNIST1D:.2f} "
          f"({test - PUBLISHED_GRU_MNIST1D:+.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", default="throughput,adding,mnist1d")
    parser.add_argument("--quick", action="store_true", help="fewer epochs and trials (a smoke run)")
    parser.add_argument("--repeats", type=int, default=3, help="throughput repeats per loop")
    parser.add_argument("--epochs", type=int, default=2, help="throughput epochs per repeat")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch intra-op threads (default 1: tiny recurrent matmuls gain nothing from "
                             "more, and on a shared machine extra threads slow them down badly)")
    args = parser.parse_args()

    import optuna
    import torch

    torch.set_num_threads(args.torch_threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - {"throughput", "adding", "mnist1d"}
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; valid: throughput, adding, mnist1d")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        store = {"tracking_uri": f"sqlite:///{Path(tmp) / 'mlflow.db'}",
                 "storage": f"sqlite:///{Path(tmp) / 'optuna.db'}"}
        if "throughput" in sections:
            throughput(args)
        if "adding" in sections:
            adding(args, store)
        if "mnist1d" in sections:
            mnist1d(args, store)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
