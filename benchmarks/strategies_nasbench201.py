"""Search strategies on NAS-Bench-201: random, TPE, CMA-ES, regularized evolution, RNN controller.

Each run is a plain Optuna study (in memory, no MLflow) over the shipped ``nasbench201``
space; a trial's value is ONE random training seed's validation accuracy from the table
(what training the architecture once gives), drawn from a generator seeded by (run seed,
trial number) -- the same draw for every strategy. After N trials the pick is the trial
with the best value, scored by the table's mean over its training seeds; "gap" is the
distance of that score to the best architecture of the space. A 200-trial run gives the
N = 50 and 100 figures too (no strategy here depends on the trial budget). Figures are
mean +- standard deviation over ``--seeds`` runs (seeds ``--first-seed`` onwards), in %
accuracy. 30 seeds by default: with 10, a standard deviation is itself uncertain by ~25 %,
and the goal below compares means with standard deviations.

``controller`` is ``ControllerSampler`` with its defaults; ``controller-unshared`` gives each
of the cell's 6 edges a softmax of its own (``share=False``, as in Zoph & Le). ``--ablation``
runs the controller with one setting changed at a time against its defaults, Zoph & Le's own
settings and random search, to show what each fix buys. The goal lines at the end say whether the controller's
mean beats random search's by more than the larger of the two standard deviations, and
whether it reaches TPE's mean minus TPE's standard deviation.

Usage::

    python benchmarks/strategies_nasbench201.py [--seeds 30] [--first-seed 0] [--jobs 2]
        [--datasets cifar10,cifar100,imagenet]
        [--strategies random,tpe,cmaes,evolution,controller,controller-unshared]
    python benchmarks/strategies_nasbench201.py --ablation [--variants "defaults,lr 0.01"] [--jobs 2]

Timing (2 cores, 2 processes): a 200-trial controller run takes ~4 s, so 30 seeds of every
strategy on the three data sets take ~8 min; the whole ablation (22 rows) ~1 h.

The CMA-ES sampler has no categorical model: Optuna runs it on this all-categorical space
with its independent (random) fallback, so it is a second random search here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = (50, 100, 200)
DATASETS = ("cifar10", "cifar100", "imagenet")
STRATEGIES = ("random", "tpe", "cmaes", "evolution", "controller", "controller-unshared")
NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet": "ImageNet16-120"}

# Zoph & Le (2017)'s training as published: Adam at 6e-4, the accuracy itself as reward, no
# entropy bonus, one softmax per decision, no self-imitation, architectures evaluated again when
# drawn again (batch 5 here: the paper's m belongs to its 800-GPU setting).
PAPER = {"lr": 6e-4, "reward": "raw", "entropy_weight": 0.0, "revisit": "allow", "share": False, "batch_size": 5,
         "temperature": None, "tanh_constant": None, "self_imitation": 0.0}
# One change at a time against the defaults; each row tests one suspected cause.
ABLATION = {
    "defaults": {},
    "paper settings (Zoph & Le)": PAPER,
    "lr 6e-4 (paper)": {"lr": 6e-4},
    "lr 0.01": {"lr": 0.01},
    "lr 0.1": {"lr": 0.1},
    "reward raw": {"reward": "raw"},
    "reward zscore": {"reward": "zscore"},
    "no baseline": {"baseline": "none"},
    "baseline decay 0.5": {"baseline_decay": 0.5},
    "no entropy bonus": {"entropy_weight": 0.0},
    "entropy 0.2": {"entropy_weight": 0.2},
    "batch 5": {"batch_size": 5},
    "batch 10": {"batch_size": 10},
    "revisit allow": {"revisit": "allow"},
    "no sharing (a softmax per edge)": {"share": False},
    "no self-imitation": {"self_imitation": 0.0},
    "self-imitation 1.0": {"self_imitation": 1.0},
    "neither sharing nor self-imitation": {"share": False, "self_imitation": 0.0},
    "no logit shaping (T=1, no tanh)": {"temperature": None, "tanh_constant": None},
    # two changes: what happens to an unbounded policy with a high rate, or without an entropy bonus
    "lr 0.1 without logit shaping": {"lr": 0.1, "temperature": None, "tanh_constant": None},
    "no entropy bonus nor logit shaping": {"entropy_weight": 0.0, "temperature": None, "tanh_constant": None},
}


def make_sampler(strategy: str, seed: int, options: dict | None = None):
    import optuna

    from nasforge.spec.space import SearchSpace

    options = dict(options or {})
    if strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if strategy == "tpe":   # as nasforge's "tpe" strategy builds it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)
    if strategy == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if strategy == "evolution":
        from nasforge.strategies.evolution_sampler import RegularizedEvolutionSampler

        return RegularizedEvolutionSampler(seed=seed, **options)
    if strategy in ("controller", "controller-unshared"):   # -unshared: a softmax per edge
        from nasforge.strategies.controller.sampler import ControllerSampler

        if strategy == "controller-unshared":
            options.setdefault("share", False)
        return ControllerSampler(space=SearchSpace.load("nasbench201"), seed=seed, **options)
    raise ValueError(f"unknown strategy {strategy!r}")


def run_one(job: tuple) -> dict:
    """One search; returns the score of the pick at each checkpoint and the seconds it took."""
    strategy, dataset, seed, options, n_trials = job
    import numpy as np
    import optuna

    from nasforge.spec.space import SearchSpace
    from nasforge_nasbench.table import load_table

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    space, table = SearchSpace.load("nasbench201"), load_table(dataset)
    study = optuna.create_study(direction="maximize", sampler=make_sampler(strategy, seed, options))

    def objective(trial):
        config = space.sample(trial)
        return table.sample_val_accuracy(config, np.random.default_rng([seed, trial.number, 201]))

    started = time.perf_counter()
    scores, best = {}, None
    for n in range(1, n_trials + 1):
        study.optimize(objective, n_trials=1)
        trial = study.get_trials(deepcopy=False)[-1]
        if trial.value is not None and (best is None or trial.value > best.value):
            best = trial
        if n in CHECKPOINTS:
            scores[n] = table.mean_val_accuracy(best.params)
    return {"scores": scores, "seconds": time.perf_counter() - started}


def run_many(jobs: list[tuple], workers: int) -> list[dict]:
    if workers <= 1:
        return [run_one(job) for job in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(run_one, jobs))


def summarize(results: list[dict], best: float) -> dict:
    import numpy as np

    out = {}
    for n in CHECKPOINTS:
        values = np.array([r["scores"][n] for r in results if n in r["scores"]])
        out[n] = (float(values.mean()), float(values.std()), float(best - values.mean()))
    out["seconds"] = float(np.mean([r["seconds"] for r in results]))
    return out


def cell(stats) -> str:
    mean, std, gap = stats
    return f"{mean:.2f} +- {std:.2f} (gap {gap:.2f})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--trials", type=int, default=max(CHECKPOINTS))
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--ablation", action="store_true", help="controller settings, one change at a time")
    parser.add_argument("--variants", default="", help="ablation rows to run (comma-separated names); all if empty")
    parser.add_argument("--options", default="{}", help="JSON options for the controller (main table)")
    parser.add_argument("--jobs", type=int, default=1, help="processes")
    parser.add_argument("--json", default="", help="also write every figure to this file")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "plugins"))   # when nasforge is not installed (a checkout)

    from nasforge_nasbench.table import load_table

    datasets = [d for d in args.datasets.split(",") if d]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    report: dict = {}
    if args.ablation:
        names = [v.strip() for v in args.variants.split(",") if v.strip()] or list(ABLATION)
        unknown = [n for n in names if n not in ABLATION]
        if unknown:
            parser.error(f"unknown variant {unknown[0]!r}; variants: {', '.join(ABLATION)}")
        rows = [("random search", "random", {})] + [(n, "controller", ABLATION[n]) for n in names]
        title = "Ablation: the controller with one setting changed (defaults: ControllerSampler's)"
    else:
        rows = [(s, s, json.loads(args.options) if s.startswith("controller") else {})
                for s in args.strategies.split(",")]
        title = "Strategies"
    print(f"{title}; {args.seeds} seeds ({seeds[0]}..{seeds[-1]}); best pick's seed-mean validation accuracy (%), "
          f"mean +- std over seeds (gap to the best in the space)", flush=True)
    for dataset in datasets:
        best = load_table(dataset).best()[1]
        print(f"\n## {NAMES[dataset]} (best in space {best:.2f})\n", flush=True)
        shown = [n for n in CHECKPOINTS if n <= args.trials]
        print("| strategy | " + " | ".join(f"N = {n}" for n in shown) + " | s/run |")
        print("|---|" + "---|" * (len(shown) + 1), flush=True)
        for label, strategy, options in rows:
            results = run_many([(strategy, dataset, s, options, args.trials) for s in seeds], args.jobs)
            stats = summarize(results, best)
            report.setdefault(dataset, {})[label] = stats
            print(f"| {label} | " + " | ".join(cell(stats[n]) for n in CHECKPOINTS if n <= args.trials)
                  + f" | {stats['seconds']:.1f} |", flush=True)
    if not args.ablation and {"random", "tpe", "controller"} <= {r[0] for r in rows}:
        print("\nGoal: controller above random search by more than the spread at every N, within TPE's "
              "spread at the largest N", flush=True)
        print("(beats: mean - random's mean > the larger of the two standard deviations; within: mean >= "
              "TPE's mean - TPE's standard deviation)", flush=True)
        if args.seeds < 20:
            print(f"(only {args.seeds} seeds: each standard deviation is uncertain by ~"
                  f"{100 / (2 * max(args.seeds - 1, 1)) ** 0.5:.0f} %, too much for these lines to mean much; "
                  "use --seeds 30)", flush=True)
        controllers = [label for label, strategy, _ in rows if strategy.startswith("controller")]
        for dataset in datasets:
            r, t = report[dataset]["random"], report[dataset]["tpe"]
            n_max = max(x for x in CHECKPOINTS if x <= args.trials)
            for label in controllers:
                c = report[dataset][label]
                beats = [n for n in CHECKPOINTS if n <= args.trials and c[n][0] - r[n][0] > max(r[n][1], c[n][1])]
                close = c[n_max][0] >= t[n_max][0] - t[n_max][1]
                print(f"- {NAMES[dataset]}, {label}: beats random at N = {beats or 'none'}; "
                      f"within TPE's spread at N = {n_max}: {'yes' if close else 'NO'}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
