"""Runs a validated SearchSpec: study and parent run, resume, executor, final model."""

from __future__ import annotations

import datetime as _dt
import json
import math
import sys
import threading
from typing import Any

from nasforge.errors import SpecError
from nasforge.interrupts import release_storage_session
from nasforge.plugins import get_registry
from nasforge.result import SearchResult
from nasforge.spec import SearchSpec, make_pruner, make_sampler
from nasforge.tracking import Tracker
from nasforge.trial import COMPLETE, FAILED, MLFLOW_STATUS, PRUNED, TrialContext, TrialOutcome, load_task, load_weights

STUDY_ATTRS = ("family", "task", "strategy", "experiment")


def run_search(spec: SearchSpec, *, progress: bool = False) -> SearchResult:
    """Create (or resume) the study and the MLflow parent run, run the trials, finish up."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    quiet_mlflow()
    from nasforge.preflight import check_stores
    from nasforge.store_guard import backfill_runs, check_no_failure, stop_study

    tracker = check_stores(spec)  # a store that cannot be written stops here, before any trial
    study = _open_study(spec)
    parent_run_id = _open_parent_run(spec, study, tracker)
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
        save_models=spec.save_models, extra_tags=spec.tags,
    )
    monitor = _Monitor(spec, study, total=spec.trials, initial=done, enabled=progress)
    try:
        execute = executor(spec.backend)
        tracker.arm(stop_study(study))  # a failing MLflow write now stops the search, results kept
        execute(spec, study=study, context=context, n_trials=remaining, tracker=tracker,
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
    check_no_failure(tracker, spec, study, count_done(study), parent_run_id)
    result = SearchResult(spec=spec, study=study, parent_run_id=parent_run_id,
                          experiment_id=tracker.experiment_id)
    _finish(result, tracker)
    get_registry().pm.hook.search_finished(result=result)
    return result


def executor(backend: str):
    """The function that runs trials for ``backend`` (see ``nasforge.executors``)."""
    import importlib

    from nasforge.executors import EXECUTORS

    module, _, name = EXECUTORS[backend].partition(":")
    return getattr(importlib.import_module(module), name)


def quiet_mlflow() -> None:
    """No per-download progress bars or store-migration chatter in a search's output."""
    import logging
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


# -- the study -------------------------------------------------------------------------
def _open_study(spec: SearchSpec):
    import optuna

    storage = _storage(spec.storage)
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    name = spec.study_name
    if name is None and spec.resume:
        mine = [s for s in existing.values()
                if all(s.user_attrs.get(k) == getattr(spec, k) for k in ("family", "task", "experiment"))
                and s.user_attrs.get("strategies") == _side_by_side_attr(spec)]
        if not mine:
            raise SpecError(f"nothing to resume: no {spec.family}/{spec.task} study in {spec.storage}")
        name = max(mine, key=lambda s: (s.datetime_start or _dt.datetime.min, s._study_id)).study_name
    elif name is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        name = base = f"{spec.family}-{spec.task}-{stamp}"
        n = 1
        while name in existing:
            n += 1
            name = f"{base}-{n}"
    elif name in existing and not spec.resume:
        raise SpecError(f"study {name!r} already exists in {spec.storage}; pass resume=True "
                        "(CLI: --resume) to continue it, or choose another study name")

    if name in existing:
        attrs = existing[name].user_attrs
        for key in ("family", "task"):
            if attrs.get(key) not in (None, getattr(spec, key)):
                raise SpecError(f"study {name!r} is a {attrs.get('family')}/{attrs.get('task')} search; "
                                f"cannot resume it as {spec.family}/{spec.task}")
        if attrs.get("strategies") != _side_by_side_attr(spec):
            ran = ", ".join(attrs.get("strategies") or [str(attrs.get("strategy"))])
            raise SpecError(f"study {name!r} ran strategy {ran}; resume it with the same strategy list, "
                            f"not {', '.join(spec.strategies)}")
        directions = [d.name.lower() for d in existing[name].directions]
        if directions != spec.directions:
            raise SpecError(f"study {name!r} has directions {directions}, the spec asks for {spec.directions}")

    study = optuna.create_study(storage=storage, study_name=name, directions=spec.directions,
                                sampler=make_sampler(spec), pruner=make_pruner(spec), load_if_exists=True)
    if name in existing and existing[name].n_trials:
        # Resumed: seeded as before, the sampler would replay the draws of the interrupted process
        # and sample the same configurations again. Samplers whose draws are keyed by trial number
        # (evolution, controller) or kept in the storage (QMC) are unchanged by this.
        study.sampler.reseed_rng()
    if "family" not in study.user_attrs:
        for key in STUDY_ATTRS:
            study.set_user_attr(key, getattr(spec, key))
        study.set_user_attr("objectives", [[o.metric, o.direction] for o in spec.objectives])
        study.set_user_attr("space", spec.space.source)
        if spec.side_by_side:
            study.set_user_attr("strategies", list(spec.strategies))
    return study


def _storage(url: str):
    """An Optuna storage; sqlite files get their folder created and a busy timeout."""
    import optuna

    if url.startswith("sqlite:///"):
        from pathlib import Path

        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    return url


def _side_by_side_attr(spec: SearchSpec) -> list[str] | None:
    """The study attribute ``strategies`` of a side-by-side search (None for one strategy)."""
    return list(spec.strategies) if spec.side_by_side else None


def count_done(study) -> int:
    """Finished trials that count toward the target (interrupted ones do not)."""
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return sum(1 for t in study.get_trials(deepcopy=False, states=states) if not t.user_attrs.get("interrupted"))


def recover_interrupted(study, tracker: Tracker) -> None:
    """Settle trials left RUNNING by a killed process.

    A trial whose MLflow run had already finished keeps its result (it is told to Optuna);
    any other is marked FAIL + ``interrupted`` (it does not count) and its run KILLED.
    """
    import optuna

    state = optuna.trial.TrialState
    for trial in study.get_trials(deepcopy=False, states=(state.RUNNING,)):
        run_id = trial.user_attrs.get("mlflow_run_id")
        run = tracker.get_run(run_id) if run_id else None
        status = run.data.tags.get("nasforge_status") if run else None
        if status in MLFLOW_STATUS and run.info.status == "RUNNING":
            # killed between the run's closing tags and its end: end it the way the trial ended
            tracker.end_run(run_id, MLFLOW_STATUS[status])
        if status == COMPLETE:
            metrics = run.data.metrics
            values = [metrics.get(o[0]) for o in study.user_attrs.get("objectives", [])]
            if values and all(v is not None and math.isfinite(v) for v in values):
                study._storage.set_trial_user_attr(trial._trial_id, "metrics", dict(metrics))
                study.tell(trial.number, values)
                continue
        if status == PRUNED:
            study.tell(trial.number, state=state.PRUNED)
            continue
        if status == FAILED:
            study._storage.set_trial_user_attr(trial._trial_id, "status_reason", run.data.tags.get("status_reason", ""))
            study.tell(trial.number, state=state.FAIL)
            continue
        study._storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
        study.tell(trial.number, state=state.FAIL)
        if run is not None and run.info.status == "RUNNING":
            tracker.end_run(run_id, "KILLED", tags={"status_reason": "interrupted (process killed)",
                                                    "nasforge_status": "interrupted"})


# -- the parent run --------------------------------------------------------------------
def _open_parent_run(spec: SearchSpec, study, tracker: Tracker) -> str:
    run_id = study.user_attrs.get("mlflow_parent_run_id")
    same_store = study.user_attrs.get("mlflow_tracking_uri") == spec.tracking_uri
    if run_id and same_store:
        tracker.reopen(run_id)
        return run_id
    registry = get_registry()
    plugin, plugin_version = registry.provenance("family", spec.family)
    tags = {"family": spec.family, "task": spec.task, "strategy": spec.strategy, "seed": spec.seed,
            "backend": spec.backend, "study": study.study_name, "plugin": plugin,
            "plugin_version": plugin_version, "nasforge_role": "search",
            **({"strategies": ",".join(spec.strategies)} if spec.side_by_side else {}),
            "plugins": ", ".join(f"{i.distribution}=={i.version}" for i in registry.plugin_infos()
                                 if i.distribution != "(registered at run time)"),
            **spec.tags}
    orphan = _orphan_parent_run(spec, study, tracker) if spec.resume else None
    if orphan is not None:  # a killed process created it, then died before the study recorded it
        run_id = orphan.info.run_id
        tracker.log(run_id, params={k: v for k, v in spec.summary().items() if k not in orphan.data.params})
    else:
        run_id = tracker.start_run(name=study.study_name, tags=tags, params=spec.summary())
    import yaml

    tracker.log_text(run_id, yaml.safe_dump(dict(spec.space.raw), sort_keys=False), "search_space.yaml")
    study.set_user_attr("mlflow_parent_run_id", run_id)
    study.set_user_attr("mlflow_tracking_uri", spec.tracking_uri)
    study.set_user_attr("mlflow_experiment_id", tracker.experiment_id)
    return run_id


def _orphan_parent_run(spec: SearchSpec, study, tracker: Tracker):
    """This study's parent run if one is RUNNING but the study does not know it (or None)."""
    from nasforge.tracking import PARENT_TAG

    runs = tracker.client.search_runs(
        [tracker.experiment_id], max_results=1000,
        filter_string="tags.nasforge_role = 'search' and attributes.status = 'RUNNING'")
    for run in runs:
        tags, params = run.data.tags, run.data.params
        if tags.get("study") == study.study_name and PARENT_TAG not in tags \
                and params.get("storage", spec.storage) == spec.storage:
            return run
    return None


# -- the end ---------------------------------------------------------------------------
def rebuild_model(spec: SearchSpec, trial):
    """Build the family's module for ``trial`` and load its saved weights."""
    if not spec.save_models:
        raise ValueError("this search ran with save_models=False: no trial weights were saved")
    family = get_registry().get("family", spec.family)
    task = load_task(spec.task, spec.seed)
    params = trial.user_attrs.get("final_params", trial.params)   # PBT: the config the weights ended in
    model = family.build(family.make_config(spec.space.config_from_flat(params)), task)
    tracker = Tracker(tracking_uri=spec.tracking_uri, experiment_id="")
    model.load_state_dict(load_weights(tracker, trial.user_attrs["mlflow_run_id"]))
    model.eval()
    return model


def _finish(result: SearchResult, tracker: Tracker) -> None:
    spec, run_id = result.spec, result.parent_run_id
    trials = result.trials
    counts = {s: sum(1 for t in trials if t.state.name == s) for s in ("COMPLETE", "PRUNED", "FAIL")}
    summary: dict[str, float] = {f"n_{k.lower()}": v for k, v in counts.items()}
    tags: dict[str, Any] = {}
    if result.completed_trials:
        best = result.best_trial
        for obj, value in zip(spec.objectives, best.values):
            summary[f"best_{obj.metric}"] = value
        tags.update(best_trial=best.number, best_run_id=best.user_attrs.get("mlflow_run_id", ""),
                    best_params=json.dumps(result.best_params))
        if spec.save_models and best.user_attrs.get("mlflow_run_id"):  # no run: weights lost with the store
            model = result.best_model()
            family = get_registry().get("family", spec.family)
            task = load_task(spec.task, spec.seed)
            result.test_metrics = dict(family.evaluate(model, task, "test"))
            summary.update(result.test_metrics)
            result.model_uri = _log_model(tracker, run_id, model, family.example_input(task), trial_number=best.number)
    tracker.log(run_id, metrics=summary, tags=tags)
    if spec.side_by_side:
        from nasforge.side_by_side import log_strategies

        log_strategies(result, tracker)
    try:
        tracker.log_text(run_id, result.trials_dataframe().to_csv(index=False), "trials.csv")
    except Exception:  # pandas missing or an exotic value: the table is a convenience
        pass
    if spec.plots:
        from nasforge.plots import log_summary_plots

        log_summary_plots(result, tracker)  # never raises: a failed plot is a warning + plots/notes.txt
    tracker.end_run(run_id, "FINISHED", tags={"status_reason": "finished"})


def _log_model(tracker: Tracker, run_id: str, model, example, *, trial_number: int | None = None) -> str:
    """Log the model on the parent run as an MLflow PyTorch model (torch.export format).

    ``pt2`` loads back without unpickling arbitrary code; ``mlflow.pytorch.load_model``
    returns a ``torch.fx.GraphModule`` with the same weights and outputs. A search resumed
    after it was killed in here reuses the model it logged for the same best trial.
    """
    import warnings

    import mlflow
    import numpy as np
    import torch

    logged = _logged_model(tracker, run_id, trial_number)
    if logged is not None:
        return logged

    # Naming the requirement skips MLflow's slow inference (it imports the model in a subprocess).
    requirements = [f"torch=={torch.__version__.split('+')[0]}"]
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracker.tracking_uri)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mlflow.start_run(run_id=run_id, nested=True):
                info = mlflow.pytorch.log_model(model, name="model", serialization_format="pt2",
                                                input_example=np.asarray(example, dtype=np.float32),
                                                pip_requirements=requirements,
                                                tags={MODEL_TRIAL_TAG: str(trial_number)})
    finally:
        mlflow.set_tracking_uri(previous)
    return info.model_uri


MODEL_TRIAL_TAG = "nasforge_trial"


def _logged_model(tracker: Tracker, run_id: str, trial_number: int | None) -> str | None:
    """The URI of the READY model the run logged for ``trial_number`` before, if any; a model
    left PENDING (the process was killed while logging it) is marked FAILED."""
    from mlflow.entities import LoggedModelStatus

    found = None
    for logged in tracker.client.search_logged_models([tracker.experiment_id],
                                                      filter_string=f"source_run_id = '{run_id}'"):
        if logged.status == LoggedModelStatus.PENDING:
            tracker.client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        elif (logged.status == LoggedModelStatus.READY and trial_number is not None
              and logged.tags.get(MODEL_TRIAL_TAG) == str(trial_number)):
            found = found or logged.model_uri
    return found


# -- progress --------------------------------------------------------------------------
class _Monitor:
    """Progress bar (trials done, best so far) and the ``trial_finished`` hook."""

    def __init__(self, spec: SearchSpec, study, *, total: int, initial: int, enabled: bool):
        self.spec, self.study = spec, study
        self.lock = threading.Lock()
        self.best: float | None = None
        self.counts = {COMPLETE: 0, PRUNED: 0, FAILED: 0}
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="trial", dynamic_ncols=True, file=sys.stderr)

    def on_outcome(self, outcome: TrialOutcome) -> None:
        with self.lock:
            self.counts[outcome.status] += 1
            obj = self.spec.objectives[0]
            if outcome.status == COMPLETE and not self.spec.multi_objective:
                value = outcome.values[0]
                better = max if obj.direction == "maximize" else min
                self.best = value if self.best is None else better(self.best, value)
            if self.bar is not None:
                postfix = {f"best {obj.metric}": f"{self.best:.4g}"} if self.best is not None else {}
                if self.counts[PRUNED]:
                    postfix["pruned"] = self.counts[PRUNED]
                if self.counts[FAILED]:
                    postfix["failed"] = self.counts[FAILED]
                self.bar.set_postfix(postfix, refresh=False)
                self.bar.update(1)
        get_registry().pm.hook.trial_finished(record=outcome)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
