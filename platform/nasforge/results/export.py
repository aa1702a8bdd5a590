"""Export a search's best model to files: an MLflow model, ``torch.export`` (``.pt2``), TorchScript.

Optionally also a version in the MLflow model registry.

Two ways in: :func:`export_result` for a :class:`~nasforge.results.result.SearchResult` in hand
(``result.export(path)``), and :func:`nasforge.results.export_stored.export_run` for a finished
search found in an MLflow store by its parent run id, or the latest search of an experiment
(``nasforge export``). Either way
the model is rebuilt from the family's code and the best trial's saved weights, loaded with
``torch.load(weights_only=True)``. The directory written::

    PATH/mlflow_model/            mlflow.pytorch.load_model(PATH/mlflow_model)   (pt2 inside)
    PATH/model.pt2                torch.export.load(PATH/model.pt2).module()
    PATH/model.torchscript.pt     torch.jit.load(PATH/model.torchscript.pt)
    PATH/export.json              where it came from: search run, trial, family, task, params,
                                  and the preprocessing these files do NOT include

These files hold the bare network: preprocessed float32 rows in, raw outputs (logits, the
standardized target) out. ``export.json`` has the preprocessing to apply first (for ``data=``
searches) and names the served model, the MLflow pyfunc that does it all. A reloaded ``.pt2``
module (``torch.export.load(...).module()``) has no ``eval()``: it was exported in eval mode.
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from nasforge.errors import ExportError
from nasforge.plugins import get_registry
from nasforge.results.models import log_model, model_task
from nasforge.stores.mlflow_runs import Tracker

#: format -> the file or directory it is written to, inside the export directory
FORMATS = {"mlflow": "mlflow_model", "pt2": "model.pt2", "torchscript": "model.torchscript.pt"}
DEFAULT_FORMATS = ("mlflow", "pt2")
MANIFEST = "export.json"


@dataclass(frozen=True, kw_only=True)
class ExportedModel:
    """What :func:`export_result` / :func:`export_run` wrote."""

    path: Path
    files: dict[str, Path]                 # format -> file or directory
    search_run_id: str
    trial_run_id: str
    registered: str | None = None          # ``models:/NAME/VERSION``
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)


# -- checks (cheap, before any model is built) -------------------------------------------
def check_formats(formats: Iterable[str] | str) -> tuple[str, ...]:
    """The requested formats, de-duplicated; an unknown one is an :class:`ExportError`."""
    if isinstance(formats, str):
        formats = (formats,)
    out: list[str] = []
    for fmt in formats:
        if fmt not in FORMATS:
            raise ExportError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
        if fmt not in out:
            out.append(fmt)
    if not out:
        raise ExportError(f"no export format given; valid: {', '.join(FORMATS)}")
    return tuple(out)


def check_target(path: str | Path, *, overwrite: bool) -> Path:
    """An export directory that is new, empty, or (``overwrite=True``) an earlier export."""
    path = Path(path).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise ExportError(f"export path {str(path)!r} is a file, not a directory")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ExportError(f"export path {str(path)!r} exists and is not empty; choose another path "
                          "or pass overwrite=True (CLI: --overwrite)")
    return path


def check_register_name(name: str | None) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str) or not name.strip() or "/" in name or ":" in name:
        raise ExportError(f"register_as must be a model name without '/' or ':', got {name!r}")
    return name


# -- entry points ----------------------------------------------------------------------
def export_result(result, path: str | Path, *, formats: Iterable[str] = DEFAULT_FORMATS,
                  register_as: str | None = None, overwrite: bool = False) -> ExportedModel:
    """Export the best model of a :class:`~nasforge.results.result.SearchResult` (see the module doc)."""
    formats, target = check_formats(formats), check_target(path, overwrite=overwrite)
    register_as = check_register_name(register_as)
    spec = result.spec
    if not spec.save_models:
        raise ExportError(f"search {result.parent_run_id!r} ran with save_models=False: no trial weights "
                          "were saved, so there is no model to export; search again with save_models=True")
    if not result.completed_trials:
        raise ExportError(f"search {result.parent_run_id!r} has no completed trial: no model to export")
    best = result.best_trial
    model = result.best_model()
    source = {"tracking_uri": spec.tracking_uri, "experiment_id": result.experiment_id,
              "search_run_id": result.parent_run_id, "trial_run_id": best.user_attrs.get("mlflow_run_id", ""),
              "trial": best.number, "family": spec.family, "task": spec.task, "seed": spec.seed,
              "params": result.best_params,
              "values": {o.metric: v for o, v in zip(spec.objectives, best.values)},
              "served_model": result.model_uri, **_preprocessing_note(spec)}
    return _export(model, _example(spec), target, formats, source, register_as=register_as,
                   logged_model_uri=result.model_uri)


def _example(spec):
    """Two inputs for tracing: the task's test rows, or zeros of its shape when the data is not here."""
    import math

    import numpy as np

    task = model_task(spec)
    if task.x_test is not None:
        return get_registry().get("family", spec.family).example_input(task)
    return np.zeros((2, math.prod(task.input_shape)), dtype=np.float32)


def _preprocessing_note(spec) -> dict[str, Any]:
    """What the exported network files leave out: the preprocessing, and the numbers to redo it."""
    if spec.data is None:
        return {"inputs": f"rows of task {spec.task!r} as its loader prepares them (no preprocessing recorded)"}
    return {"inputs": "the files take PREPROCESSED float32 rows and give raw outputs (logits or the standardized "
                      "target): apply 'preprocessing' first and decode after, or serve 'served_model' "
                      "(mlflow models serve), which does both",
            "preprocessing": spec.data.preprocessing}


# -- writing ---------------------------------------------------------------------------
def _export(model, example, target: Path, formats: tuple[str, ...], source: dict[str, Any], *,
            register_as: str | None, logged_model_uri: str | None = None) -> ExportedModel:
    import numpy as np
    import torch

    example = torch.as_tensor(np.asarray(example, dtype=np.float32))
    target.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for fmt in formats:
        out = target / FORMATS[fmt]
        _remove(out)
        WRITERS[fmt](model, example, out)
        files[fmt] = out
    registered = None
    if register_as:
        registered = register(source["tracking_uri"], source["search_run_id"], register_as,
                              model=model, example=example, model_uri=logged_model_uri)
    manifest = {**source, "formats": {f: p.name for f, p in files.items()}, "registered": registered,
                "input_shape": list(example.shape[1:]), "input_dtype": "float32"}
    (target / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str) + "\n")
    return ExportedModel(path=target, files=files, search_run_id=source["search_run_id"],
                         trial_run_id=source["trial_run_id"], registered=registered, manifest=manifest)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _requirements() -> list[str]:
    import torch

    return [f"torch=={torch.__version__.split('+')[0]}"]  # naming it skips MLflow's slow inference


def _write_mlflow(model, example, out: Path) -> None:
    import mlflow

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.pytorch.save_model(model, str(out), serialization_format="pt2", input_example=example.numpy(),
                                  pip_requirements=_requirements())


def _write_pt2(model, example, out: Path) -> None:
    import torch

    batch = {0: torch.export.Dim.AUTO}  # any batch size, as long as the model allows it
    program = torch.export.export(model, (example,), dynamic_shapes=(batch,))
    torch.export.save(program, str(out))


def _write_torchscript(model, example, out: Path) -> None:
    import torch

    with warnings.catch_warnings():  # torch.jit is deprecated in favour of torch.export (pt2)
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example)
    traced.save(str(out))


WRITERS = {"mlflow": _write_mlflow, "pt2": _write_pt2, "torchscript": _write_torchscript}


# -- the registry ----------------------------------------------------------------------
def register(tracking_uri: str, search_run_id: str, name: str, *, model=None, example=None,
             model_uri: str | None = None) -> str:
    """Register the search's logged model (logging it first if it has none) as a new version
    of ``name`` in the store's model registry; returns ``models:/NAME/VERSION``."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    model_id = model_uri[len("models:/"):] if model_uri and model_uri.startswith("models:/") else None
    if model_id is None:
        experiment_id = client.get_run(search_run_id).info.experiment_id
        logged = [m for m in client.search_logged_models(
            [experiment_id], filter_string=f"source_run_id = '{search_run_id}'") if m.name in ("model", "network")]
        if logged:   # the served model ("model") before the bare network, the newest of each
            model_id = max(logged, key=lambda m: (m.name == "model", m.creation_timestamp)).model_id
        else:  # e.g. logging failed at the end of the search: log it now
            tracker = Tracker(tracking_uri=tracking_uri, experiment_id=experiment_id)
            model_id = log_model(tracker, search_run_id, model, example.numpy(), name="network")[len("models:/"):]
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)  # the registry store looks the logged model up through it
    try:
        try:
            client.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise ExportError(f"cannot register model {name!r} in {tracking_uri}: {exc.message}") from None
        version = client.create_model_version(name=name, source=f"models:/{model_id}", run_id=search_run_id,
                                              model_id=model_id)
    finally:
        mlflow.set_tracking_uri(previous)
    return f"models:/{name}/{version.version}"
