"""The search loop: open the stores, run the trials on the chosen executor, finish or settle."""

from __future__ import annotations

import dataclasses
import importlib
import sys
import time

from nasforge.executors.backends import EXECUTORS, executor_session
from nasforge.executors.supernet_phase import phase_options, run_supernet_phase
from nasforge.interrupts import release_storage_session
from nasforge.plugins import get_registry
from nasforge.progress import Monitor
from nasforge.results.finish import finish_search
from nasforge.results.result import SearchResult
from nasforge.spec.arguments import SearchSpec
from nasforge.stores.backfill import backfill_runs
from nasforge.stores.guard import check_no_failure, stop_study
from nasforge.stores.mlflow_runs import quiet_mlflow
from nasforge.stores.parent_run import open_parent_run
from nasforge.stores.preflight import check_stores
from nasforge.stores.study import count_done, open_study, reclose_late_runs, recover_interrupted
from nasforge.trial import TrialContext


def run_search(spec: SearchSpec, *, progress: bool = False) -> SearchResult:
    """Create (or resume) the study and the MLflow parent run, run the trials, finish up."""
    with executor_session(spec):   # Ray: join the cluster and check its nodes before any store is written
        return _run_search(spec, progress=progress)


def _run_search(spec: SearchSpec, *, progress: bool) -> SearchResult:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    quiet_mlflow()
    tracker = check_stores(spec)  # a store that cannot be written stops here, before any trial
    study = open_study(spec)
    if spec.weight_sharing:   # a resume with other strategy_options stops here, before the parent run reopens
        phase_options(spec, study)
    parent_run_id = open_parent_run(spec, study, tracker)
    if spec.resume:
        backfill_runs(spec, study, tracker, parent_run_id)  # runs the store missed while it was down
        recover_interrupted(study, tracker)
        tracker.close_running_children(parent_run_id, "interrupted (process killed)")
    done = count_done(study)
    remaining = max(spec.trials - done, 0)
    context = TrialContext(
        family=spec.family, task=spec.task, seed=spec.seed, budget=spec.budget, objectives=spec.objectives,
        strategy=spec.strategy, backend=spec.backend, tracking_uri=spec.tracking_uri,
        experiment_id=tracker.experiment_id, parent_run_id=parent_run_id, study_name=study.study_name,
        save_models=spec.save_models, data_digest=spec.data_digest, size_limit=spec.size_limit,
        extra_tags={**spec.tags, **({"phase": "retrain"} if spec.weight_sharing else {})},
    )
    monitor = Monitor(spec, study, total=spec.trials, initial=done, enabled=progress)
    try:
        execute = executor(spec.backend)
        trials_spec = spec
        if spec.weight_sharing:   # enas/rsws/darts: train the supernet first; the trials retrain its picks
            deadline = time.time() + spec.timeout if spec.timeout else None   # the phase counts toward timeout
            remaining = run_supernet_phase(spec, study=study, tracker=tracker, parent_run_id=parent_run_id,
                                           n_trials=remaining, deadline=deadline,
                                           on_epoch=monitor.on_phase_epoch if progress else None)
            if deadline is not None:   # the retraining gets what is left; at least its first trial runs
                trials_spec = dataclasses.replace(spec, timeout=max(deadline - time.time(), 1.0))
        tracker.arm(stop_study(study))  # a failing MLflow write now stops the search, results kept
        monitor.start()
        execute(trials_spec, study=study, context=context, n_trials=remaining, tracker=tracker,
                on_outcome=monitor.on_outcome)
    except KeyboardInterrupt:
        tracker.disarm()
        monitor.close()
        release_storage_session(study)
        try:
            tracker.end_run(parent_run_id, "KILLED", tags={"status_reason": "interrupted; resume with resume=True"})
            done = count_done(study)
        except Exception as exc:  # the store is unreachable: still say how to go on
            print(f"could not close the parent run {parent_run_id}: {exc}", file=sys.stderr)
        print(f"\ninterrupted: {done} of {spec.trials} trials done. Continue with "
              f"resume=True, study_name={study.study_name!r} (CLI: --resume --study-name {study.study_name})",
              file=sys.stderr)
        raise
    monitor.close()
    if spec.resume:   # a worker of the killed search may have finished a run the resume settled
        reclose_late_runs(study, tracker)
    check_no_failure(tracker, spec, study, count_done(study), parent_run_id)
    result = SearchResult(spec=spec, study=study, parent_run_id=parent_run_id,
                          experiment_id=tracker.experiment_id)
    finish_search(result, tracker)
    get_registry().pm.hook.search_finished(result=result)
    return result


def executor(backend: str):
    """The function that runs trials for ``backend`` (see ``nasforge.executors``; imported lazily)."""
    module, _, name = EXECUTORS[backend].partition(":")
    return getattr(importlib.import_module(module), name)
