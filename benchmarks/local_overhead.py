"""Per-trial overhead of nasforge's local executor against a bare Optuna + MLflow loop.

Both sides train the SAME model with the SAME code (``MLPFamily.build`` / ``MLPFamily.fit``
from the built-in ``nasforge_mlp`` plugin) on the same data (the ``digits`` task), draw the
same configurations (``optuna.samplers.RandomSampler(seed)`` over the shipped ``mlp_small``
space, suggested in the same order), seed each trial the same way, and write the same MLflow
run tree to their own fresh sqlite store in a temporary folder:

* a parent run; one nested child run per trial created with the same tags, the flattened
  params in one ``log_batch``; one ``log_batch`` per epoch report; the ``state_dict``
  artifact; the final metrics in one ``log_batch``; the status tags; ``set_terminated``;
* an Optuna study in its own sqlite storage, driven by ``study.optimize``.

What nasforge adds on top is what this script measures: spec validation, the registry, the
search-space layer, ``run_trial``, the ``Feedback`` plumbing (``trial.report`` when a pruner runs), user
attributes for resume, hooks. The one-time end of a search (nasforge rebuilds the best
model, evaluates it on the test split and logs it as an MLflow model on the parent run) is
kept out of the per-trial comparison and printed separately.

The two searches run in lock-step: each in its own thread, taking turns one trial at a
time (a trial of one, then a trial of the other, ...), so a burst of load from another
process lands on both alike; the side that goes first alternates between pairs. A trial's
time runs from the moment its side gets the turn back after the previous trial to the end
of the trial (stamped at the same point on both sides; for nasforge in its
``trial_finished`` hook): Optuna's bookkeeping, sampling, and the trial itself. Trial 0
follows the setup and is left out. The headline ratio is the median over all those trials
(all pairs of this one invocation); the per-pair ratio of means, the best of the repeats
per trial number (contention only adds time) and the process CPU time are printed as
cross-checks.

``--baseline-optuna-extras`` makes the baseline also do the Optuna-side writes nasforge
makes for resume (the MLflow run id and the final metrics as trial user attributes, one
storage commit each), which leaves only the platform's Python layers in the difference.
(With ``pruner="none"``, the default here, nasforge no longer calls ``trial.report``.)

Usage::

    python benchmarks/local_overhead.py [--trials 20] [--repeats 3] [--epochs 5]
                                        [--baseline-optuna-extras] [--torch-threads N] [--profile]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

from nasforge.hookspecs import hookimpl  # light: pluggy only

GOAL = 1.10
SPACE = "mlp_small"
TASK = "digits"
# mlp_small, as the bare loop suggests it (same names, same order as nasforge's define-by-run sampling).
UNITS, ACTIVATIONS, LRS = [16, 64], ["relu", "tanh"], [0.01, 0.003]


class Turnstile:
    """Lets two searches, each in its own thread, take turns one trial at a time.

    Each side runs one trial, hands the turn over and waits; so the two sides' trials
    alternate every ~0.1-0.5 s and a burst of load from another process hits both alike.
    """

    def __init__(self, first: str):
        self.cond = threading.Condition()
        self.turn = first
        self.done: set[str] = set()

    @staticmethod
    def other(side: str) -> str:
        return "nasforge" if side == "baseline" else "baseline"

    def wait(self, side: str) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.turn == side or self.other(side) in self.done)

    def hand_over(self, side: str) -> None:
        with self.cond:
            self.turn = self.other(side)
            self.cond.notify_all()

    def finish(self, side: str) -> None:
        with self.cond:
            self.done.add(side)
            self.turn = self.other(side)
            self.cond.notify_all()


@dataclass
class RunTiming:
    """One search: wall-clock stamps (time.time()) and CPU stamps (time.process_time())."""

    side: str
    gate: Turnstile | None = None
    start: float = 0.0
    first_trial_start: float = 0.0
    ends: list[float] = field(default_factory=list)        # a trial ended
    resumes: list[float] = field(default_factory=list)     # this side got the turn back
    cpu_ends: list[float] = field(default_factory=list)
    cpu_resumes: list[float] = field(default_factory=list)
    end: float = 0.0
    params: list[dict] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    finish_parts: dict[str, float] = field(default_factory=dict)

    def trial_ended(self, value: float) -> None:
        """Stamp a trial's end, then (in lock-step) let the other side run one trial."""
        self.ends.append(time.time())
        self.cpu_ends.append(time.process_time())
        self.values.append(value)
        if self.gate is not None:
            self.gate.hand_over(self.side)
            self.gate.wait(self.side)
        self.resumes.append(time.time())
        self.cpu_resumes.append(time.process_time())

    @property
    def setup_s(self) -> float:
        """Start -> first trial start (stores, experiment, parent run, study)."""
        return self.first_trial_start - self.start

    @property
    def intervals(self) -> list[float]:
        """Per trial after the first: resume -> this trial's end (return to Optuna, tell,
        new trial, sampling, the trial itself). Trial 0 is left out (it follows the setup)."""
        return [e - r for r, e in zip(self.resumes, self.ends[1:])]

    @property
    def cpu_intervals(self) -> list[float]:
        return [e - r for r, e in zip(self.cpu_resumes, self.cpu_ends[1:])]

    @property
    def mean_s(self) -> float:
        return sum(self.intervals) / len(self.intervals)

    @property
    def finish_s(self) -> float:
        """After the last trial: the one-time end of the search."""
        return self.end - self.resumes[-1]


def _trial_seed(search_seed: int, number: int) -> int:
    # The same per-trial seed nasforge uses (nasforge.trial.trial_seed), written out here.
    return (search_seed * 1_000_003 + number) % (2**31 - 1)


# -- the bare loop -----------------------------------------------------------------------
def run_baseline(workdir: str, timing: RunTiming, *, trials: int, epochs: int, seed: int, task, family,
                 plugin_version: str, optuna_extras: bool = False) -> RunTiming:
    import numpy as np
    import optuna
    import torch
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    from nasforge.family import Reporter

    timing.start = time.time()
    tracking_uri = f"sqlite:///{workdir}/mlflow.db"
    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment("baseline")
    study_name = "baseline-study"
    parent = client.create_run(experiment_id, tags={"mlflow.runName": study_name, "role": "search"},
                               run_name=study_name)
    parent_id = parent.info.run_id
    client.log_batch(parent_id, params=[Param("family", "mlp"), Param("task", TASK), Param("strategy", "random"),
                                        Param("seed", str(seed)), Param("budget.epochs", str(epochs))])
    study = optuna.create_study(storage=f"sqlite:///{workdir}/optuna.db", study_name=study_name,
                                direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed),
                                pruner=optuna.pruners.NopPruner())

    def log(run_id, *, metrics=(), step=0, params=(), tags=()):
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, float(v), now, int(step)) for k, v in dict(metrics).items()],
                         params=[Param(k, str(v)) for k, v in dict(params).items()],
                         tags=[RunTag(k, str(v)) for k, v in dict(tags).items()])

    class MlflowReporter(Reporter):
        def __init__(self, run_id):
            self.run_id, self.last_step = run_id, 0

        def report(self, step, metrics):
            log(self.run_id, metrics=metrics, step=step)
            self.last_step = max(self.last_step, int(step))

    def objective(trial: optuna.Trial) -> float:
        units = trial.suggest_categorical("layers.0.units", UNITS)
        activation = trial.suggest_categorical("layers.0.activation", ACTIVATIONS)
        lr = trial.suggest_categorical("lr", LRS)
        params = {"n_layers": 1, "layers": [{"units": units, "activation": activation}], "optimizer": "adam",
                  "lr": lr, "batch_size": 64, "patience": 5}
        flat = {"n_layers": 1, "layers.0.units": units, "layers.0.activation": activation, "optimizer": "adam",
                "lr": lr, "batch_size": 64, "patience": 5}
        number = trial.number
        tseed = _trial_seed(seed, number)
        tags = {"family": "mlp", "task": TASK, "strategy": "random", "trial_number": number, "seed": tseed,
                "search_seed": seed, "backend": "local", "plugin": "mlp", "plugin_version": plugin_version,
                "study": study_name, "mlflow.runName": f"trial-{number}", "mlflow.parentRunId": parent_id}
        started = time.perf_counter()
        run = client.create_run(experiment_id, tags={k: str(v) for k, v in tags.items()}, run_name=f"trial-{number}")
        run_id = run.info.run_id
        log(run_id, params=flat)
        if optuna_extras:  # the link a resumable loop keeps (nasforge stores it for resume)
            trial.set_user_attr("mlflow_run_id", run_id)
        reporter = MlflowReporter(run_id)
        random.seed(tseed)
        np.random.seed(tseed % (2**32))
        torch.manual_seed(tseed)
        config = family.make_config(params)
        model = family.build(config, task)
        n_params = sum(p.numel() for p in model.parameters())
        metrics = dict(family.fit(model, task, config, {"epochs": epochs}, reporter))
        metrics.update(n_params=float(n_params), train_time_s=time.perf_counter() - started)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "state_dict.pt")
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
            client.log_artifact(run_id, path, "model")
        log(run_id, metrics=metrics, step=reporter.last_step)
        if optuna_extras:
            trial.set_user_attr("metrics", metrics)
        log(run_id, tags={"status_reason": "finished", "nasforge_status": "complete"})
        client.set_terminated(run_id, status="FINISHED")
        timing.params.append(dict(trial.params))
        timing.trial_ended(metrics["val_accuracy"])
        return metrics["val_accuracy"]

    study.optimize(objective, n_trials=trials, gc_after_trial=False, show_progress_bar=False)
    client.set_terminated(parent_id, status="FINISHED")
    timing.end = time.time()
    timing.first_trial_start = _first_trial_start(study)
    return timing


def _first_trial_start(study) -> float:
    start = study.trials[0].datetime_start
    return start.timestamp() if isinstance(start, _dt.datetime) else float(start)


# -- nasforge ----------------------------------------------------------------------------
class _Recorder:
    """A run-time nasforge plugin: stamps each trial's end (the ``trial_finished`` hook)."""

    def __init__(self):
        self.timing: RunTiming | None = None

    @hookimpl
    def trial_finished(self, record):
        if self.timing is not None:
            self.timing.trial_ended(record.values[0] if record.values else float("nan"))


_RECORDER = _Recorder()
_FINISH_PARTS: dict[str, float] = {}


def _install_hooks() -> None:
    import nasforge
    from nasforge.results import finish, result

    nasforge.register(_RECORDER, name="benchmark-recorder")

    # Time the pieces of the one-time end of a search (wrappers only; nothing else changes).
    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                _FINISH_PARTS[name] = _FINISH_PARTS.get(name, 0.0) + time.perf_counter() - t
        return wrapper

    finish.log_model = timed("log_model (mlflow.pytorch pt2)", finish.log_model)
    result.rebuild_model = timed("rebuild best model (download weights)", result.rebuild_model)


def run_nasforge(workdir: str, timing: RunTiming, *, trials: int, epochs: int, seed: int,
                 save_models: bool = True) -> RunTiming:
    import nasforge

    _RECORDER.timing = timing
    _FINISH_PARTS.clear()
    timing.start = time.time()
    try:
        result = nasforge.search("mlp", task=TASK, space=SPACE, strategy="random", budget=epochs, trials=trials,
                                 seed=seed, tracking_uri=f"sqlite:///{workdir}/mlflow.db",
                                 storage=f"sqlite:///{workdir}/optuna.db", run_dir=workdir,
                                 save_models=save_models, progress=False)
    finally:
        _RECORDER.timing = None
    timing.end = time.time()
    timing.first_trial_start = _first_trial_start(result.study)
    timing.params = [dict(t.params) for t in result.study.trials]
    timing.finish_parts = dict(_FINISH_PARTS)
    return timing


# -- driver ------------------------------------------------------------------------------
def _median(xs):
    return statistics.median(xs) if xs else float("nan")


def _plugin_version() -> str:
    """The family's plugin version, as run_trial looks it up for its tags."""
    from nasforge.plugins import get_registry

    registry = get_registry()
    if hasattr(registry, "provenance"):
        return registry.provenance("family", "mlp")[1]
    return registry.get("family", "mlp").version


def _best_of(ts: list[RunTiming]) -> float:
    """Mean over trial numbers of the fastest interval seen for that number across repeats.

    Both sides draw the same configuration for a given trial number, so this pairs like
    with like; contention from other processes can only lengthen an interval.
    """
    per_number = zip(*(t.intervals for t in ts))
    best = [min(xs) for xs in per_number]
    return sum(best) / len(best)


def _one(side: str, args, ctx, gate: Turnstile | None = None) -> RunTiming:
    timing = RunTiming(side, gate=gate)
    workdir = tempfile.mkdtemp(prefix=f"nf-bench-{side}-")
    try:
        if gate is not None:
            gate.wait(side)
        if side == "baseline":
            run_baseline(workdir, timing, trials=args.trials, epochs=args.epochs, seed=args.seed,
                         optuna_extras=args.baseline_optuna_extras, **ctx)
        else:
            run_nasforge(workdir, timing, trials=args.trials, epochs=args.epochs, seed=args.seed)
        return timing
    finally:
        if gate is not None:
            gate.finish(side)
        shutil.rmtree(workdir, ignore_errors=True)


def _pair(args, ctx, first: str) -> dict[str, RunTiming]:
    """One baseline search and one nasforge search in lock-step (two threads taking turns)."""
    gate = Turnstile(first)
    out: dict[str, RunTiming] = {}
    errors: list[BaseException] = []

    def work(side):
        try:
            out[side] = _one(side, args, ctx, gate)
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(side,), name=f"bench-{side}") for side in ("baseline", "nasforge")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out


def _profile(args) -> None:
    import cProfile
    import pstats

    workdir = tempfile.mkdtemp(prefix="nf-bench-profile-")
    try:
        prof = cProfile.Profile()
        prof.enable()
        run_nasforge(workdir, RunTiming("nasforge"), trials=args.trials, epochs=args.epochs, seed=args.seed)
        prof.disable()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n== cProfile of one nasforge search ({args.trials} trials), top 25 by cumulative time ==")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="trials per search (default 20)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="lock-step pairs of searches (one per side), first side alternating (default 3)")
    parser.add_argument("--epochs", type=int, default=5, help="budget per trial in epochs (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch.set_num_threads for both sides (default: leave torch's default)")
    parser.add_argument("--baseline-optuna-extras", action="store_true",
                        help="let the baseline also store the MLflow run id and the final metrics as Optuna "
                             "trial user attributes, as nasforge does for resume (default: a bare loop)")
    parser.add_argument("--profile", action="store_true", help="also cProfile one nasforge search")
    args = parser.parse_args(argv)
    if args.trials < 3 or args.repeats < 1:
        parser.error("--trials must be >= 3 (trial 0 is left out) and --repeats >= 1")

    import logging
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    t_import = time.perf_counter()
    import mlflow  # noqa: F401  (configures its loggers on import: quiet them afterwards)
    import optuna
    import torch

    for name in ("mlflow", "mlflow.store.db.utils", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)

    from nasforge.data.builtin_tasks import load_digits_task
    from nasforge_mlp import MLPFamily

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    _install_hooks()
    family = MLPFamily()
    ctx = dict(task=load_digits_task(args.seed), family=family,
               plugin_version=_plugin_version())  # computed once, outside the loop
    print(f"local_overhead: task={TASK} space={SPACE} strategy=random(seed={args.seed}) epochs={args.epochs} "
          f"trials={args.trials} repeats={args.repeats} baseline_optuna_extras={args.baseline_optuna_extras}; torch {torch.__version__}, optuna {optuna.__version__}, "
          f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
          f"load avg {os.getloadavg()[0]:.2f} at start")

    # Warm-up (not counted): imports, the registry, nasforge's task cache, torch's first kernels.
    _pair(argparse.Namespace(**{**vars(args), "trials": 2}), ctx, "baseline")
    print(f"warm-up done in {time.perf_counter() - t_import:.1f} s\n")

    runs: dict[str, list[RunTiming]] = {"baseline": [], "nasforge": []}
    for r in range(args.repeats):
        first = "baseline" if r % 2 == 0 else "nasforge"
        pair = _pair(args, ctx, first)
        for side in ("baseline", "nasforge"):
            runs[side].append(pair[side])
        b, n = pair["baseline"], pair["nasforge"]
        print(f"  pair {r + 1}/{args.repeats} ({first} first): per trial (mean | median) baseline "
              f"{b.mean_s:.3f} | {_median(b.intervals):.3f} s, nasforge {n.mean_s:.3f} | {_median(n.intervals):.3f} s, "
              f"ratio of means {n.mean_s / b.mean_s:.2f}; setup {b.setup_s:.2f} / {n.setup_s:.2f} s, "
              f"end {b.finish_s:.2f} / {n.finish_s:.2f} s", flush=True)

    b, n = runs["baseline"], runs["nasforge"]
    same_params = all(x.params == y.params for x in b for y in n)
    same_values = all(x.values == y.values for x in b for y in n)
    print(f"\nsame configurations drawn on both sides: {'yes' if same_params else 'NO'}; "
          f"identical val_accuracy per trial: {'yes' if same_values else 'no'}")

    def med_interval(ts):
        return _median([i for t in ts for i in t.intervals])

    def med_cpu(ts):
        return _median([i for t in ts for i in t.cpu_intervals])

    rows = [
        ("per trial: median over all trials (headline)", med_interval(b), med_interval(n)),
        ("per trial: total / (N-1), median over pairs", _median([t.mean_s for t in b]), _median([t.mean_s for t in n])),
        (f"per trial: best of {args.repeats} per trial number, mean", _best_of(b), _best_of(n)),
        ("per trial: process CPU time, median", med_cpu(b), med_cpu(n)),
        ("setup (start -> first trial), median", _median([t.setup_s for t in b]), _median([t.setup_s for t in n])),
    ]
    print(f"\n{'':52s} {'baseline':>10s} {'nasforge':>10s} {'ratio':>7s} {'extra':>9s}")
    for label, x, y in rows:
        print(f"{label:52s} {x:9.3f}s {y:9.3f}s {y / x:7.2f} {(y - x) * 1000:+7.0f}ms")
    per_pair = [y.mean_s / x.mean_s for x, y in zip(b, n)]
    print(f"ratio of per-trial means, per lock-step pair: {', '.join(f'{r:.2f}' for r in per_pair)} "
          f"(median {_median(per_pair):.2f})")
    ratio = med_interval(n) / med_interval(b)
    print(f"\nRATIO nasforge/baseline per trial: {ratio:.2f} (+{(med_interval(n) - med_interval(b)) * 1000:.0f} ms/trial; "
          f"goal <= {GOAL:.2f}: {'MET' if ratio <= GOAL else 'NOT MET'})")

    print("\none-time end of a search (not in the per-trial figures), median:")
    print(f"  baseline: {_median([t.finish_s for t in b]):.3f} s (back to study.optimize's caller; "
          f"set_terminated on the parent run)")
    print(f"  nasforge: {_median([t.finish_s for t in n]):.3f} s (save_models=True: best model rebuilt, "
          f"test-evaluated, logged as an MLflow pt2 model; trials.csv; parent closed), of which:")
    for part in n[0].finish_parts:
        print(f"    {part:40s} {_median([t.finish_parts.get(part, 0.0) for t in n]):.3f} s")

    if args.profile:
        _profile(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
