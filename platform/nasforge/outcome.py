"""How a trial ends (complete, pruned or failed), how MLflow shows it, and which ends count."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

COMPLETE, PRUNED, FAILED = "complete", "pruned", "failed"
MLFLOW_STATUS = {COMPLETE: "FINISHED", PRUNED: "KILLED", FAILED: "FAILED"}
# Optuna states of trials that count toward a search's target (interrupted ones excepted).
COUNTED_STATES = ("COMPLETE", "PRUNED", "FAIL")


@dataclass(kw_only=True)
class TrialOutcome:
    """What :func:`nasforge.trial.run_trial` returns for one trial."""

    number: int
    status: str
    values: list[float] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    reason: str = ""
    duration_s: float = 0.0


def counts_toward_target(trial) -> bool:
    """Finished Optuna trials count toward the target; interrupted ones do not."""
    return trial.state.name in COUNTED_STATES and not trial.user_attrs.get("interrupted")


def run_name(number: int, strategy: str, outcome: TrialOutcome | None = None) -> str:
    """A trial run's name in the MLflow UI, value first (the runs table cuts long names): ``trial-5 tpe``
    while it runs, then ``trial-5 0.9481 tpe`` (its objective values, ``/`` between several), or
    ``trial-5 pruned tpe`` / ``trial-5 failed tpe``."""
    if outcome is None:
        return f"trial-{number} {strategy}"
    if outcome.status == COMPLETE and outcome.values:
        return f"trial-{number} {'/'.join(f'{v:.4g}' for v in outcome.values)} {strategy}"
    return f"trial-{number} {outcome.status} {strategy}"
