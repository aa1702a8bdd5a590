"""The search's predictor as an MLflow pyfunc model: ``mlflow models serve`` answers on raw rows.

The model is logged "from code" (a three-line script that calls ``mlflow.models.set_model``), so
loading it unpickles nothing: its artifacts are ``predictor.json`` (family, best configuration,
task shape, preprocessing) and ``weights.pt`` (the ``state_dict``, loaded with
``weights_only=True``); the network is rebuilt from the family's code. nasforge is on no package
index, so the model carries nasforge's code and its family's plugin package (built in or from an
installed plugin) as MLflow ``code_paths``, and its ``requirements.txt`` names what that code
imports (:data:`SERVING_REQUIREMENTS`, plus a plugin distribution's own requirements): an
environment built from it (``mlflow models serve --env-manager virtualenv``, ``mlflow models
build-docker``) serves the model with no nasforge installed, the family registered from the
module ``predictor.json`` names. A plugin that is not a module is pinned by its distribution's
name (it must be installable there); one registered at run time must be importable there.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import warnings
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from nasforge.data.tasks import task_from_description
from nasforge.errors import UnknownNameError
from nasforge.plugins import get_registry
from nasforge.results.predictor import Predictor

# The distributions nasforge's code imports when it serves a model (MLflow adds itself, and brings the rest).
SERVING_REQUIREMENTS = ("torch", "numpy", "pandas", "pluggy", "pyyaml")

MODEL_CODE = '''"""nasforge's predictor for MLflow (models from code): see nasforge.results.serving."""
import mlflow

from nasforge.results.serving import NasforgeModel

mlflow.models.set_model(NasforgeModel())
'''


class NasforgeModel(PythonModel):
    """Raw inputs (a DataFrame with the training columns, or arrays) in, predictions out."""

    def load_context(self, context) -> None:
        import torch

        with open(context.artifacts["predictor"], encoding="utf-8") as f:
            described = json.load(f)
        weights = torch.load(context.artifacts["weights"], map_location="cpu", weights_only=True)
        self.predictor = build_predictor(described, weights)

    # A hint MLflow infers no schema from: the logged signature checks the inputs (arrays come in too).
    def predict(self, context, model_input: pd.DataFrame, params=None):
        return self.predictor.predict(model_input)


def build_predictor(described: dict[str, Any], weights: dict) -> Predictor:
    """A :class:`Predictor` from ``predictor.json`` and the weights: the family rebuilds the network."""
    registry = get_registry()
    try:
        family = registry.get("family", described["family"])
    except UnknownNameError:
        if not described.get("plugin_module"):
            raise
        # served without nasforge installed (no entry points): the model's own copy of the family's plugin
        registry.register(importlib.import_module(described["plugin_module"]))
        family = registry.get("family", described["family"])
    task = task_from_description(described["task"])
    network = family.build(family.make_config(described["params"]), task)
    network.load_state_dict(weights)
    network.eval()
    return Predictor(family=family, network=network, task=task, preprocessing=described["preprocessing"])


def signature(predictor: Predictor, example):
    """Inputs named as in training (every column optional: missing values are imputed), outputs one per row."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    if hasattr(example, "columns"):
        from nasforge.data.preprocessing import is_numeric

        inputs = Schema([ColSpec("double" if is_numeric(example[c]) else "string", name=str(c), required=False)
                         for c in example.columns])
    else:
        array = np.asarray(example)
        inputs = Schema([TensorSpec(array.dtype, (-1, *array.shape[1:]))])
    predictions = np.asarray(predictor.predict(example))
    kind = "string" if predictions.dtype == object else ("double" if predictions.dtype.kind == "f" else "long")
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec(kind)]))


def log_predictor(tracker, run_id: str, predictor: Predictor, *, params: dict[str, Any], example,
                  requirements: list[str], tags: dict[str, str], code_paths: list[str] = (),
                  plugin_module: str | None = None) -> str:
    """Log ``predictor`` on the run as the pyfunc model ``model``; returns its URI (``models:/m-...``).
    ``code_paths``: package directories the model carries; ``plugin_module``: the family's plugin among them."""
    import mlflow
    import numpy as np
    import torch

    if hasattr(example, "columns"):   # numbers as floats, so a served row may carry a missing value
        example = example.astype({c: "float64" for c in example.columns if example[c].dtype.kind in "iub"})
    else:
        example = np.asarray(example, dtype=np.float64) if np.asarray(example).dtype.kind in "iub" else example
    with tempfile.TemporaryDirectory(prefix="nasforge-pyfunc-") as tmp:
        script = os.path.join(tmp, "nasforge_model.py")
        described = os.path.join(tmp, "predictor.json")
        weights = os.path.join(tmp, "weights.pt")
        with open(script, "w", encoding="utf-8") as f:
            f.write(MODEL_CODE)
        with open(described, "w", encoding="utf-8") as f:
            json.dump({**predictor.describe(), "params": params, "plugin_module": plugin_module}, f, indent=1,
                      default=str)
        torch.save({k: v.detach().cpu() for k, v in predictor.network.state_dict().items()}, weights)
        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(tracker.tracking_uri)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with mlflow.start_run(run_id=run_id, nested=True):
                    info = mlflow.pyfunc.log_model(name="model", python_model=script,
                                                   artifacts={"predictor": described, "weights": weights},
                                                   signature=signature(predictor, example), input_example=example,
                                                   pip_requirements=requirements, code_paths=list(code_paths) or None,
                                                   tags=tags)
        finally:
            mlflow.set_tracking_uri(previous)
    return info.model_uri
