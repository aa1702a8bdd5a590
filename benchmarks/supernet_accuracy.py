"""How near a supernet's paths come to their stand-alone networks, and which shared choices cost most.

For the family's weight-sharing space (``cnn_enas`` for cnn) on one task, an RS-WS supernet phase
(``strategy="rsws"``'s phase with its default options, uniform paths) is trained; then ``--paths``
uniform paths are scored with the shared weights on the validation split and, for the whole
space, trained stand-alone for the space's budget. Printed side by side: mean shared-weight
accuracy, mean stand-alone accuracy, their ratio, and the Kendall tau between the two (how far the
supernet's ranking can be trusted, Yu et al. 2020). Each ``--fix`` row trains another supernet on the
space with one choice fixed (a choice to its first value, ``n_blocks`` to the deepest): the rise in shared accuracy over the whole space's
row is what sharing that choice costs. ``--finetune-epochs N`` adds a row for the same paths scored
after ``N`` epochs of fine-tuning each from the shared weights (the phase's ``finetune_epochs``
option); "top-half tau" is the tau among the paths whose stand-alone accuracy is above the median --
how well the supernet tells the best from the good -- and "top-5 alone" the mean stand-alone accuracy of
the 5 best-scored paths (what a search that retrains 5 picks draws from; the last line prints the best 5
and the top half's mean). Two rows rank the paths with no training at all, by the stand-alone
network's forward FLOPs and by its parameter count (``zero_cost.py``): what a supernet's ranking must
beat. ``--retrain-seed S`` adds the ceiling: the same paths trained stand-alone again from another
initialisation, ranked against the first training (how far two stand-alone runs agree -- no score
can agree with one run better than another run does). "CPU s" is what a row's scores cost: the
supernet phase, the fine-tuning, the second stand-alone training. ``--dump FILE`` writes each path's
parameters and scores, one JSON object per line.

Usage::

    python benchmarks/supernet_accuracy.py                          # cnn/mnist1d, 40 epochs, 30 paths (~5 min)
    python benchmarks/supernet_accuracy.py --supernet-epochs 20 --fix kernel_size,pool,filters,n_blocks
    python benchmarks/supernet_accuracy.py --paths 60 --finetune-epochs 2
    python benchmarks/supernet_accuracy.py --paths 90 --retrain-seed 100
    python benchmarks/supernet_accuracy.py --paths 120 --dump paths.jsonl     # each path's scores, for analysis
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import sys
import tempfile
import time


def phase(space, args, folder: str):
    """An RS-WS phase on ``space``: the trained supernet."""
    from nasforge.stores.mlflow_runs import Tracker
    from nasforge.strategies.oneshot.phase import SupernetPhase
    from nasforge.strategies.oneshot.phase_options import PhaseJob, check_options

    tracker = Tracker.for_experiment(tracking_uri=f"sqlite:///{folder}/mlflow.db", experiment="supernet-accuracy")
    run_id = tracker.start_run(name="phase", tags={})
    job = PhaseJob(strategy="rsws", family=args.family, task=args.task, data_digest=None, space=space,
                   seed=args.seed, options=check_options("rsws", {"supernet_epochs": args.supernet_epochs,
                                                                  "candidates": 1}),
                   top=1, tracking_uri=tracker.tracking_uri, experiment_id=tracker.experiment_id, run_id=run_id)
    runner = SupernetPhase(job=job, tracker=tracker)
    runner.run()
    return runner


def fixed(raw: dict, name: str) -> dict:
    """``raw`` (a space's dict) with parameter ``name`` (top level or in the repeated block) fixed to its first value."""
    raw = copy.deepcopy(raw)
    for params in (raw["params"], *(p["params"] for p in raw["params"].values() if isinstance(p, dict)
                                    and "repeat" in p)):
        spec = params.get(name)
        if isinstance(spec, dict) and "choice" in spec:
            params[name] = spec["choice"][0]
            return raw
        if isinstance(spec, dict) and "int" in spec:
            params[name] = spec["int"][0] if name != "n_blocks" else spec["int"][1]   # depth: the deepest
            return raw
    raise SystemExit(f"--fix {name}: no choice or int parameter of that name in the space")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", default="cnn")
    parser.add_argument("--task", default="mnist1d")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--supernet-epochs", type=int, default=40)
    parser.add_argument("--paths", type=int, default=30)
    parser.add_argument("--fix", default="", help="comma-separated choices to fix, one supernet each")
    parser.add_argument("--finetune-epochs", type=int, default=0, help="also score the paths after fine-tuning")
    parser.add_argument("--retrain-seed", type=int, default=None,
                        help="also train the paths stand-alone from this seed, ranked against the first training")
    parser.add_argument("--dump", metavar="FILE", help="write each path's parameters and scores as JSON lines")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import numpy as np
    import torch
    from scipy.stats import kendalltau

    from nasforge.data.tasks import load_task
    from nasforge.plugins import get_registry
    from nasforge.spec.space import SearchSpace
    from nasforge.stores.mlflow_runs import quiet_mlflow
    from nasforge.strategies.oneshot.paths import UniformPaths
    from nasforge.testing.fitting import fit_once

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import zero_cost

    torch.set_num_threads(1)
    quiet_mlflow()
    started = time.time()
    family = get_registry().get("family", args.family)
    base = SearchSpace.load(family.supernet_space)
    raw = {k: v for k, v in base.raw.items() if k != "family"}
    task = load_task(args.task, args.seed)
    x, y = torch.as_tensor(task.x_val), torch.as_tensor(task.y_val)
    print(f"{args.family}/{args.task}, space {family.supernet_space}, RS-WS supernet {args.supernet_epochs} epochs, "
          f"{args.paths} uniform paths, seed {args.seed}")
    print(f"{'supernet of':<24} {'shared acc':>10} {'stand-alone':>11} {'ratio':>6} {'tau':>6} {'top-half tau':>12} "
          f"{'top-5 alone':>11} {'CPU s':>6}")

    def compared(scores, alone, accuracies: bool = True) -> str:
        upper = [i for i, a in enumerate(alone) if a > np.median(alone)]
        top_tau = kendalltau([scores[i] for i in upper], [alone[i] for i in upper]).statistic
        picked = np.mean([alone[i] for i in np.argsort(scores, kind="stable")[::-1][:5]])
        ratio = f"{np.mean(scores) / np.mean(alone):>6.3f}" if accuracies else f"{'':>6}"
        return (f" {np.mean(alone):>11.3f} {ratio} "
                f"{kendalltau(scores, alone).statistic:>6.3f} {top_tau:>12.3f} {picked:>11.4f}")

    for name in ["", *filter(None, args.fix.split(","))]:
        space = SearchSpace.from_dict({**fixed(raw, name), "family": args.family}) if name else base
        with tempfile.TemporaryDirectory(prefix="nasforge-sa-") as folder:
            cpu = time.process_time()
            runner = phase(space, args, folder)
            cpu = time.process_time() - cpu
        supernet = runner.supernet.eval()
        paths = [flat for flat, _ in UniformPaths(space=space).draw(np.random.default_rng([args.seed, 7]), args.paths)]
        configs = [space.config_from_flat(flat) for flat in paths]
        with torch.no_grad():
            shared = [float((supernet(x, family.make_config(c)).argmax(1) == y).float().mean()) for c in configs]
        row = f"{'the whole space' if not name else name + ' fixed':<24} {np.mean(shared):>10.3f}"
        if name:
            print(row + f" {'':>11} {'':>6} {'':>6} {'':>12} {'':>11} {cpu:>6.0f}", flush=True)
            continue
        alone = [fit_once(family, task, c, space.budget, seed=args.seed)[1]["val_accuracy"] for c in configs]
        print(row + compared(shared, alone) + f" {cpu:>6.0f}", flush=True)
        columns = {"shared": shared, "alone": alone}   # each path's scores, for --dump
        for label, count in (("FLOPs (no training)", zero_cost.flops), ("parameters (no training)", zero_cost.n_params)):
            cpu = time.process_time()
            counted = columns[count.__name__] = [count(family, task, space, flat) for flat in paths]
            print(f"{label:<24} {'':>10}" + compared(counted, alone, accuracies=False)
                  + f" {time.process_time() - cpu:>6.0f}", flush=True)
        if args.retrain_seed is not None:
            cpu = time.process_time()
            again = columns["again"] = [fit_once(family, task, c, space.budget, seed=args.retrain_seed)[1]["val_accuracy"]
                                        for c in configs]
            label = f"stand-alone, seed {args.retrain_seed}"
            print(f"{label:<24} {np.mean(again):>10.3f}" + compared(again, alone)
                  + f" {time.process_time() - cpu:>6.0f}", flush=True)
        if args.finetune_epochs:
            runner.options = dataclasses.replace(runner.options, finetune_epochs=args.finetune_epochs)
            entries = [{"params": flat} for flat in paths]
            cpu = time.process_time()
            runner.finetune(entries)
            tuned = columns["tuned"] = [e["finetuned_reward"] for e in entries]
            label = f"fine-tuned {args.finetune_epochs} epochs"
            print(f"{label:<24} {np.mean(tuned):>10.3f}" + compared(tuned, alone)
                  + f" {time.process_time() - cpu:>6.0f}", flush=True)
        if args.dump:
            with open(args.dump, "w") as out:
                for i, flat in enumerate(paths):
                    out.write(json.dumps({"seed": args.seed, "params": flat, **{k: v[i] for k, v in columns.items()}}) + "\n")
        upper = [a for a in alone if a > np.median(alone)]
        print(f"stand-alone: the best 5 paths {np.mean(sorted(alone)[-5:]):.4f}, the top half {np.mean(upper):.4f}")
    print(f"({time.time() - started:.0f} s wall; command: python benchmarks/supernet_accuracy.py {' '.join(sys.argv[1:])})")


if __name__ == "__main__":
    main()
