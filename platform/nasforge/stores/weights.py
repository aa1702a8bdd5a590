"""A trial's trained weights, kept as an artifact of its MLflow run and loaded back safely."""

from __future__ import annotations

import os
import tempfile

from nasforge.stores.mlflow_runs import Tracker

WEIGHTS_ARTIFACT = "model/state_dict.pt"


def save_weights(tracker: Tracker, run_id: str, model) -> None:
    """Store ``model``'s ``state_dict`` (on the CPU) as the run's ``model/state_dict.pt``."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, os.path.basename(WEIGHTS_ARTIFACT))
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
        tracker.log_artifact(run_id, path, os.path.dirname(WEIGHTS_ARTIFACT))


def load_weights(tracker: Tracker, run_id: str) -> dict:
    """A trial's saved ``state_dict``, loaded safely (``weights_only=True``)."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        local = tracker.download(run_id, WEIGHTS_ARTIFACT, tmp)
        return torch.load(local, map_location="cpu", weights_only=True)
