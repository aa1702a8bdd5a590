"""Which supernet phase a weight-sharing strategy runs: ENAS's and RS-WS's, or DARTS's (imports torch)."""

from __future__ import annotations

from typing import Any

from nasforge.stores.mlflow_runs import Tracker
from nasforge.strategies.oneshot.darts_phase import DartsPhase
from nasforge.strategies.oneshot.phase import SupernetPhase
from nasforge.strategies.oneshot.phase_options import PhaseJob


def run_phase(job: PhaseJob, *, tracker: Tracker | None = None, on_epoch=None) -> dict[str, Any]:
    """Train the supernet of ``job`` (continuing its checkpoint, if any) and return the architectures
    to retrain: ``{"top": [...], "candidates": [...], "metric": ..., "compute": {...}}``;
    ``on_epoch(epochs done, epochs, that epoch's mean curves)`` as it starts and after each epoch."""
    tracker = tracker or Tracker(tracking_uri=job.tracking_uri, experiment_id=job.experiment_id)
    phase = DartsPhase if job.strategy == "darts" else SupernetPhase
    return phase(job=job, tracker=tracker, on_epoch=on_epoch).run()
