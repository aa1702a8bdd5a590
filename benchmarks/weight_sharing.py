"""Weight-sharing NAS against multi-trial search: ENAS, RS-WS, DARTS, the RNN controller and random search.

Every method searches the same space (the family's ``supernet_space``: ``cnn_enas`` for cnn -- the
architecture varies, the training settings are fixed) on the same task, through ``nasforge.search``
with its own MLflow store and Optuna storage in a temporary folder, for each seed:

* ``enas``: the supernet phase (``strategy="enas"``) + its ``--top`` picks retrained for ``--budget`` epochs;
* ``rsws``: the same budget with uniform paths (``strategy="rsws"``, Li & Talwalkar 2019);
* ``darts``: first-order DARTS (``strategy="darts"``, Liu et al. 2019), same epochs and picks, on the
  family's ``darts_space`` (for cnn ``cnn_darts``: ``cnn_enas`` without "no pooling", whose output
  size cannot be summed with max/avg pooling's -- a subset of the others' space);
* ``darts2``: the same with DARTS's second-order gradient (``strategy_options={"arch_order": 2}``,
  Sec. 2.3: alpha's gradient through one virtual weight step);
* ``controller N``: the multi-trial RNN controller (``strategy="controller"``), N trained networks;
  the N = 50 row is the first 50 trials of the N = 100 run (the controller does not depend on N);
* ``random N``: random search;
* ``controller @ENAS`` / ``random @ENAS``: the same two searches with ENAS's compute (that seed's ENAS
  epochs, supernet included): the controller's first trials up to it, and random search's trials cut
  into consecutive blocks of it (each block one search; the row is the mean over the blocks, ~14 of
  7 trials for rnn). Does weight sharing beat spending its compute on a few trained networks?
* ``flops``: no supernet and no search -- the ``--top`` architectures with the most forward FLOPs
  among as many uniform draws as an RS-WS phase rates, retrained the same way: the zero-cost
  baseline (``zero_cost.py``; Abdelfattah et al. 2021). A supernet that cannot beat it has not
  earned its training.

A method's pick is its trial with the best validation accuracy; "test" is that network's test
accuracy (mean +- std over seeds, %). Compute: "epochs" counts every epoch any network trained
(the supernet's passes over the train split, and every trial's epochs, early-stopped ones as
trained); "CPU s" is the process CPU time of the whole search (training, evaluation, MLflow and
Optuna writes alike), with one torch thread.

Kendall tau: for each seed, the networks of the random-search run (trained stand-alone, their
validation accuracy) are scored again with the shared weights of that seed's RS-WS and ENAS
supernets (final checkpoint, same validation rows as the phase); tau is the rank correlation of
the two scores over those networks -- how far the supernet's ranking can be trusted (Yu et al.
2020, "Evaluating the Search Phase of Neural Architecture Search"). DARTS's row scores each network
as a single path through its (mixture-trained) weights, over the networks its space holds. The
FLOPs row ranks the same networks by their forward FLOPs.

With ``--reseed R`` each row's picked architecture is trained R more times from scratch with fresh
training seeds (same split, budget and settings) and its mean test accuracy is printed beside the
row: a search's best trial won partly on its one training run's luck, and one of 100 trials can be
luckier than the best of 5 (Yang et al. 2020, "NAS evaluation is frustratingly hard"). Those
trainings are not counted in any row's compute.

With ``--max-params N`` (``--max-flops F``) every method searches for the best network of at most N
parameters (F forward FLOPs; the search's ``max_params`` / ``max_flops``): trials beyond it are
pruned untrained (the rows' N counts them, their epochs do not), ``rsws`` and the FLOPs baseline
draw within the cap, ``enas`` penalises its reward beyond it (MnasNet's hard constraint) and the
multi-trial controller gets ``failed_reward=0`` for a pruned trial, so it learns the cap too;
``darts`` adds how far alpha's expected size is over the cap to alpha's loss (ProxylessNAS).

Usage::

    python benchmarks/weight_sharing.py                       # quick: 2 seeds, N = 10/20, ~10 min on 2 cores
    python benchmarks/weight_sharing.py --full                # 5 seeds, N = 50/100, 20 epochs (hours on 2 cores)
    python benchmarks/weight_sharing.py --seeds 3 --multi 50,100 --random 100 --budget 20 --jobs 2
    python benchmarks/weight_sharing.py --full --methods enas,rsws --option finetune_epochs=2 --only-weight-sharing
    python benchmarks/weight_sharing.py --full --seeds 10 --methods flops --only-weight-sharing --jobs 2   # ~3 min
    python benchmarks/weight_sharing.py --full --seeds 4 --methods enas,rsws,flops --max-params 13000 --jobs 2
    python benchmarks/weight_sharing.py --full --seeds 4 --methods enas,rsws,flops --max-flops 300000 --jobs 2
    python benchmarks/weight_sharing.py --family rnn --task mnist1d_frames --seeds 8 --multi 50,100 --random 100 \
        --budget 10 --jobs 2                                     # the rnn row (MNIST-1D as 8 frames of 5 samples)
    python benchmarks/weight_sharing.py --family rnn --task mnist1d_frames --seeds 8 --multi 100 --random 100 \
        --budget 10 --methods enas,rsws --reseed 5 --jobs 2      # each row's pick trained 5 more times
    python benchmarks/weight_sharing.py --full --seeds 8 --methods enas,rsws --only-weight-sharing --top 20 \
        --pruner sha --pruner-option min_resource=3 --jobs 2     # 20 picks cut by successive halving
    python benchmarks/weight_sharing.py --full --seeds 8 --methods enas --only-weight-sharing \
        --zero-cost-warmup 100 --jobs 2                          # ENAS's controller first warmed on FLOPs

Flags override ``--full``'s values. ``--jobs`` runs seeds in parallel processes. ``--option KEY=VALUE``
passes a strategy option to the weight-sharing methods; ``--pruner`` (``--pruner-option``) prunes
their retraining trials and the FLOPs baseline's (never the multi-trial rows'); ``--only-weight-sharing`` leaves out the
multi-trial rows, the Kendall tau and the goal lines (minutes instead of hours, for comparing options
or running the ``flops`` row alone).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import framed_tasks  # noqa: E402  (benchmarks/framed_tasks.py: --task mnist1d_frames)
import zero_cost  # noqa: E402  (benchmarks/zero_cost.py)
QUICK = {"seeds": 2, "multi": "10,20", "random": 20, "budget": 10, "top": 5, "supernet_epochs": 20}
FULL = {"seeds": 5, "multi": "50,100", "random": 100, "budget": 20, "top": 5, "supernet_epochs": 40}
VARIANTS = {"darts2": ("darts", {"arch_order": 2})}   # a row that is a strategy with options


def search(method: str, *, args, seed: int, trials: int, folder: str, options=None, name: str | None = None,
           pruner: str | None = None):
    import nasforge

    name = name or f"{method}-{seed}"
    started = time.process_time()
    space = args.darts_space if method.startswith("darts") else args.space
    strategy, extra = VARIANTS.get(method, (method, {}))
    result = nasforge.search(
        args.family, task=args.task, strategy=strategy, trials=trials, budget=args.budget, seed=seed,
        strategy_options={**(options or {}), **extra}, tracking_uri=f"sqlite:///{folder}/mlflow.db",
        storage=f"sqlite:///{folder}/optuna.db", study_name=name, experiment=name, plots=False, space=space,
        max_params=args.max_params, max_flops=args.max_flops,
        pruner=pruner, pruner_options=args.pruner_options if pruner else None)
    return result, time.process_time() - started


def test_accuracy(result, trial) -> float:
    """The test accuracy of one trial's network (its saved weights)."""
    from nasforge.data.tasks import load_task
    from nasforge.plugins import get_registry
    from nasforge.results.models import rebuild_model

    family = get_registry().get("family", result.spec.family)
    return family.evaluate(rebuild_model(result.spec, trial), load_task(result.spec.task, result.spec.seed))["test_accuracy"]


def pick(result, trials):
    """The best complete trial, or None when none completed (under a tight cap, the first few trials
    of a search may all be pruned untrained)."""
    done = [t for t in trials if t.state.name == "COMPLETE"]
    return max(done, key=lambda t: (t.values[0], -t.number)) if done else None


def best_row(result, trials, *, reseed: int = 0, **compute) -> dict:
    """A table row: the best trial's test and validation accuracy (NaN when none completed), and
    with ``reseed`` its architecture's mean test accuracy over that many fresh trainings."""
    best = pick(result, trials)
    if best is None:
        return {"test": math.nan, "val": math.nan, "reseeded": math.nan, **compute}
    return {"test": test_accuracy(result, best), "val": best.values[0],
            "reseeded": reseeded(result, best, repeats=reseed) if reseed else math.nan, **compute}


def reseeded_note(row: dict) -> str:
    """`` (reseeded 0.7512)`` for a progress line, or nothing without ``--reseed``."""
    return "" if math.isnan(row["reseeded"]) else f" (reseeded {row['reseeded']:.4f})"


RESEED_SEED = 7_000_000   # training seeds of --reseed's retrainings: far from any trial's (seed * 1,000,003 + number)
_RESEEDED: dict[tuple, float] = {}   # one process's reseeded networks: rows that picked the same network share it


def reseeded(result, best, *, repeats: int) -> float:
    """The mean test accuracy of trial ``best``'s network trained ``repeats`` more times from scratch,
    each with a fresh training seed (same split, budget and settings; the family's build / fit /
    evaluate, no MLflow). Computed once per network, seed and budget: the N = 50 and N = 100 rows,
    or two methods, often pick the same one."""
    import torch

    from nasforge.data.tasks import load_task
    from nasforge.family import NullReporter
    from nasforge.plugins import get_registry
    from nasforge.strategies.oneshot.paths import network_key
    from nasforge.trial import seed_everything

    spec = result.spec
    family, params = get_registry().get("family", spec.family), best.user_attrs.get("final_params", best.params)
    config = zero_cost.config_of(family, spec.space, params)
    key = (spec.family, spec.task, spec.seed, json.dumps(spec.budget, sort_keys=True), repeats,
           network_key(params, config))
    if key not in _RESEEDED:
        task, accuracies = load_task(spec.task, spec.seed), []
        for repeat in range(repeats):
            seed_everything(RESEED_SEED + 1000 * spec.seed + repeat)
            model = family.build(config, task)
            family.fit(model, task, config, dict(spec.budget), NullReporter())
            model.eval()
            with torch.no_grad():
                accuracies.append(family.evaluate(model, task)["test_accuracy"])
        _RESEEDED[key] = float(sum(accuracies) / len(accuracies))
    return _RESEEDED[key]


def epochs_of(trials) -> float:
    return float(sum(t.user_attrs.get("metrics", {}).get("epochs_trained", 0) for t in trials))


def cpu_share(part, trials) -> float:
    """The fraction of a run's training time that ``part`` of its ``trials`` took: the run's CPU
    seconds pro-rated to a part of it."""
    def seconds(ts):
        return sum(t.user_attrs.get("metrics", {}).get("train_time_s", 0) for t in ts)

    return seconds(part) / max(seconds(trials), 1e-9)


def equal_compute_blocks(trials, epochs: float) -> list[list]:
    """``trials`` (in trial order) cut into consecutive blocks of at most ``epochs`` trained epochs
    each, the last (incomplete) block dropped: each block is one search with that compute."""
    blocks, block = [], []
    for trial in trials:
        if block and epochs_of([*block, trial]) > epochs:
            blocks.append(block)
            block = []
        block.append(trial)
    return blocks


def blocks_row(result, blocks, *, cpu: float, trials) -> dict:
    """A table row for searches cut out of one run (:func:`equal_compute_blocks`): each block's best
    trial's test accuracy, averaged over the blocks; its CPU seconds pro-rated by training time."""
    rows = [best_row(result, block) for block in blocks]
    rows = [r for r in rows if not math.isnan(r["test"])]
    if not rows:
        return {"test": math.nan, "val": math.nan, "reseeded": math.nan, "epochs": math.nan, "cpu": math.nan,
                "blocks": 0, "trials": math.nan}
    return {"test": sum(r["test"] for r in rows) / len(rows), "val": sum(r["val"] for r in rows) / len(rows),
            "reseeded": math.nan, "epochs": sum(epochs_of(b) for b in blocks) / len(blocks),
            "cpu": cpu * sum(cpu_share(b, trials) for b in blocks) / len(blocks),
            "blocks": len(blocks), "trials": sum(len(b) for b in blocks) / len(blocks)}


def phase_info(result) -> tuple[dict, str]:
    """The supernet phase's compute (its run's ``phase_*`` metrics) and its run id."""
    from mlflow import MlflowClient

    client = MlflowClient(result.tracking_uri)
    runs = client.search_runs([result.experiment_id], filter_string="tags.phase = 'supernet'")
    run = runs[0]
    return {k[len("phase_"):]: v for k, v in run.data.metrics.items() if k.startswith("phase_")}, run.info.run_id


def shared_scores(result, run_id: str, networks: list[dict]) -> list[float | None]:
    """Validation accuracy of each network (flat params) with the final shared weights of a phase
    (None for a network outside the phase's space: DARTS's is smaller)."""
    import torch

    from nasforge.data.tasks import load_task
    from nasforge.plugins import get_registry
    from nasforge.stores.mlflow_runs import Tracker
    from nasforge.strategies.oneshot import phase_checkpoint
    from nasforge.strategies.oneshot.phase_options import PhaseOptions
    from nasforge.weight_sharing import values_at

    spec = result.spec
    family, task = get_registry().get("family", spec.family), load_task(spec.task, spec.seed)
    tracker = Tracker(tracking_uri=result.tracking_uri, experiment_id=result.experiment_id)
    supernet = family.supernet(spec.space, task)
    supernet.load_state_dict(phase_checkpoint.load(tracker, run_id)["supernet"])
    supernet.eval()
    rows = torch.randperm(len(task.x_val), generator=torch.Generator().manual_seed(spec.seed))
    rows = rows[:PhaseOptions().rate_samples].sort().values
    x, y = torch.as_tensor(task.x_val)[rows], torch.as_tensor(task.y_val)[rows]
    scores = []
    with torch.no_grad():
        for flat in networks:
            if not all(v in (values_at(spec.space, k, v) or (v,)) for k, v in flat.items()):
                scores.append(None)   # a value the phase's space does not offer
                continue
            config = zero_cost.config_of(family, spec.space, flat)
            scores.append(float((supernet(x, config).argmax(1) == y).float().mean()))
    return scores


def flops_search(args, *, seed: int, folder: str):
    """The zero-cost baseline: the ``--top`` architectures with the most FLOPs among as many uniform
    draws as a phase rates (its ``candidates``), retrained as ordinary trials; its CPU seconds
    include the counting."""
    from nasforge.data.tasks import load_task
    from nasforge.plugins import get_registry
    from nasforge.size_limit import SizeLimit
    from nasforge.spec.space import SearchSpace
    from nasforge.strategies.oneshot.phase_options import PhaseOptions

    started = time.process_time()
    family = get_registry().get("family", args.family)
    candidates = int(args.options.get("candidates", PhaseOptions().candidates))
    picks = zero_cost.flops_picks(family, load_task(args.task, seed), SearchSpace.load(args.space), seed=seed,
                                  candidates=candidates, top=args.top,
                                  limit=SizeLimit(max_params=args.max_params, max_flops=args.max_flops))
    zero_cost.register_fixed_picks()
    counting = time.process_time() - started
    result, cpu = search("fixed-picks", args=args, seed=seed, trials=len(picks), folder=folder,
                         options={"picks": picks}, name=f"flops-{seed}", pruner=args.pruner)
    return result, cpu + counting


def run_seed(args, seed: int) -> dict:
    """Every method on one seed; returns ``{row: {"test", "epochs", "cpu"}, "tau": {...}}``."""
    import optuna
    import torch

    from nasforge.data.tasks import load_task
    from nasforge.plugins import get_registry

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    framed_tasks.register_framed_tasks()
    if args.zero_cost_warmup:
        zero_cost.patch_zero_cost_warmup(args.zero_cost_warmup)
    multi = sorted(int(n) for n in args.multi.split(","))
    out: dict = {"rows": {}, "tau": {}}
    options = {"supernet_epochs": args.supernet_epochs, **args.options}
    with tempfile.TemporaryDirectory(prefix="nasforge-ws-") as folder:
        # warm up (imports, the task, the stores) so that no method pays for it in its CPU seconds
        search("random", args=argparse.Namespace(**{**vars(args), "budget": 1}), seed=seed, trials=1,
               folder=folder, name="warm-up")
        phases = {}
        for method in args.methods:
            if method == "flops":   # no supernet phase
                result, cpu = flops_search(args, seed=seed, folder=folder)
                phase_epochs = 0.0
            else:
                result, cpu = search(method, args=args, seed=seed, trials=args.top, folder=folder, options=options,
                                     pruner=args.pruner)
                compute, run_id = phase_info(result)
                phase_epochs = compute["epochs_equivalent"]
                phases[method] = (result, run_id)
            out["rows"][method] = best_row(result, result.trials, reseed=args.reseed, cpu=cpu,
                                           epochs=phase_epochs + epochs_of(result.trials))
            row = out["rows"][method]
            print(f"seed {seed} {method}: test {row['test']:.4f}{reseeded_note(row)} cpu {cpu:.0f}s", file=sys.stderr)
        if args.only_weight_sharing:
            return out
        result, cpu = search("controller", args=args, seed=seed, trials=multi[-1], folder=folder,
                             options={"failed_reward": 0.0} if args.max_params or args.max_flops else None)
        ordered = sorted(result.trials, key=lambda t: t.number)
        for n in multi:
            first = ordered[:n]
            out["rows"][f"controller N={n}"] = best_row(result, first, reseed=args.reseed,
                                                        epochs=epochs_of(first), cpu=cpu * cpu_share(first, ordered))
        print(f"seed {seed} controller: cpu {cpu:.0f}s; test " + ", ".join(
            f"N={n} {out['rows'][f'controller N={n}']['test']:.4f}{reseeded_note(out['rows'][f'controller N={n}'])}"
            for n in multi), file=sys.stderr)
        if "enas" in out["rows"]:   # the controller with ENAS's compute: its first trials, up to ENAS's epochs
            first = equal_compute_blocks(ordered, out["rows"]["enas"]["epochs"])[:1]
            out["rows"]["controller @ENAS"] = blocks_row(result, first, cpu=cpu, trials=ordered)
        result, cpu = search("random", args=args, seed=seed, trials=args.random, folder=folder)
        out["rows"][f"random N={args.random}"] = best_row(result, result.trials, reseed=args.reseed, cpu=cpu,
                                                          epochs=epochs_of(result.trials))
        if "enas" in out["rows"]:   # random search with ENAS's compute, averaged over disjoint runs of it
            blocks = equal_compute_blocks(sorted(result.trials, key=lambda t: t.number), out["rows"]["enas"]["epochs"])
            out["rows"]["random @ENAS"] = blocks_row(result, blocks, cpu=cpu, trials=result.trials)
        done = [t for t in result.trials if t.state.name == "COMPLETE"]
        unique = {json.dumps(sorted(t.params.items()), default=str): t for t in done}
        networks = [t.params for t in unique.values()]
        alone = [t.values[0] for t in unique.values()]
        for method, (phase_result, run_id) in phases.items():
            pairs = [(s, a) for s, a in zip(shared_scores(phase_result, run_id, networks), alone) if s is not None]
            out["tau"][method] = tau_of([s for s, _ in pairs], [a for _, a in pairs])
        family, task = get_registry().get("family", args.family), load_task(args.task, seed)
        counted = [zero_cost.flops(family, task, result.spec.space, flat) for flat in networks]
        out["tau"]["flops"] = tau_of(counted, alone)
        row = out["rows"][f"random N={args.random}"]
        at = "".join(f"; {name} {out['rows'][name]['test']:.4f}" for name in ("controller @ENAS", "random @ENAS")
                     if name in out["rows"])
        print(f"seed {seed} random: test {row['test']:.4f}{reseeded_note(row)} cpu {cpu:.0f}s{at}; tau {out['tau']}",
              file=sys.stderr)
    return out


def tau_of(scores, alone) -> tuple[float, int]:
    """Kendall tau between two rankings and how many networks it is over (NaN below two)."""
    from scipy.stats import kendalltau

    if len(alone) < 2:
        return math.nan, len(alone)
    return float(kendalltau(scores, alone).statistic), len(alone)


def mean_std(values) -> tuple[float, float]:
    m = sum(values) / len(values)
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0


def report(results: list[dict], args) -> None:
    rows = list(results[0]["rows"])
    print(f"\n{args.family}/{args.task}, space {args.space} (darts: {args.darts_space}), budget {args.budget} "
          f"epochs per network, supernet {args.supernet_epochs} epochs, {len(results)} seeds"
          + (f", options {args.options}" if args.options else "")
          + (f", ENAS's controller warmed on FLOPs for {args.zero_cost_warmup} steps" if args.zero_cost_warmup else "")
          + (f", top {args.top} retrained with pruner {args.pruner} {args.pruner_options}" if args.pruner else "")
          + (f", max_params {args.max_params}" if args.max_params else "")
          + (f", max_flops {args.max_flops}" if args.max_flops else ""))
    reseed = f"reseeded x{args.reseed} %" if args.reseed else ""
    print(f"{'method':<20} {'test accuracy %':>18} {'epochs':>16} {'CPU s':>16}" + (f" {reseed:>18}" if reseed else ""))
    for row in rows:
        test = mean_std([100 * r["rows"][row]["test"] for r in results])
        epochs = mean_std([r["rows"][row]["epochs"] for r in results])
        cpu = mean_std([r["rows"][row]["cpu"] for r in results])
        again = mean_std([100 * r["rows"][row]["reseeded"] for r in results]) if reseed else None
        print(f"{row:<20} {test[0]:>9.2f} +- {test[1]:<5.2f} {epochs[0]:>8.0f} +- {epochs[1]:<5.0f} "
              f"{cpu[0]:>8.0f} +- {cpu[1]:<5.0f}" + (f" {again[0]:>9.2f} +- {again[1]:<5.2f}" if again else ""))
    if args.only_weight_sharing:
        return
    for method in [m for m in args.methods if m != "flops"] + ["flops"]:
        taus = [r["tau"][method][0] for r in results]
        n = min(r["tau"][method][1] for r in results)
        tau = mean_std(taus)
        score = "FLOPs (no training)" if method == "flops" else f"{method} shared-weight"
        print(f"Kendall tau, {score} vs stand-alone validation accuracy over >= {n} networks: "
              f"{tau[0]:.3f} +- {tau[1]:.3f}")
    if not {"enas", "rsws"} <= set(args.methods):
        print("goal lines: not printed (they need enas and rsws in --methods)")
        return
    multi = sorted(int(n) for n in args.multi.split(","))
    reference = f"controller N={multi[-1]}"
    enas = mean_std([100 * r["rows"]["enas"]["test"] for r in results])[0]
    ref = mean_std([100 * r["rows"][reference]["test"] for r in results])[0]
    rsws = mean_std([100 * r["rows"]["rsws"]["test"] for r in results])[0]
    ratio_cpu = mean_std([r["rows"]["enas"]["cpu"] / r["rows"][reference]["cpu"] for r in results])[0]
    ratio_epochs = mean_std([r["rows"]["enas"]["epochs"] / r["rows"][reference]["epochs"] for r in results])[0]
    print(f"goal: ENAS within 0.5 points of {reference}: {enas - ref:+.2f} points -> "
          f"{'met' if enas >= ref - 0.5 else 'NOT met'}")
    print(f"goal: ENAS compute <= 1/10 of {reference}: {ratio_epochs:.3f} of its epochs, {ratio_cpu:.3f} of its CPU s "
          f"-> {'met' if max(ratio_cpu, ratio_epochs) <= 0.1 else 'NOT met'}")
    print(f"goal: ENAS ahead of RS-WS: {enas - rsws:+.2f} points -> {'met' if enas > rsws else 'NOT met'}")
    if "random @ENAS" in rows:
        at = {row: mean_std([100 * r["rows"][row]["test"] for r in results])[0] for row in ("random @ENAS",
                                                                                          "controller @ENAS")}
        blocks = mean_std([r["rows"]["random @ENAS"]["blocks"] for r in results])[0]
        trials = mean_std([r["rows"]["random @ENAS"]["trials"] for r in results])[0]
        first = mean_std([r["rows"]["controller @ENAS"]["trials"] for r in results])[0]
        print(f"at ENAS's compute (its epochs; not a goal line): ENAS {enas - at['random @ENAS']:+.2f} points from "
              f"random search ({trials:.1f} trials, the mean of {blocks:.1f} such searches per seed), "
              f"{enas - at['controller @ENAS']:+.2f} from the controller's first {first:.1f} trials")
    if args.reseed:
        again = {row: mean_std([100 * r["rows"][row]["reseeded"] for r in results])[0]
                 for row in ("enas", "rsws", reference)}
        print(f"the picked architectures, each trained {args.reseed} more times (not a goal line): ENAS "
              f"{again['enas'] - again[reference]:+.2f} points from {reference}, {again['enas'] - again['rsws']:+.2f} "
              "from RS-WS")
    if "flops" in args.methods:
        flops = mean_std([100 * r["rows"]["flops"]["test"] for r in results])[0]
        print(f"FLOPs baseline (no supernet): {flops - ref:+.2f} points from {reference}, {flops - enas:+.2f} from ENAS")
    if "darts" in args.methods:
        darts = mean_std([100 * r["rows"]["darts"]["test"] for r in results])[0]
        print(f"DARTS: {darts - ref:+.2f} points from {reference}, {darts - enas:+.2f} from ENAS, "
              f"{darts - rsws:+.2f} from RS-WS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="the full size: " + json.dumps(FULL))
    parser.add_argument("--family", default="cnn")
    parser.add_argument("--task", default="mnist1d")
    parser.add_argument("--space", default=None, help="default: the family's supernet_space")
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--multi", help="trial counts of the multi-trial controller, e.g. 50,100")
    parser.add_argument("--random", type=int, help="trials of random search")
    parser.add_argument("--budget", type=int, help="epochs per network")
    parser.add_argument("--top", type=int, help="architectures ENAS / RS-WS / DARTS retrain")
    parser.add_argument("--methods", default="enas,rsws,darts,flops",
                        help="weight-sharing methods (enas, rsws, darts, darts2: second order) and the FLOPs "
                             "baseline (flops); enas and rsws are needed for the goal lines")
    parser.add_argument("--supernet-epochs", type=int)
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a strategy option for the weight-sharing methods (repeatable), e.g. finetune_epochs=2")
    parser.add_argument("--pruner", default=None,
                        help="a pruner for the retraining of the weight-sharing methods' and the FLOPs baseline's "
                             "picks (e.g. sha with --top 15: successive halving among more picks at the same "
                             "compute); the multi-trial rows never prune")
    parser.add_argument("--pruner-option", action="append", default=[], metavar="KEY=VALUE",
                        help="a pruner option (repeatable), e.g. min_resource=2")
    parser.add_argument("--only-weight-sharing", action="store_true",
                        help="leave out the multi-trial controller and random search (no tau, no goal lines)")
    parser.add_argument("--max-params", type=int, default=None,
                        help="every method searches the networks of at most this many parameters")
    parser.add_argument("--max-flops", type=int, default=None,
                        help="every method searches the networks of at most this many forward FLOPs")
    parser.add_argument("--reseed", type=int, default=0, metavar="R",
                        help="train each row's picked architecture R more times with fresh training seeds and "
                             "print its mean test accuracy beside the row (the architecture apart from its "
                             "training run's luck; not counted in the row's compute)")
    parser.add_argument("--zero-cost-warmup", type=int, default=0, metavar="STEPS",
                        help="before ENAS's supernet phase, STEPS REINFORCE steps of its controller rewarded by "
                             "FLOPs (zero_cost.patch_zero_cost_warmup; Abdelfattah et al. 2021, Sec. 5)")
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    from nasforge.cli import key_values

    args.options = key_values(args.option, "--option")   # read as the CLI's --strategy-option
    args.pruner_options = key_values(args.pruner_option, "--pruner-option")
    for key, value in (FULL if args.full else QUICK).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    args.methods = tuple(args.methods.split(","))
    from nasforge.plugins import get_registry

    framed_tasks.register_framed_tasks()
    family = get_registry().get("family", args.family)
    args.darts_space = args.space or family.darts_space or family.supernet_space
    if args.space is None:
        args.space = family.supernet_space
    started = time.time()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(run_seed, [args] * len(seeds), seeds))
    else:
        results = [run_seed(args, seed) for seed in seeds]
    report(results, args)
    print(f"({time.time() - started:.0f} s wall; command: python benchmarks/weight_sharing.py "
          f"{' '.join(sys.argv[1:])})")


if __name__ == "__main__":
    main()
