"""When the MLflow store fails in the middle of a search: keep every result, stop, say so.

The Optuna storage is the record of the trials; MLflow is the view of them. So once the
trials run, a failing MLflow write (server gone, disk full, database locked for good) does
not fail the trial: :class:`GuardedTracker` notes the first failure, skips the MLflow writes
that follow, and asks the study to stop after the trials already running. Their results
(values, metrics) still go to the Optuna storage. The search then ends with a
:class:`~nasforge.errors.StoreError` that names the store and how to go on; ``resume=True``
later logs what MLflow missed (:mod:`nasforge.stores.backfill`).
"""

from __future__ import annotations

import threading
import warnings
from typing import Any, Callable

from nasforge.errors import StoreError, first_line
from nasforge.stores.http import quick_http
from nasforge.stores.mlflow_runs import Tracker


class GuardedTracker(Tracker):
    """A :class:`Tracker` that, once :meth:`arm`-ed, survives a failing store (see the module doc)."""

    def __init__(self, *, tracking_uri: str, experiment_id: str):
        super().__init__(tracking_uri=tracking_uri, experiment_id=experiment_id)
        self.failure: BaseException | None = None
        self._on_failure: Callable[[], None] | None = None
        self._lock = threading.Lock()

    def arm(self, on_failure: Callable[[], None]) -> None:
        """From now on a failed write calls ``on_failure`` once (e.g. stop the study) and is skipped."""
        self._on_failure = on_failure

    def disarm(self) -> BaseException | None:
        """Back to raising on failure; returns the failure seen while armed (or None)."""
        self._on_failure = None
        return self.failure

    def _guard(self, write: Callable[..., Any], *args, **kwargs) -> Any:
        if self._on_failure is None:
            return write(*args, **kwargs)
        if self.failure is not None:
            return None  # the store already failed: skip; the trial's result goes to Optuna
        try:
            return write(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any store error; the trial goes on
            with self._lock:
                first, self.failure = self.failure is None, self.failure or exc
            if first:
                warnings.warn(f"MLflow store {self.tracking_uri} failed ({first_line(exc)}); the trials running now "
                              "finish into the Optuna storage, then the search stops", RuntimeWarning, stacklevel=3)
                callback = self._on_failure
                if callback is not None:
                    callback()
            return None

    # every write of Tracker, guarded
    def start_run(self, **kwargs) -> str | None:
        return self._guard(super().start_run, **kwargs)

    def reopen(self, run_id: str) -> None:
        return self._guard(super().reopen, run_id)

    def end_run(self, run_id: str, status: str = "FINISHED", **kwargs) -> None:
        return self._guard(super().end_run, run_id, status, **kwargs)

    def log(self, run_id: str, **kwargs) -> None:
        return self._guard(super().log, run_id, **kwargs)

    def log_points(self, run_id: str, points: list) -> None:
        return self._guard(super().log_points, run_id, points)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        return self._guard(super().log_text, run_id, text, artifact_file)

    def log_artifacts(self, run_id: str, folder: str, artifact_path: str | None = None) -> None:
        return self._guard(super().log_artifacts, run_id, folder, artifact_path)

    def log_artifact(self, run_id: str, path: str, artifact_path: str | None = None) -> None:
        return self._guard(super().log_artifact, run_id, path, artifact_path)

    def log_datasets(self, run_id: str, datasets: list) -> None:
        return self._guard(super().log_datasets, run_id, datasets)

    def log_figure(self, run_id: str, figure: Any, artifact_file: str) -> None:
        return self._guard(super().log_figure, run_id, figure, artifact_file)


def stop_study(study) -> Callable[[], None]:
    """A callback that makes ``study.optimize`` start no new trial (safe from any thread)."""

    def stop() -> None:
        try:
            study.stop()
        except RuntimeError:  # called outside the thread that runs the optimize loop
            study._stop_flag = True

    return stop


def store_failed_error(tracker: GuardedTracker, spec, study, done: int, parent_run_id: str) -> StoreError:
    """The error a search ends with when its store failed; tries to mark the parent run KILLED."""
    try:
        with quick_http():
            tracker.end_run(parent_run_id, "KILLED", tags={"status_reason": "the MLflow store failed; resume=True"})
    except Exception:  # noqa: BLE001 - still down: the resume closes it
        pass
    return StoreError(
        f"the MLflow store {tracker.tracking_uri} failed during the search ({first_line(tracker.failure)}). "
        f"{done} of {spec.trials} trials are done and kept in the Optuna storage {spec.storage}; when the store "
        f"is back, continue with resume=True, study_name={study.study_name!r} (CLI: --resume --study-name "
        f"{study.study_name}): the runs it missed are logged then")


def check_no_failure(tracker: Any, spec, study, done: int, parent_run_id: str) -> None:
    """Raise the store error if ``tracker`` saw its store fail while armed."""
    if isinstance(tracker, GuardedTracker) and tracker.disarm() is not None:
        raise store_failed_error(tracker, spec, study, done, parent_run_id)
