"""Figures of the evidential family (prints them; no assertions).

1. The cubic toy of Deep Evidential Regression (Amini et al., 2020) with the family's
   defaults (the official 4 x 100 network, lr 5e-3, batch 128, lambda 0.01), over several
   seeds: RMSE inside [-4, 4] (noise-free test targets), mean epistemic ``Var[mu]`` inside
   and outside, their ratio, the OOD AUROC of ``Var[mu]`` (outside = positive), and the
   val NLL / calibration error. ``--figure PATH`` saves the seed-0 figure.
2. A small nsga2 search on ``digits_ood`` (classes 0-6; 7-9 are OOD) maximizing
   ``val_accuracy`` and ``val_ood_auroc``, in a temporary MLflow / Optuna store; prints
   every trial and the Pareto front.
3. Throughput of ``EvidentialFamily.fit`` (with a ``NullReporter``) against minimal
   hand-written loops training the same network (built by the family, same seed, same
   loss, same minibatch order) for the same epochs: one computing by hand what the family
   reports each epoch (the like-for-like baseline, the goal applies to it), one computing
   only the validation NLL, one that only trains; the last two show what the per-epoch
   uncertainty metrics cost. Process CPU time, torch on ``--torch-threads`` threads,
   repeats interleaved, medians: robust to other processes on the box.

Usage::

    python benchmarks/evidential_family.py [--seeds 5] [--trials 12] [--repeats 5] [--figure cubic.png]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

GOAL = 0.95


def cubic_section(seeds: int, figure: str | None) -> None:
    import numpy as np
    import torch

    from nasforge.family import NullReporter
    from nasforge_evidential import EvidentialFamily, load_cubic_task

    family, task = EvidentialFamily(), load_cubic_task(0)
    print(f"== cubic toy, defaults (4 x 100, lr 5e-3, batch 128, lambda 0.01), 100 epochs, {seeds} seeds ==")
    print("seed  test_rmse(|x|<=4)  epi_in    epi_out   ratio     ood_auroc  val_nll  val_cal_err  cpu_s")
    ratios, aurocs, rmses = [], [], []
    for seed in range(seeds):
        config = family.make_config({})
        torch.manual_seed(seed)
        model = family.build(config, task)
        cpu = time.process_time()
        fit = family.fit(model, task, config, {"epochs": 100}, NullReporter())
        cpu = time.process_time() - cpu
        test = family.evaluate(model, task)
        ratio = test["test_epistemic_ood"] / test["test_epistemic"]
        ratios.append(ratio), aurocs.append(test["test_ood_auroc"]), rmses.append(test["test_rmse"])
        print(f"{seed:>4}  {test['test_rmse']:>17.3f}  {test['test_epistemic']:<8.3g}  {test['test_epistemic_ood']:<8.3g}  "
              f"{ratio:<8.3g}  {test['test_ood_auroc']:>9.3f}  {fit['val_nll']:>7.3f}  "
              f"{fit['val_calibration_error']:>11.3f}  {cpu:>5.2f}")
        if figure and seed == 0:
            from nasforge_evidential.plots import regression_figure

            regression_figure(family, model, task).savefig(figure)
            print(f"      figure saved to {figure}")
    constant = float(np.sqrt(((task.y_test - task.y_train.mean()) ** 2).mean()))
    print(f"median test RMSE {statistics.median(rmses):.3f} (constant predictor {constant:.2f}; noise std 3 in train); "
          f"median epistemic ratio out/in {statistics.median(ratios):.3g} (min {min(ratios):.3g}); "
          f"median OOD AUROC {statistics.median(aurocs):.3f} (min {min(aurocs):.3f})")


def search_section(trials: int) -> None:
    import nasforge

    space = {
        "params": {
            "n_layers": {"int": [1, 2]},
            "layers": {"repeat": "n_layers", "params": {"units": {"choice": [32, 64, 128]}}},
            "evidence": {"choice": ["relu", "softplus", "exp"]},
            "reg_weight": {"float": [0.01, 1.0], "log": True},
            "lr": {"float": [1e-3, 1e-2], "log": True},
        }
    }
    print(f"\n== nsga2 on digits_ood, objectives val_accuracy and val_ood_auroc, {trials} trials x 20 epochs ==")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = nasforge.search("evidential", task="digits_ood", space=space, strategy="nsga2",
                                 objective=["val_accuracy", "val_ood_auroc"], trials=trials, budget=20, seed=0,
                                 tracking_uri=f"sqlite:///{tmp}/mlflow.db", storage=f"sqlite:///{tmp}/optuna.db")
        wall = time.perf_counter() - start
        front = {t.number for t in result.best_trials}
        print("trial  val_acc  val_ood_auroc  pareto  params")
        for t in result.completed_trials:
            params = result.spec.space.config_from_flat(t.params)
            units = [layer["units"] for layer in params["layers"]]
            print(f"{t.number:>5}  {t.values[0]:.3f}    {t.values[1]:.3f}          {'*' if t.number in front else ' '}"
                  f"       units={units} evidence={params['evidence']} reg_weight={params['reg_weight']:.3g} "
                  f"lr={params['lr']:.2g}")
        print(f"Pareto front (val_accuracy, val_ood_auroc): "
              f"{sorted((round(t.values[0], 3), round(t.values[1], 3)) for t in result.best_trials)}")
        print(f"best model on test: {({k: round(v, 3) for k, v in result.test_metrics.items()})}")
        print(f"search wall time {wall:.1f}s")


def _hand_loop(model, task, config, epochs: int, *, work: str) -> None:
    """A minimal loop: the same data, loss and minibatch order as the family.

    ``work``: ``"train"`` only trains; ``"val"`` also computes the validation NLL each
    epoch; ``"metrics"`` computes, by hand, what the family reports each epoch (one forward
    pass over the validation and OOD inputs, the validation loss, then the plugin's metric
    functions).
    """
    import numpy as np
    import torch

    from nasforge_evidential import losses, metrics, ood_inputs

    classification = task.kind == "classification"
    x = torch.as_tensor(task.x_train, dtype=torch.float32)
    y = torch.as_tensor(task.y_train, dtype=torch.int64 if classification else torch.float32)
    x_val = torch.as_tensor(task.x_val, dtype=torch.float32)
    y_val = torch.as_tensor(task.y_val, dtype=torch.int64 if classification else torch.float32)
    x_eval = torch.cat([x_val, torch.as_tensor(ood_inputs(task, "val"))])
    y_host = np.asarray(task.y_val) if classification else np.asarray(task.y_val, dtype=float)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(torch.initial_seed())
    n, n_val, batch = len(x), len(x_val), config.batch_size
    steps = -(-n // batch)
    kl = 0.0
    for epoch in range(epochs):
        model.train()
        for step, idx in enumerate(torch.randperm(n, generator=generator).split(batch)):
            out = model(x[idx])
            if classification:
                kl = min(1.0, (epoch + step / steps) / config.annealing_epochs)
                loss = losses.evidential_classification_loss(out, y[idx], kl_weight=kl).mean()
            else:
                loss = losses.evidential_regression_loss(out, y[idx], reg_weight=0.01).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if work == "train":
            continue
        model.eval()
        with torch.no_grad():
            if work == "val":
                out = model(x_val)
                if classification:
                    nll = -torch.log(out[torch.arange(n_val), y_val] / out.sum(1)).mean()
                else:
                    nll = losses.nig_nll(y_val, *losses.split_nig(out)).mean()
                nll.item()
                continue
            out = model(x_eval)
            if classification:
                losses.evidential_classification_loss(out[:n_val], y_val, kl_weight=kl).mean().item()
                host = out.double().numpy()
                u = host.shape[1] / host.sum(1)
                metrics.classification_metrics(host[:n_val], y_host, prefix="val")
                metrics.ood_metrics(u[:n_val], u[n_val:], prefix="val", name="uncertainty")
            else:
                host = out.double().numpy()
                gamma, nu, alpha, beta = np.split(host, 4, axis=-1)
                metrics.regression_metrics(gamma[:n_val], nu[:n_val], alpha[:n_val], beta[:n_val], y_host, prefix="val")
                (0.01 * np.abs(y_host - gamma[:n_val]) * (2 * nu[:n_val] + alpha[:n_val])).mean()
                epistemic = (beta / (nu * (alpha - 1))).mean(1)
                metrics.ood_metrics(epistemic[:n_val], epistemic[n_val:], prefix="val", name="epistemic")


def throughput_section(repeats: int, epochs: int) -> None:
    import torch

    from nasforge.family import NullReporter
    from nasforge_evidential import EvidentialFamily, load_cubic_task, load_digits_ood_task

    family = EvidentialFamily()
    print(f"\n== throughput: family fit vs minimal hand-written loops, {epochs} epochs, {repeats} repeats "
          f"(process CPU s, median; torch threads {torch.get_num_threads()}) ==")
    kinds = ("family", "metrics", "val", "train")
    for task, params in ((load_cubic_task(0), {}), (load_digits_ood_task(0), {"layers": [{"units": 64}]})):
        config = family.make_config(params)
        times = {k: [] for k in kinds}

        def once(kind):
            torch.manual_seed(0)
            model = family.build(config, task)
            cpu = time.process_time()
            if kind == "family":
                family.fit(model, task, config, {"epochs": epochs}, NullReporter())
            else:
                _hand_loop(model, task, config, epochs, work=kind)
            return time.process_time() - cpu

        for kind in kinds:  # warm-up (imports, allocator)
            once(kind)
        for r in range(repeats):
            for kind in kinds if r % 2 == 0 else kinds[::-1]:
                times[kind].append(once(kind))
        med = {k: statistics.median(v) for k, v in times.items()}
        steps = -(-len(task.x_train) // config.batch_size)
        print(f"{task.name} ({steps} steps/epoch): family {med['family']:.3f}s; hand loop with the same per-epoch "
              f"metrics {med['metrics']:.3f}s, with val NLL only {med['val']:.3f}s, train only {med['train']:.3f}s")
        print(f"    throughput ratio (hand / family): same metrics {med['metrics'] / med['family']:.3f} "
              f"(goal >= {GOAL}), val NLL only {med['val'] / med['family']:.3f}, train only "
              f"{med['train'] / med['family']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=50, help="epochs per throughput run")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--figure", default=None, help="save the seed-0 cubic figure here (PNG)")
    parser.add_argument("--only", choices=["cubic", "search", "throughput"], default=None)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.torch_threads)
    if args.only in (None, "cubic"):
        cubic_section(args.seeds, args.figure)
    if args.only in (None, "search"):
        search_section(args.trials)
    if args.only in (None, "throughput"):
        throughput_section(args.repeats, args.epochs)


if __name__ == "__main__":
    main()
