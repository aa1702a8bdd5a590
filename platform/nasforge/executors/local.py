"""The local executor: trials run in this process (threads when ``n_jobs > 1``), no server.

It drives an Optuna study with ``study.optimize``, so samplers, pruners, storage and
grid exhaustion behave exactly as in plain Optuna. Strategies side by side are one study whose
sampler deals each trial to a strategy (each trial's MLflow run is tagged with its own); there
:func:`_deal` replaces ``study.optimize``, so that a worker asks for a trial only while some
strategy is below its share.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Callable

from nasforge.errors import NasforgeError
from nasforge.spec.arguments import SearchSpec
from nasforge.outcome import FAILED, PRUNED, TrialOutcome
from nasforge.trial import OptunaFeedback, TrialContext, run_trial


class TrialFailed(NasforgeError):
    """Raised to Optuna so it records the trial as FAIL (the reason is in MLflow too)."""


def run_local(spec: SearchSpec, *, study, context: TrialContext, n_trials: int, tracker,
              on_outcome: Callable[[TrialOutcome], None]) -> None:
    """Run ``n_trials`` more trials of ``study``; ``on_outcome`` sees each one as it ends."""
    import optuna

    def objective(trial: optuna.Trial):
        try:
            params = spec.space.sample(trial)
            trial_context = context
            if spec.side_by_side:
                trial_context = dataclasses.replace(context, strategy=study.sampler.strategy_of(trial))
            outcome = run_trial(params, number=trial.number, context=trial_context,
                                feedback=OptunaFeedback(trial, pruning=spec.pruner != "none"),
                                tracker=tracker)
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            raise
        if outcome.metrics:
            trial.set_user_attr("metrics", outcome.metrics)
        on_outcome(outcome)
        if outcome.status == PRUNED:
            raise optuna.TrialPruned(outcome.reason)
        if outcome.status == FAILED:
            raise TrialFailed(outcome.reason)
        return outcome.values[0] if len(outcome.values) == 1 else outcome.values

    if spec.side_by_side:
        _deal(study, objective, n_trials=n_trials, n_jobs=spec.n_jobs, timeout=spec.timeout)
        return
    study.optimize(objective, n_trials=n_trials, timeout=spec.timeout, n_jobs=spec.n_jobs,
                   catch=(TrialFailed,), gc_after_trial=False, show_progress_bar=False)


def _deal(study, objective, *, n_trials: int, n_jobs: int, timeout: float | None) -> None:
    """``study.optimize`` for strategies side by side: ``n_jobs`` workers ask and tell, and a worker
    asks for a trial only while the study's :class:`~nasforge.strategies.side_by_side.SideBySideSampler`
    has a strategy below its share. (``study.optimize`` asks first: once a grid has covered its
    space, a thread could get a trial no strategy has room for.)"""
    import optuna

    state = optuna.trial.TrialState
    deadline = time.monotonic() + timeout if timeout else None
    gate, stop = threading.Lock(), threading.Event()
    asked = [0]

    def next_trial():
        with gate:
            if stop.is_set() or asked[0] >= n_trials or (deadline is not None and time.monotonic() >= deadline):
                return None
            if getattr(study, "_stop_flag", False):   # study.stop(), as study.optimize honours it
                return None
            if study.sampler.is_exhausted(study):
                return None
            asked[0] += 1
            return study.ask()

    def work() -> None:
        while (trial := next_trial()) is not None:
            try:
                values = objective(trial)
            except optuna.TrialPruned:
                study.tell(trial, state=state.PRUNED)
            except TrialFailed:
                study.tell(trial, state=state.FAIL)
            except BaseException:
                stop.set()
                study.tell(trial, state=state.FAIL)
                raise
            else:
                study.tell(trial, values)

    if n_jobs == 1:
        work()
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=n_jobs, thread_name_prefix="nasforge-trial") as pool:
        futures = [pool.submit(work) for _ in range(n_jobs)]
        try:
            for future in futures:
                future.result()
        except BaseException:
            stop.set()   # the others finish the trial they run, then stop
            raise
