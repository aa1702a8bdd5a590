"""The MLflow store: one parent run per search, one nested child run per trial (:class:`Tracker`).

Everything goes through an explicit ``MlflowClient`` and run ids (no global active run),
so the same code logs from the driver, from threads and from Ray workers. Values are
sent in batches: one ``log_batch`` per report, not one call per metric.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping

from nasforge.interrupts import store_write

MAX_PARAMS, MAX_TAGS, MAX_METRICS = 100, 100, 1000
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"            # set in a batch, it renames the run
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"   # MLflow 3's UI then opens an experiment on its runs table
CURVE_PREFIX = "curve/"


def curve_key(metric: str) -> str:
    """The per-step curve of ``metric`` in a trial run (``curve/val_accuracy``, one point per epoch).

    The metric's own name holds the trial's result (after early stopping restored the best
    weights): the runs table shows it, and the curve never jumps at its end."""
    return CURVE_PREFIX + metric


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else MLflow's own default: ``sqlite:///mlflow.db`` here."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return "sqlite:///" + str(Path.cwd() / "mlflow.db")


def absolute_tracking_uri(uri: str) -> str:
    """Make a relative sqlite URI absolute, so workers in other directories share the store."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri[len(prefix):]).resolve())
    if "://" not in uri and not uri.startswith("databricks"):
        raise ValueError(f"tracking URI {uri!r} is not a URI; use e.g. sqlite:///mlflow.db or http://127.0.0.1:5000")
    return uri


def ui_link(base: str, experiment_id: str, run_id: str | None = None) -> str:
    """A link into the MLflow UI at ``base``: an experiment's runs table, or one run.

    MLflow 3's UI opens an experiment on its GenAI overview unless the link asks for the
    model-training view (``workflowType=machine_learning``); the experiment's kind tag is read
    only where that switch is off.
    """
    page = f"experiments/{experiment_id}" + (f"/runs/{run_id}" if run_id else "")
    return f"{base.rstrip('/')}/#/{page}?workflowType=machine_learning"


def quiet_mlflow() -> None:
    """No per-download progress bars or store-migration chatter in a search's output."""
    import logging

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow.pyfunc").setLevel(logging.WARNING)   # "Validating input example ..." per model


def _artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """For a local sqlite store, artifacts go next to the database (``mlruns/`` beside it),
    not into whatever directory the search happened to start in."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None  # a server or another store decides for itself
    root = Path(tracking_uri[len(prefix):]).resolve().parent / "mlruns"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in experiment)
    return (root / safe).as_uri()


def _stringify(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


class Tracker:
    """Writes one search's run tree to an MLflow tracking store."""

    def __init__(self, *, tracking_uri: str, experiment_id: str):
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.client = MlflowClient(tracking_uri)

    @classmethod
    @store_write
    def for_experiment(cls, *, tracking_uri: str, experiment: str) -> "Tracker":
        """Get or create the experiment (done by the driver before any worker starts)."""
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri)
        found = client.get_experiment_by_name(experiment)
        if found is not None and found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        experiment_id = found.experiment_id if found else client.create_experiment(
            experiment, artifact_location=_artifact_location(tracking_uri, experiment),
            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        if found is not None and EXPERIMENT_KIND_TAG not in found.tags:   # made by an older nasforge
            client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return cls(tracking_uri=tracking_uri, experiment_id=experiment_id)

    # -- runs ------------------------------------------------------------------------
    @store_write
    def start_run(self, *, name: str, tags: Mapping[str, Any], params: Mapping[str, Any] = (),
                  parent_run_id: str | None = None) -> str:
        tags = {k: _stringify(v) for k, v in tags.items()}
        tags[RUN_NAME_TAG] = name
        if parent_run_id:
            tags[PARENT_TAG] = parent_run_id
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=name)
        self.log(run.info.run_id, params=params)
        return run.info.run_id

    @store_write
    def reopen(self, run_id: str) -> None:
        self.client.update_run(run_id, status="RUNNING")

    @store_write
    def end_run(self, run_id: str, status: str = "FINISHED", *, tags: Mapping[str, Any] = ()) -> None:
        """``status``: FINISHED, FAILED or KILLED (pruned or interrupted trials)."""
        if tags:
            self.log(run_id, tags=tags)
        self.client.set_terminated(run_id, status=status)

    # -- values ----------------------------------------------------------------------
    @store_write
    def log(self, run_id: str, *, metrics: Mapping[str, float] = (), step: int = 0,
            params: Mapping[str, Any] = (), tags: Mapping[str, Any] = ()) -> None:
        """Log metrics (at ``step``), params and tags in as few ``log_batch`` calls as allowed."""
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        metric_list = [Metric(k, float(v), now, int(step)) for k, v in dict(metrics).items()]
        param_list = [Param(k, _stringify(v)) for k, v in dict(params).items()]
        tag_list = [RunTag(k, _stringify(v)) for k, v in dict(tags).items()]
        while metric_list or param_list or tag_list:
            self.client.log_batch(run_id, metrics=metric_list[:MAX_METRICS],
                                  params=param_list[:MAX_PARAMS], tags=tag_list[:MAX_TAGS])
            metric_list, param_list = metric_list[MAX_METRICS:], param_list[MAX_PARAMS:]
            tag_list = tag_list[MAX_TAGS:]

    @store_write
    def log_points(self, run_id: str, points: list[tuple[str, float, int]]) -> None:
        """Log ``(key, value, step)`` points (curves with their own steps) in as few batches as allowed."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, int(step)) for key, value, step in points]
        for i in range(0, len(metrics), MAX_METRICS):
            self.client.log_batch(run_id, metrics=metrics[i:i + MAX_METRICS])

    @store_write
    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    @store_write
    def log_artifact(self, run_id: str, path: str, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, path, artifact_path)

    @store_write
    def log_artifacts(self, run_id: str, folder: str, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(run_id, folder, artifact_path)

    @store_write
    def log_figure(self, run_id: str, figure: Any, artifact_file: str) -> None:
        self.client.log_figure(run_id, figure, artifact_file)

    @store_write
    def log_datasets(self, run_id: str, datasets: list[tuple[Any, str]]) -> None:
        """Log ``(mlflow.entities.Dataset, context)`` pairs as the run's dataset inputs."""
        from mlflow.entities import DatasetInput, InputTag

        inputs = [DatasetInput(dataset=d, tags=[InputTag(key="mlflow.data.context", value=c)]) for d, c in datasets]
        self.client.log_inputs(run_id, datasets=inputs)

    @store_write
    def close_running_children(self, parent_run_id: str, reason: str) -> int:
        """End the search's child runs still RUNNING (cut off before their trial could link them)."""
        runs = self.client.search_runs(
            [self.experiment_id], max_results=10_000,
            filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}' and attributes.status = 'RUNNING'")
        for run in runs:
            self.end_run(run.info.run_id, "KILLED", tags={"status_reason": reason, "nasforge_status": "interrupted"})
        return len(runs)

    def get_run(self, run_id: str):
        return self.client.get_run(run_id)

    def download(self, run_id: str, path: str, dst: str) -> str:
        return self.client.download_artifacts(run_id, path, dst)
