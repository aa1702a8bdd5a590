"""The driver side of the Ray executor: a Ray Tune ``Searcher`` over the search's own study.

Why not ``ray.tune.search.optuna.OptunaSearch``: it tells Optuna COMPLETE with the last
intermediate value when a scheduler stops a trial (Tune passes the last result to
``on_trial_complete`` for a stop and for a normal end alike), it gives the trainable no trial
number (the seed and the ``trial_number`` tag of the MLflow run need it), it cannot set user
attributes (``mlflow_run_id``, ``metrics``, ``status_reason``: resume and ``SearchResult``
read them) and it swaps the study's pruner for a ``NopPruner``. This adapter follows the same
pattern (ask in ``suggest``, tell once in ``on_trial_complete``) on the study the runner made:

* outcome map: a ``final`` result says COMPLETE / PRUNED / FAIL itself; a trial that ends
  without one was stopped by the scheduler -> PRUNED (run closed KILLED with the reason), or,
  with no scheduler, cut off by Tune -> FAIL + ``interrupted`` (not counted, as locally);
  a Tune error (worker died ``max_failures + 1`` times) -> FAIL (run closed FAILED);
* a guard against telling twice (``_Record.done``);
* ``started`` results link the MLflow run id at once (``mlflow_run_id``, as locally); a second
  run id for the same trial means Ray retried it after its worker died: the earlier run is
  closed KILLED.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

from ray.tune import Callback
from ray.tune.search import Searcher

from nasforge.executors.ray_trainable import (
    EVENT, FINAL, INTERMEDIATE, NUMBER, OBJECTIVE, OUTCOME, PARAMS, RUN_ID, STARTED, STEP, STRATEGY, stop_reason,
)
from nasforge.interrupts import deferred_interrupt
from nasforge.outcome import COMPLETE, FAILED, PRUNED, TrialOutcome

log = logging.getLogger("nasforge.ray")
RETRIED_REASON = "interrupted (its Ray worker died; the trial was retried)"


@dataclass
class _Record:
    trial: Any                      # the optuna.Trial from study.ask()
    params: dict[str, Any]
    run_ids: list[str] = field(default_factory=list)
    reported: set[int] = field(default_factory=set)
    last_step: int | None = None
    done: bool = False

    @property
    def run_id(self) -> str | None:
        return self.run_ids[-1] if self.run_ids else None


class StudySearcher(Searcher):
    """Asks the nasforge study for each Ray trial and tells it each outcome exactly once."""

    def __init__(self, *, study, spec, tracker, on_outcome: Callable[[TrialOutcome], None],
                 deadline: float | None = None):
        super().__init__(metric=None, mode=None)
        self.study, self.space = study, spec.space
        self.single_objective = not spec.multi_objective
        self.side_by_side = spec.side_by_side
        self.scheduler, self.unit = spec.scheduler, spec.budget_unit
        self.tracker, self.on_outcome, self.deadline = tracker, on_outcome, deadline
        self.records: dict[str, _Record] = {}
        self.tune_trials: dict[str, Any] = {}   # Ray Trial objects, for error messages
        self.exhausted = False

    # -- Searcher API ----------------------------------------------------------------------
    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True   # the study has its directions; schedulers get the metric themselves

    def suggest(self, trial_id: str):
        if self.exhausted or (self.deadline is not None and time.monotonic() >= self.deadline):
            return Searcher.FINISHED
        is_exhausted = getattr(self.study.sampler, "is_exhausted", None)
        if is_exhausted is not None and is_exhausted(self.study):
            self.exhausted = True
            return Searcher.FINISHED
        with deferred_interrupt():   # a Ctrl-C waits until the new trial is fully written
            trial = self.study.ask()
            params = self.space.sample(trial)
            self.records[trial_id] = _Record(trial=trial, params=dict(params))
        config = {NUMBER: trial.number, PARAMS: params}
        if self.side_by_side:   # the study's sampler dealt the trial to one strategy (its MLflow tag)
            config[STRATEGY] = self.study.sampler.strategy_of(trial)
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        record = self.records.get(trial_id)
        if record is None or record.done:
            return
        self._absorb(record, result)
        if result.get(EVENT) == FINAL:
            self._finish(record, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        record = self.records.get(trial_id)
        if record is None or record.done:
            return
        if result:
            self._absorb(record, result)
        if result and result.get(EVENT) == FINAL:
            self._finish(record, result)
        elif error:
            self._failed(record, self._error_reason(trial_id))
        else:
            self._stopped(record)

    def save(self, checkpoint_path: str) -> None:
        # The study is the state (resume goes through it, not through Tuner.restore).
        with open(checkpoint_path, "w") as f:
            json.dump({"study": self.study.study_name}, f)

    def restore(self, checkpoint_path: str) -> None:
        pass

    def __getstate__(self) -> dict:
        # Tune pickles its configuration (tuner.pkl) for Tuner.restore. This searcher holds the
        # live study, MLflow client and progress callback of this driver and cannot travel; the
        # copy is inert (nasforge resumes through the study, not Tuner.restore).
        return {"study_name": self.study.study_name, "inert": True}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    # -- results ---------------------------------------------------------------------------
    def _absorb(self, record: _Record, result: dict) -> None:
        event = result.get(EVENT)
        if event == STARTED and result.get(RUN_ID):
            self._link_run(record, result[RUN_ID])
        elif event == INTERMEDIATE:
            record.last_step = int(result[STEP])
            self._report(record, record.last_step, float(result[OBJECTIVE]))

    def _link_run(self, record: _Record, run_id: str) -> None:
        if run_id in record.run_ids:
            return
        if record.run_ids:   # a retry: the earlier attempt's worker died mid-trial
            self._close(record.run_ids[-1], "KILLED", RETRIED_REASON, "interrupted")
        record.run_ids.append(run_id)
        record.trial.set_user_attr("mlflow_run_id", run_id)

    def _report(self, record: _Record, step: int, value: float) -> None:
        """The intermediate value into the study, once per step, when something stops trials
        (as the local executor reports to Optuna only when a pruner is set)."""
        if self.scheduler == "none" or not self.single_objective or step in record.reported:
            return
        record.reported.add(step)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            record.trial.report(value, step)

    def _finish(self, record: _Record, result: dict) -> None:
        payload = json.loads(result[OUTCOME])
        if result.get(RUN_ID):
            self._link_run(record, result[RUN_ID])
        if payload.get("params") is not None and payload["params"] != record.params:
            # PBT copied a stronger trial's config into this one: its weights belong to these params.
            from nasforge.spec.space import flatten

            record.params = payload["params"]
            record.trial.set_user_attr("final_params", flatten(record.params))
        if payload.get("last_report"):
            step, value = payload["last_report"]
            self._report(record, int(step), float(value))
        status, reason = payload["status"], payload.get("reason", "")
        if payload.get("metrics"):
            record.trial.set_user_attr("metrics", payload["metrics"])
        if reason:
            record.trial.set_user_attr("status_reason", reason[:1000])
        if status == COMPLETE:
            values = payload["values"]
            self._tell(record, values=values[0] if len(values) == 1 else values)
        else:
            self._tell(record, state="PRUNED" if status == PRUNED else "FAIL")
        self._emit(record, status, reason, values=payload.get("values"), metrics=payload.get("metrics") or {},
                   duration_s=payload.get("duration_s", 0.0))

    def _stopped(self, record: _Record) -> None:
        if self.scheduler == "none":   # not a scheduler's decision: Tune ended the experiment early
            record.trial.set_user_attr("interrupted", True)   # does not count toward the target
            reason = "interrupted (Ray Tune stopped the trial before it reported an outcome)"
            record.trial.set_user_attr("status_reason", reason)
            self._tell(record, state="FAIL")
            if record.run_id:
                self._close(record.run_id, "KILLED", reason, "interrupted")
            return   # no outcome: like a trial cut off locally, it is not reported as finished
        reason = stop_reason(self.scheduler, self.unit, record.last_step)
        record.trial.set_user_attr("status_reason", reason)
        self._tell(record, state="PRUNED")
        if record.run_id:  # the worker closes it too; whoever is first, the run ends the same way
            self._close(record.run_id, "KILLED", reason, PRUNED)
        self._emit(record, PRUNED, reason)

    def _failed(self, record: _Record, reason: str) -> None:
        record.trial.set_user_attr("status_reason", reason[:1000])
        self._tell(record, state="FAIL")
        if record.run_id:
            self._close(record.run_id, "FAILED", reason, FAILED)
        self._emit(record, FAILED, reason)

    def _error_reason(self, trial_id: str) -> str:
        trial = self.tune_trials.get(trial_id)
        error = None
        if trial is not None:
            try:
                error = trial.get_error()
            except Exception:  # the error file may be gone; the count still helps
                error = None
        attempts = getattr(trial, "num_failures", None)
        text = str(error).strip().splitlines()[-1] if error is not None and str(error).strip() else "see the Ray logs"
        count = f" after {attempts} attempt(s)" if attempts else ""
        return f"the trial failed in Ray{count} (its worker died or the trainable raised): {text}"

    # -- study and store -------------------------------------------------------------------
    def _tell(self, record: _Record, *, values=None, state: str | None = None) -> None:
        import optuna

        record.done = True
        try:
            self.study.tell(record.trial, values, state=None if state is None else optuna.trial.TrialState[state])
        except RuntimeError as exc:
            # A grid/brute-force sampler that has covered its space calls study.stop() in
            # after_trial, which only works inside study.optimize; the trial is stored anyway.
            if "Study.stop" not in str(exc):
                raise
            self.exhausted = True

    def _close(self, run_id: str, status: str, reason: str, nasforge_status: str) -> None:
        try:
            self.tracker.end_run(run_id, status, tags={"status_reason": reason, "nasforge_status": nasforge_status})
        except Exception as exc:  # the store is busy or gone: the search goes on
            log.warning("could not close MLflow run %s: %s", run_id, exc)

    def _emit(self, record: _Record, status: str, reason: str, *, values=None, metrics=None,
              duration_s: float = 0.0) -> None:
        self.on_outcome(TrialOutcome(number=record.trial.number, status=status, values=values, metrics=metrics or {},
                                     params=record.params, run_id=record.run_id, reason=reason, duration_s=duration_s))

    # -- the end ---------------------------------------------------------------------------
    def fail_pending(self, reason: str) -> None:
        """Record as FAIL every trial Tune ended without telling this searcher (should not happen)."""
        for record in [r for r in self.records.values() if not r.done]:
            self._failed(record, reason)


class TrialWatcher(Callback):
    """Hands Ray's Trial objects to the searcher (for the error text of a failed trial)."""

    def __init__(self, searcher: StudySearcher):
        self.searcher = searcher

    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        self.searcher.tune_trials[trial.trial_id] = trial
