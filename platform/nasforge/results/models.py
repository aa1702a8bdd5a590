"""The best model of a search: rebuilt from the family's code and saved weights, logged to MLflow."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nasforge.data.tasks import load_task
from nasforge.plugins import get_registry
from nasforge.stores.mlflow_runs import Tracker
from nasforge.stores.weights import load_weights

if TYPE_CHECKING:
    from nasforge.spec.arguments import SearchSpec

MODEL_TRIAL_TAG = "nasforge_trial"   # on the logged model: the trial whose weights it holds


def model_task(spec: "SearchSpec"):
    """The task a model of this search is built for: the user's data (it may hold no arrays, for a
    reloaded search), else the registered task."""
    if spec.data is not None:
        return spec.data.task
    return load_task(spec.task, spec.seed)


def rebuild_model(spec: "SearchSpec", trial):
    """Build the family's module for ``trial`` and load its saved weights."""
    if not spec.save_models:
        raise ValueError("this search ran with save_models=False: no trial weights were saved")
    family = get_registry().get("family", spec.family)
    task = model_task(spec)
    params = trial.user_attrs.get("final_params", trial.params)   # PBT: the config the weights ended in
    model = family.build(family.make_config(spec.space.config_from_flat(params)), task)
    tracker = Tracker(tracking_uri=spec.tracking_uri, experiment_id="")
    model.load_state_dict(load_weights(tracker, trial.user_attrs["mlflow_run_id"]))
    model.eval()
    return model


def log_model(tracker: Tracker, run_id: str, model, example, *, trial_number: int | None = None,
              name: str = "network") -> str:
    """Log the bare network on the parent run as an MLflow PyTorch model (torch.export format).

    ``pt2`` loads back without unpickling arbitrary code; ``mlflow.pytorch.load_model``
    returns a ``torch.fx.GraphModule`` with the same weights and outputs (it has no ``eval()``:
    it was exported in eval mode). A search resumed after it was killed in here reuses the model
    it logged for the same best trial.
    """
    import warnings

    import mlflow
    import numpy as np
    import torch

    logged = logged_model(tracker, run_id, trial_number, name=name)
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
                info = mlflow.pytorch.log_model(model, name=name, serialization_format="pt2",
                                                input_example=np.asarray(example, dtype=np.float32),
                                                pip_requirements=requirements,
                                                tags={MODEL_TRIAL_TAG: str(trial_number)})
    finally:
        mlflow.set_tracking_uri(previous)
    return info.model_uri


def logged_model(tracker: Tracker, run_id: str, trial_number: int | None, *, name: str) -> str | None:
    """The URI of the READY model ``name`` the run logged for ``trial_number`` before, if any; a model
    left PENDING (the process was killed while logging it) is marked FAILED."""
    from mlflow.entities import LoggedModelStatus

    found = None
    for logged in tracker.client.search_logged_models([tracker.experiment_id],
                                                      filter_string=f"source_run_id = '{run_id}'"):
        if logged.status == LoggedModelStatus.PENDING:
            tracker.client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        elif (logged.status == LoggedModelStatus.READY and trial_number is not None and logged.name == name
              and logged.tags.get(MODEL_TRIAL_TAG) == str(trial_number)):
            found = found or logged.model_uri
    return found
