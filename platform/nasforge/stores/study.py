"""The Optuna study of a search: open or resume it, count what is done, settle what a kill left."""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path
from typing import TYPE_CHECKING

from nasforge.errors import SpecError
from nasforge.outcome import COMPLETE, FAILED, MLFLOW_STATUS, PRUNED, counts_toward_target
from nasforge.size_limit import CAPS
from nasforge.stores.mlflow_runs import Tracker
from nasforge.strategies.build import make_pruner, make_sampler

if TYPE_CHECKING:
    from nasforge.spec.arguments import SearchSpec

STUDY_ATTRS = ("family", "task", "strategy", "experiment")


def open_study(spec: "SearchSpec"):
    """Create the study of ``spec``, or load it to resume (checked against what it ran before)."""
    import optuna

    storage = optuna_storage(spec.storage)
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    name = spec.study_name
    if name is None and spec.resume:
        name = latest_study(existing.values(), family=spec.family, task=spec.task, experiment=spec.experiment,
                            storage=spec.storage).study_name
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
        if attrs.get("strategies") != side_by_side_attr(spec):
            raise SpecError(f"study {name!r} ran strategy {', '.join(stored_strategies(attrs))}; resume it with "
                            f"the same strategy list (or leave strategy out), not {', '.join(spec.strategies)}")
        check_same_data(name, attrs.get("data_digest"), spec.data_digest)
        for cap in CAPS:   # a study made before the caps existed has none
            if attrs.get(cap, getattr(spec, cap)) != getattr(spec, cap):
                raise SpecError(f"study {name!r} searched with {cap}={attrs[cap]}; resume it with that "
                                f"(or leave {cap} out), not {cap}={getattr(spec, cap)}")
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
    if study.user_attrs.get("trials") != spec.trials:
        study.set_user_attr("trials", spec.trials)   # the target: resume=True without trials continues to it
    if "family" not in study.user_attrs:
        for key in STUDY_ATTRS:
            study.set_user_attr(key, getattr(spec, key))
        study.set_user_attr("objectives", [[o.metric, o.direction] for o in spec.objectives])
        study.set_user_attr("space", spec.space.source)
        for cap in CAPS:
            study.set_user_attr(cap, getattr(spec, cap))
        if spec.side_by_side:
            study.set_user_attr("strategies", list(spec.strategies))
        if spec.data is not None:
            study.set_user_attr("data_digest", spec.data.digest)
            study.set_user_attr("data", {"origin": spec.data.origin, "source": spec.data.source,
                                         "target": spec.data.target, "kind": spec.data.kind})
    return study


def latest_study(summaries, *, family: str, task: str, experiment: str, storage: str):
    """The latest study of this family, task and experiment (what ``resume=True`` without a study
    name continues), or a :class:`SpecError` naming the studies the storage holds."""
    mine = [s for s in summaries
            if (s.user_attrs.get("family"), s.user_attrs.get("task"), s.user_attrs.get("experiment"))
            == (family, task, experiment)]
    if not mine:
        held = ", ".join(sorted(s.study_name for s in summaries if not s.study_name.startswith("nasforge-preflight")))
        raise SpecError(f"nothing to resume: no {family}/{task} study (experiment {experiment!r}) in {storage}; "
                        f"it holds: {held or '(no study)'}")
    return max(mine, key=lambda s: (s.datetime_start or _dt.datetime.min, s._study_id))


def resumable_study(*, storage: str, study_name: str | None, family: str, task: str, experiment: str):
    """The summary of the study ``resume=True`` would continue, read without writing anything."""
    import optuna

    if storage.startswith("sqlite:///") and not Path(storage[len("sqlite:///"):]).exists():
        raise SpecError(f"nothing to resume: the Optuna storage {storage} does not exist")
    summaries = optuna.get_all_study_summaries(optuna_storage(storage), include_best_trial=False)
    if study_name is None:
        return latest_study(summaries, family=family, task=task, experiment=experiment, storage=storage)
    for summary in summaries:
        if summary.study_name == study_name:
            return summary
    raise SpecError(f"nothing to resume: no study {study_name!r} in {storage}; it holds: "
                    f"{', '.join(sorted(s.study_name for s in summaries)) or '(no study)'}")


def stored_strategies(attrs) -> list[str]:
    """The strategy list a study ran (its ``strategies`` attribute, or its one ``strategy``)."""
    return list(attrs.get("strategies") or [str(attrs.get("strategy"))])


def check_same_data(study_name: str, stored: str | None, given: str | None) -> None:
    """A resumed study must see the data it started on: the digests must match."""
    if stored == given:
        return
    if stored and given:
        raise SpecError(f"study {study_name!r} searched data with digest {stored}; this data has digest {given}. "
                        "Resume it with the same data, or start a new search (another study_name)")
    if stored:
        raise SpecError(f"study {study_name!r} searched your own data (digest {stored}); pass the same data= "
                        "to resume it")
    raise SpecError(f"study {study_name!r} searched a registered task, not data= (digest {given})")


def optuna_storage(url: str):
    """An Optuna storage; sqlite files get their folder created and a busy timeout."""
    import optuna

    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    return url


def side_by_side_attr(spec: "SearchSpec") -> list[str] | None:
    """The study attribute ``strategies`` of a side-by-side search (None for one strategy)."""
    return list(spec.strategies) if spec.side_by_side else None


def count_done(study) -> int:
    """Finished trials that count toward the target (interrupted ones do not)."""
    return sum(1 for t in study.get_trials(deepcopy=False) if counts_toward_target(t))


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


def reclose_late_runs(study, tracker: Tracker) -> int:
    """End again, KILLED, the runs of trials settled as interrupted that a worker finished afterwards.

    A trial worker can outlive its killed driver by a few seconds (a Ray worker waits for its node to
    notice): it may finish the trial's run after a resumed search settled the trial as interrupted
    -- its check for that and its last write are not one step. The trial does not count in the
    study, so its run must not read FINISHED; its metrics stay. Returns how many runs it ended.
    """
    ended = 0
    for trial in study.get_trials(deepcopy=False):
        run_id = trial.user_attrs.get("mlflow_run_id")
        if not trial.user_attrs.get("interrupted") or not run_id:
            continue
        if tracker.get_run(run_id).info.status in ("FINISHED", "RUNNING"):
            tracker.end_run(run_id, "KILLED", tags={
                "status_reason": "interrupted (process killed)", "nasforge_status": "interrupted",
                "late_finish": "a worker of the killed search finished it after the trial was settled as interrupted"})
            ended += 1
    return ended
