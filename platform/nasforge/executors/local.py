"""The local executor: trials run in this process (threads when ``n_jobs > 1``), no server.

It drives an Optuna study with ``study.optimize``, so samplers, pruners, storage and
grid exhaustion behave exactly as in plain Optuna.
"""

from __future__ import annotations

from typing import Callable

from nasforge.errors import NasforgeError
from nasforge.spec import SearchSpec
from nasforge.trial import FAILED, PRUNED, OptunaFeedback, TrialContext, TrialOutcome, run_trial


class TrialFailed(NasforgeError):
    """Raised to Optuna so it records the trial as FAIL (the reason is in MLflow too)."""


def run_local(spec: SearchSpec, *, study, context: TrialContext, n_trials: int, tracker,
              on_outcome: Callable[[TrialOutcome], None]) -> None:
    """Run ``n_trials`` more trials of ``study``; ``on_outcome`` sees each one as it ends."""
    import optuna

    def objective(trial: optuna.Trial):
        try:
            params = spec.space.sample(trial)
            outcome = run_trial(params, number=trial.number, context=context,
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

    study.optimize(objective, n_trials=n_trials, timeout=spec.timeout, n_jobs=spec.n_jobs,
                   catch=(TrialFailed,), gc_after_trial=False, show_progress_bar=False)
