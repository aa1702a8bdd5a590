"""Export a finished search found in an MLflow store (``nasforge export``): reopen it, then export its best model."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from nasforge.errors import ExportError, UnknownSearchError
from nasforge.plugins import get_registry
from nasforge.results.export import (DEFAULT_FORMATS, ExportedModel, check_formats, check_register_name,
                                     check_target, export_result)
from nasforge.results.load import find_search_run, load
from nasforge.stores.mlflow_runs import absolute_tracking_uri, default_tracking_uri, quiet_mlflow


def export_run(path: str | Path, *, tracking_uri: str | None = None, run_id: str | None = None,
               experiment: str | None = None, formats: Iterable[str] = DEFAULT_FORMATS,
               register_as: str | None = None, overwrite: bool = False) -> ExportedModel:
    """Export the best model of a finished search in an MLflow store.

    Args:
        path: the export directory (created; must be new or empty unless ``overwrite``).
        tracking_uri: the MLflow store; default ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``.
        run_id: the search's parent run id (``result.parent_run_id``; the run named after the
            study in the MLflow UI). ``None`` or ``"latest"``: the latest finished search of
            ``experiment`` (or of the whole store when no experiment is given).
        experiment: the experiment to take the latest search from (e.g. ``"mlp-digits"``).
        formats: any of ``"mlflow"``, ``"pt2"``, ``"torchscript"``.
        register_as: also register the search's served model under this name (``models:/NAME/N``).
        overwrite: replace an earlier export in ``path`` (only the files an export writes).
    """
    from mlflow import MlflowClient

    formats, target = check_formats(formats), check_target(path, overwrite=overwrite)
    register_as = check_register_name(register_as)
    quiet_mlflow()
    uri = absolute_tracking_uri(tracking_uri or default_tracking_uri())
    try:
        run = find_search_run(MlflowClient(uri), uri, run_id=run_id, experiment=experiment, finished_only=True)
    except UnknownSearchError as exc:
        raise ExportError(str(exc)) from None
    run_id, tags = run.info.run_id, run.data.tags
    if not tags.get("best_run_id") and run.info.status != "FINISHED":
        raise ExportError(f"search run {run_id!r} is {run.info.status} (interrupted or still running): "
                          "finish it (resume=True / --resume) before exporting")
    if not tags.get("best_run_id"):
        raise ExportError(f"search run {run_id!r} has no best trial (no trial completed): no model to export")
    registry = get_registry()
    if tags.get("family") not in registry.names("family"):
        raise ExportError(f"search run {run_id!r} used family {tags.get('family')!r}, which no loaded plugin "
                          f"registers (known: {', '.join(registry.names('family'))}); install its plugin first")
    result = load(run_id=run_id, tracking_uri=uri)
    return export_result(result, target, formats=formats, register_as=register_as, overwrite=True)
