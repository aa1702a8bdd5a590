"""The one trial function every executor calls: build, fit, report, record.

``run_trial`` never raises for a trial's own failure: it returns a :class:`TrialOutcome`
(complete, pruned or failed, with the reason) after closing the trial's MLflow run with the
matching status. Only an interrupt (Ctrl-C) propagates, after marking the run KILLED.
"""

from __future__ import annotations

import math
import random
import time
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

from nasforge.data.tasks import load_task
from nasforge.errors import TrialPruned
from nasforge.family import Reporter
from nasforge.interrupts import store_write
from nasforge.outcome import COMPLETE, FAILED, MLFLOW_STATUS, PRUNED, TrialOutcome, run_name
from nasforge.plugins import get_registry
from nasforge.size_limit import SizeLimit
from nasforge.spec.space import Objective, flatten
from nasforge.stores.mlflow_runs import RUN_NAME_TAG, Tracker, curve_key
from nasforge.stores.weights import save_weights


@dataclass(frozen=True, kw_only=True)
class TrialContext:
    """Everything a worker needs to run a trial of one search (picklable)."""

    family: str
    task: str
    seed: int
    budget: Mapping[str, int]
    objectives: tuple[Objective, ...]
    strategy: str
    backend: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    study_name: str
    save_models: bool = True
    extra_tags: Mapping[str, str] = field(default_factory=dict)
    data_digest: str | None = None      # the user's own data (data=...): which one, by digest
    size_limit: SizeLimit = field(default_factory=SizeLimit)   # max_params / max_flops: beyond, pruned untrained


class Feedback:
    """How a running trial talks back to its strategy (Optuna trial, Ray Tune session...)."""

    def should_prune(self, step: int, value: float) -> bool:
        return False

    def set_attr(self, key: str, value: Any) -> None:
        pass

    # Checkpoints (see Reporter): only an executor whose scheduler copies or pauses trials keeps them.
    def checkpoint_due(self, step: int) -> bool:
        return False

    def save_checkpoint(self, state: Mapping[str, Any]) -> None:
        pass

    def load_checkpoint(self) -> dict[str, Any] | None:
        return None


class OptunaFeedback(Feedback):
    """Reports to an Optuna trial. Without a pruner nothing is reported: the per-step values
    are in MLflow already, and each ``trial.report`` is a storage write (a sqlite commit)."""

    def __init__(self, trial, *, pruning: bool = True):
        self.trial = trial
        self.pruning = pruning

    @store_write
    def should_prune(self, step: int, value: float) -> bool:
        if not self.pruning:
            return False
        self.trial.report(value, step)
        return self.trial.should_prune()

    @store_write
    def set_attr(self, key: str, value: Any) -> None:
        self.trial.set_user_attr(key, value)


class TrialReporter(Reporter):
    """Sends each report to MLflow (one batch) and the objective to the pruner."""

    def __init__(self, *, tracker: Tracker, run_id: str, objectives: tuple[Objective, ...],
                 feedback: Feedback, unit: str):
        self.tracker, self.run_id, self.feedback, self.unit = tracker, run_id, feedback, unit
        self.objective = objectives[0].metric if len(objectives) == 1 else None
        self.last_step = 0

    def report(self, step: int, metrics: Mapping[str, float]) -> None:
        self.tracker.log(self.run_id, metrics={curve_key(k): v for k, v in metrics.items()}, step=step)
        self.last_step = max(self.last_step, int(step))
        value = metrics.get(self.objective) if self.objective else None
        if value is not None and math.isfinite(value) and self.feedback.should_prune(int(step), float(value)):
            raise TrialPruned(f"pruned at {self.unit} {step} ({self.objective}={value:.4g})")

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        self.tracker.log_artifact(self.run_id, path, artifact_path)

    def log_figure(self, figure: Any, name: str) -> None:
        self.tracker.log_figure(self.run_id, figure, name)

    def checkpoint_due(self, step: int) -> bool:
        return self.feedback.checkpoint_due(int(step))

    def save_checkpoint(self, state: Mapping[str, Any]) -> None:
        self.feedback.save_checkpoint(state)

    def load_checkpoint(self) -> dict[str, Any] | None:
        return self.feedback.load_checkpoint()


def trial_seed(search_seed: int, number: int) -> int:
    return (search_seed * 1_000_003 + number) % (2**31 - 1)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def run_trial(params: Mapping[str, Any], *, number: int, context: TrialContext,
              feedback: Feedback | None = None, tracker: Tracker | None = None,
              run_id: str | None = None) -> TrialOutcome:
    """Build, train and record one configuration; see the module docstring.

    ``run_id``: continue that MLflow run (a trial resumed from a checkpoint) instead of starting one.
    """
    feedback = feedback or Feedback()
    registry = get_registry()
    family = registry.get("family", context.family)
    tracker = tracker or Tracker(tracking_uri=context.tracking_uri, experiment_id=context.experiment_id)
    seed = trial_seed(context.seed, number)
    plugin, plugin_version = registry.provenance("family", context.family)
    tags = {
        "family": context.family, "task": context.task, "strategy": context.strategy,
        "trial_number": number, "seed": seed, "search_seed": context.seed, "backend": context.backend,
        "plugin": plugin, "plugin_version": plugin_version, "study": context.study_name,
        **context.extra_tags,
    }
    started = time.perf_counter()
    if run_id is None:
        run_id = tracker.start_run(name=run_name(number, context.strategy), tags=tags, params=flatten(params),
                                   parent_run_id=context.parent_run_id)
    else:
        tracker.reopen(run_id)
    feedback.set_attr("mlflow_run_id", run_id)
    outcome = TrialOutcome(number=number, status=FAILED, params=dict(params), run_id=run_id)
    reporter = TrialReporter(tracker=tracker, run_id=run_id, objectives=context.objectives,
                             feedback=feedback, unit=family.budget_unit)
    try:
        task = load_task(context.task, context.seed, data_digest=context.data_digest)
        seed_everything(seed)
        config = family.make_config(params)
        model = family.build(config, task)
        measured = context.size_limit.measure(model, family, task)
        broken = context.size_limit.broken(measured)
        sizes = {k: float(v) for k, v in measured.items()}
        if broken:
            outcome.metrics = sizes   # the leaderboard and the run show the sizes
            tracker.log(run_id, metrics=sizes)
            raise TrialPruned(broken)
        metrics = dict(family.fit(model, task, config, dict(context.budget), reporter) or {})
        metrics.update(sizes, train_time_s=time.perf_counter() - started)
        values = [_objective_value(metrics, o.metric) for o in context.objectives]
        if context.save_models:
            save_weights(tracker, run_id, model)
        tracker.log(run_id, metrics=metrics, step=reporter.last_step)
        outcome.status, outcome.values, outcome.metrics = COMPLETE, values, metrics
    except TrialPruned as exc:
        outcome.status, outcome.reason = PRUNED, str(exc)
    except KeyboardInterrupt:
        try:
            feedback.set_attr("interrupted", True)
            tracker.end_run(run_id, "KILLED", tags={"status_reason": "interrupted (KeyboardInterrupt)"})
        except Exception as exc:  # the interrupt wins; resume=True closes the run later
            warnings.warn(f"could not close trial run {run_id} after Ctrl-C: {exc}", RuntimeWarning, stacklevel=1)
        raise
    except Exception as exc:  # a crashing trial is recorded; the search goes on
        outcome.status, outcome.reason = FAILED, f"{type(exc).__name__}: {exc}"
        tracker.log_text(run_id, traceback.format_exc(), "error.txt")
    outcome.duration_s = time.perf_counter() - started
    if outcome.reason:
        feedback.set_attr("status_reason", outcome.reason[:1000])
    if _closed_by_a_resume(tracker, run_id):
        return outcome
    tracker.end_run(run_id, MLFLOW_STATUS[outcome.status],
                    tags={"status_reason": outcome.reason or "finished", "nasforge_status": outcome.status,
                          RUN_NAME_TAG: run_name(number, context.strategy, outcome)})
    return outcome


def _closed_by_a_resume(tracker: Tracker, run_id: str) -> bool:
    """Whether the run was ended by someone else: a Ray worker outlives its killed driver, and the
    resumed search has closed this trial's run as interrupted meanwhile. Ending it again would turn
    a trial that does not count into a FINISHED run (one read, cheap next to a trial)."""
    try:
        return tracker.get_run(run_id).info.status != "RUNNING"
    except Exception:  # the store is down: the end below reports it as any write would
        return False


def _objective_value(metrics: Mapping[str, float], name: str) -> float:
    if name not in metrics:
        raise KeyError(f"the trial finished without metric {name!r}; it returned: {', '.join(metrics)}")
    value = float(metrics[name])
    if not math.isfinite(value):
        raise FloatingPointError(f"objective {name!r} is {value}")
    return value
