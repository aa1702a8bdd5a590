"""The worker side of the Ray executor: one Tune function trainable around ``run_trial``.

A trial talks to the driver only through ``ray.tune.report``; every result carries an
``nasforge_event``:

* ``started`` -- the MLflow run exists (its id, so an interrupted search can link the run);
* ``step`` -- one intermediate value of the objective, for the scheduler (none without one);
* ``final`` -- the :class:`~nasforge.outcome.TrialOutcome` (status, values, metrics, reason).

When a scheduler stops a trial, Ray makes the blocked ``tune.report`` raise ``SystemExit(0)``
(see ``ray.train._internal.session``). :class:`TuneFeedback` turns that into
:class:`~nasforge.errors.TrialPruned`, so ``run_trial`` closes the MLflow run as KILLED
("stopped by the ... scheduler"), and the trainable then ends its thread with
``SystemExit(0)`` itself: a function that *returns* after a stop would block forever in
Ray's closing report, and the actor could not be reused.

A trial that raises inside the family is a *result*, not a Ray error: ``run_trial`` records it
and the trainable reports ``status: failed``, so ``FailureConfig(max_failures)`` retries only
trials whose worker process died (or whose trainable broke outside ``run_trial``).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import socket
import sys
from typing import Any, Mapping

from nasforge.errors import TrialPruned
from nasforge.outcome import TrialOutcome
from nasforge.trial import Feedback, TrialContext

# Keys of the trial config and of every reported result.
NUMBER, PARAMS, STRATEGY = "nasforge_number", "nasforge_params", "nasforge_strategy"
# Set by the pbt scheduler (ray_pbt): the trial's exploits so far.
LINEAGE = "nasforge_lineage"
CHECKPOINT_FILE = "nasforge_state.pt"
EVENT, STEP, OBJECTIVE, RUN_ID, OUTCOME = (
    "nasforge_event", "nasforge_step", "nasforge_objective", "nasforge_run_id", "nasforge_outcome")
STARTED, INTERMEDIATE, FINAL = "started", "step", "final"
# Tags each child run gets on top of the local executor's: where the trial ran.
WORKER_TAGS = ("worker_node", "worker")


def stop_reason(scheduler: str, unit: str, step: int | None) -> str:
    """The reason recorded for a trial a scheduler stopped (the same text in worker and driver)."""
    where = f" at {unit} {step}" if step is not None else " before its first report"
    return f"stopped by the {scheduler} scheduler{where}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrialSettings:
    """What every trial of one search needs besides its context (picklable)."""

    scheduler: str      # name, for the stop reason
    unit: str           # the family's budget unit
    max_step: int       # the budget: a report at this step is the trial's last one


class TuneFeedback(Feedback):
    """Reports each step to Ray Tune; a scheduler's stop becomes :class:`TrialPruned`."""

    def __init__(self, settings: TrialSettings, *, resume_state: dict | None = None):
        self.settings = settings
        self.stopped = False
        self.run_id: str | None = None
        self.last_report: tuple[int, float] | None = None
        self.resume_state = resume_state
        self.pending_checkpoint: dict | None = None

    def _report(self, result: dict[str, Any], step: int | None) -> None:
        from ray import tune

        if self.stopped:   # the session is closing: another report would block forever
            raise TrialPruned(stop_reason(self.settings.scheduler, self.settings.unit, step))
        state, self.pending_checkpoint = self.pending_checkpoint, None
        try:
            if state is None:
                tune.report(result)
            else:
                report_with_checkpoint(result, state)
        except SystemExit:
            self.stopped = True
            if self.settings.scheduler == "pbt":
                # PBT pauses (to copy a stronger trial into this one, or to let others catch up): the
                # trial resumes from a checkpoint in the same MLflow run, which stays RUNNING meanwhile.
                raise
            raise TrialPruned(stop_reason(self.settings.scheduler, self.settings.unit, step)) from None

    def checkpoint_due(self, step: int) -> bool:
        # Every step PBT may look at (the last one goes with the final result, which PBT ignores).
        return self.settings.scheduler == "pbt" and step < self.settings.max_step

    def save_checkpoint(self, state) -> None:
        self.pending_checkpoint = {**state, "owner_run_id": self.run_id}

    def load_checkpoint(self) -> dict | None:
        return self.resume_state

    def should_prune(self, step: int, value: float) -> bool:
        self.last_report = (step, value)
        if self.settings.scheduler == "none":
            return False  # nothing stops trials: no round trip to the driver (the curve is in MLflow)
        if step >= self.settings.max_step:
            # The last step: its value goes with the final result, so a scheduler's "trial reached
            # max_t" stop never cuts off a trial that has finished training.
            return False
        self._report({EVENT: INTERMEDIATE, STEP: step, OBJECTIVE: value}, step)
        return False

    def set_attr(self, key: str, value: Any) -> None:
        if key == "mlflow_run_id":
            self.run_id = value
            try:
                self._report({EVENT: STARTED, RUN_ID: value}, None)
            except TrialPruned:
                pass  # stopped before training: the first step report raises it inside run_trial


def final_result(outcome: TrialOutcome, feedback: TuneFeedback) -> dict[str, Any]:
    payload = {"status": outcome.status, "values": outcome.values, "metrics": outcome.metrics,
               "reason": outcome.reason, "duration_s": outcome.duration_s, "last_report": feedback.last_report,
               "params": outcome.params}
    result = {EVENT: FINAL, RUN_ID: outcome.run_id, OUTCOME: json.dumps(payload)}
    if feedback.last_report is not None:
        result[STEP] = feedback.last_report[0]
    if outcome.values and len(outcome.values) == 1:
        result[OBJECTIVE] = outcome.values[0]
    return result


def train(config: Mapping[str, Any], *, context: TrialContext, settings: TrialSettings,
          plugins: bytes | None = None, data: Any = None) -> None:
    """The Tune function trainable: one nasforge trial (``config`` comes from the driver's study).

    ``data``: the user's prepared data (a Task; streamed inputs are paths read on this node).
    """
    from ray import tune

    from nasforge.data.tasks import register_data_task
    from nasforge.executors.ray_plugins import install_plugins
    from nasforge.stores.mlflow_runs import quiet_mlflow
    from nasforge.trial import run_trial

    install_plugins(plugins)
    if data is not None:
        register_data_task(data, context.data_digest)
    quiet_mlflow()
    context = dataclasses.replace(context, extra_tags={**context.extra_tags, **worker_tags()},
                                  strategy=config.get(STRATEGY, context.strategy))
    state = load_tune_checkpoint() if settings.scheduler == "pbt" else None
    feedback = TuneFeedback(settings, resume_state=state)
    run_id = config.get(RUN_ID)   # set by the pbt scheduler once the trial has a run: it goes on there
    if run_id and state is not None and state.get("owner_run_id") != run_id:
        record_exploit(tracker_for(context), run_id, config, state)
    try:
        outcome = run_trial(config[PARAMS], number=int(config[NUMBER]), context=context, feedback=feedback,
                            tracker=tracker_for(context), run_id=run_id)
    finally:
        release_gpu()
    if feedback.stopped:
        raise SystemExit(0)  # Ray's graceful end of a stopped function trainable
    tune.report(final_result(outcome, feedback))


# -- checkpoints (scheduler="pbt") -------------------------------------------------------
def report_with_checkpoint(result: dict[str, Any], state: dict) -> None:
    """``tune.report`` with ``state`` saved as a Tune checkpoint (Tune copies it to its storage)."""
    import tempfile

    import torch
    from ray import tune

    with tempfile.TemporaryDirectory(prefix="nasforge-ckpt-") as tmp:
        torch.save(state, os.path.join(tmp, CHECKPOINT_FILE))
        tune.report(result, checkpoint=tune.Checkpoint.from_directory(tmp))


def load_tune_checkpoint() -> dict | None:
    """The checkpoint Tune resumes this trial from (its own, or a donor's after a PBT exploit)."""
    import torch
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return torch.load(os.path.join(folder, CHECKPOINT_FILE), map_location="cpu", weights_only=True)


def record_exploit(tracker, run_id: str, config: Mapping[str, Any], state: dict) -> None:
    """Write a PBT exploit into the trial's own run: tags, the new values as ``pbt.<name>`` metrics
    at the restored step, and the whole lineage as ``pbt/lineage.json``."""
    from nasforge.spec.space import flatten

    lineage = list(config.get(LINEAGE) or [])
    last = lineage[-1] if lineage else {}
    step = int(state.get("epoch", last.get("step", 0)))
    changed = last.get("changed") or {}
    tracker.log(run_id, step=step, metrics={f"pbt.{name}": new for name, (_, new) in changed.items()},
                tags={"pbt_exploits": len(lineage), "pbt_last_donor_trial": last.get("donor_trial", ""),
                      "pbt_last_donor_run_id": last.get("donor_run_id") or "", "pbt_restored_step": step,
                      "pbt_params": json.dumps(flatten(config[PARAMS]), sort_keys=True)})
    tracker.log_text(run_id, json.dumps(lineage, indent=1), "pbt/lineage.json")


# -- the worker process ------------------------------------------------------------------
_TRACKERS: dict[tuple[str, str], Any] = {}


def tracker_for(context: TrialContext):
    """One MLflow client per store and worker process (actors are reused across trials)."""
    from nasforge.stores.mlflow_runs import Tracker

    key = (context.tracking_uri, context.experiment_id)
    if key not in _TRACKERS:
        _TRACKERS[key] = Tracker(tracking_uri=context.tracking_uri, experiment_id=context.experiment_id)
    return _TRACKERS[key]


def worker_tags() -> dict[str, str]:
    import ray

    return {"worker_node": ray.get_runtime_context().get_node_id(), "worker": f"{socket.gethostname()}:{os.getpid()}"}


def release_gpu() -> None:
    """Give the trial's CUDA memory back to the GPU (the model is gone once ``run_trial`` returns).

    Only where CUDA was used: a full ``gc.collect()`` costs a CPU-only trial ~0.5 s.
    """
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return
    gc.collect()              # reference cycles (a traceback, a closure) may still hold CUDA tensors
    torch.cuda.empty_cache()  # cached blocks back to the driver: the next trial on this GPU can use them
