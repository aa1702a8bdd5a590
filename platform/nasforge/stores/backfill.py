"""Back-fill MLflow after a store failure: log the runs it missed, close the runs it left open.

A trial the store missed finished in Optuna with ``mlflow_run_id`` None (its run could not be
started) or with a run still RUNNING (the store failed during it). ``resume=True`` calls
:func:`backfill_runs` before any new trial. Trial weights written while the store was down are
lost: those trials' runs carry ``nasforge_weights=missing``.
"""

from __future__ import annotations

from nasforge.outcome import COMPLETE, FAILED, MLFLOW_STATUS, PRUNED, run_name
from nasforge.spec.space import flatten
from nasforge.stores.mlflow_runs import Tracker, curve_key

BACKFILL_ATTR = "mlflow_backfilled"   # study attribute: trial number -> back-filled run id


def backfill_runs(spec, study, tracker: Tracker, parent_run_id: str) -> int:
    """Log the MLflow runs the store missed while it was down; returns how many runs it wrote."""
    import optuna

    state = optuna.trial.TrialState
    status_of = {state.COMPLETE: COMPLETE, state.PRUNED: PRUNED, state.FAIL: FAILED}
    done: dict[str, str] = dict(study.user_attrs.get(BACKFILL_ATTR, {}))
    written = 0
    for trial in study.get_trials(deepcopy=False, states=tuple(status_of)):
        if trial.user_attrs.get("interrupted") or str(trial.number) in done:
            continue
        status = status_of[trial.state]
        closing = {"status_reason": trial.user_attrs.get("status_reason") or "finished",
                   "nasforge_status": status, "nasforge_backfilled": "true"}
        metrics = {k: v for k, v in trial.user_attrs.get("metrics", {}).items() if isinstance(v, (int, float))}
        if "mlflow_run_id" not in trial.user_attrs:
            continue  # it never got as far as its run (e.g. it failed while sampling)
        run_id = trial.user_attrs["mlflow_run_id"]
        if run_id:
            run = _get_run(tracker, run_id)
            if run is None or run.info.status != "RUNNING":
                continue  # logged in full (or from another store)
            # the store failed during this trial: close its run the way the trial ended
            history = tracker.client.get_metric_history(run_id, curve_key(spec.objectives[0].metric))
            tracker.log(run_id, metrics=metrics, step=max((m.step for m in history), default=0))
            tracker.end_run(run_id, MLFLOW_STATUS[status], tags=closing)
        else:
            tags = {"family": spec.family, "task": spec.task, "strategy": trial.user_attrs.get("strategy", spec.strategy),
                    "trial_number": trial.number, "search_seed": spec.seed, "backend": spec.backend,
                    "study": study.study_name, "nasforge_weights": "missing", **spec.tags}
            params = flatten(spec.space.config_from_flat(trial.params))
            run_id = tracker.start_run(name=run_name(trial.number, tags["strategy"]), tags=tags, params=params,
                                       parent_run_id=parent_run_id)
            tracker.log(run_id, metrics=metrics)
            tracker.end_run(run_id, MLFLOW_STATUS[status], tags=closing)
        done[str(trial.number)] = run_id
        study.set_user_attr(BACKFILL_ATTR, done)  # after each run: a second failure never duplicates one
        written += 1
    return written


def _get_run(tracker: Tracker, run_id: str):
    try:
        return tracker.get_run(run_id)
    except Exception:  # noqa: BLE001 - a run this store does not have
        return None
