"""Preflight: open the stores a search writes to, once and quickly, before any trial runs.

A search writes to two places: the MLflow tracking store (runs, metrics, artifacts) and the
Optuna storage (trials). :func:`check_stores` gets or creates the experiment and makes a
small write to each, and writes a probe file where a local artifact location is, so a
read-only folder, one that cannot be created, a file where a folder should be, a full disk or a server
that does not answer stops the search with a :class:`StoreError` that says which store and
why -- not a traceback from SQLAlchemy or ``requests`` after the first trial.

Several searches may start on one fresh sqlite store at once (separate processes): creating
the tables and the experiment is done under a lock on the store's folder, since MLflow's
migrations and Optuna's table creation are not safe to run twice at the same moment.

Against an MLflow server the preflight makes one try with a short timeout
(:func:`nasforge.stores.http.quick_http`) and leaves the settings of the search as they were.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from nasforge.errors import NasforgeError, StoreError, first_line
from nasforge.stores.guard import GuardedTracker
from nasforge.stores.http import quick_http
from nasforge.stores.study import optuna_storage

if TYPE_CHECKING:
    from nasforge.spec.arguments import SearchSpec


def check_stores(spec: "SearchSpec") -> GuardedTracker:
    """Check both stores of ``spec``; return the tracker of its experiment (created if new)."""
    tracker = check_tracking(spec.tracking_uri, spec.experiment)
    check_storage(spec.storage)
    return tracker


def check_tracking(uri: str, experiment: str) -> GuardedTracker:
    """Get or create ``experiment`` in the MLflow store ``uri`` and make one write to it and to
    its artifact location."""
    where = f"MLflow store {uri}"
    folder = None
    if uri.startswith("sqlite:///"):
        # created if missing, as MLflow itself would; a folder that cannot be made or written stops here
        folder = Path(uri[len("sqlite:///"):]).parent
        _check_folder(folder, what=where, create=True)
    try:
        with folder_lock(folder), quick_http():
            try:
                tracker = GuardedTracker.for_experiment(tracking_uri=uri, experiment=experiment)
            except Exception:  # noqa: BLE001 - another search created it this moment (a server: no lock)
                tracker = GuardedTracker.for_experiment(tracking_uri=uri, experiment=experiment)
            # a write: an existing database in a read-only folder still answers reads
            tracker.client.set_experiment_tag(tracker.experiment_id, "nasforge.last_opened",
                                              time.strftime("%Y-%m-%dT%H:%M:%S"))
            location = tracker.client.get_experiment(tracker.experiment_id).artifact_location
    except NasforgeError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the store's client raises, say which store
        raise StoreError(f"cannot write to the {where} (experiment {experiment!r}): {first_line(exc)}") from None
    local = _local_path(location)
    if local is not None:
        _check_folder(local, what=f"artifact location {location} of the {where}", create=True)
    return tracker


def check_storage(url: str) -> None:
    """Open the Optuna storage ``url`` and create and delete a probe study in it."""
    import optuna

    folder = None
    if url.startswith("sqlite:///"):
        folder = Path(url[len("sqlite:///"):]).parent
        _check_folder(folder, what=f"Optuna storage {url}", create=True)
    try:
        with folder_lock(folder):
            storage = optuna.storages.get_storage(optuna_storage(url))  # creates the tables of a new file
        study_id = storage.create_new_study([optuna.study.StudyDirection.MINIMIZE],
                                            f"nasforge-preflight-{uuid.uuid4().hex}")
        storage.delete_study(study_id)
    except Exception as exc:  # noqa: BLE001
        raise StoreError(f"cannot write to the Optuna storage {url}: {first_line(exc)}") from None


@contextlib.contextmanager
def folder_lock(folder: Path | None) -> Iterator[None]:
    """An exclusive lock on ``folder`` across processes (``flock``; no lock file is left behind)."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        fcntl = None
    if folder is None or fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _local_path(location: str | None) -> Path | None:
    """The folder of a local artifact location (``file://...`` or a plain path), else None."""
    if not location:
        return None
    if location.startswith("file:"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(location).path))
    if "://" not in location and ":" not in location.split("/")[0]:
        return Path(location)
    return None  # a server, a bucket, mlflow-artifacts:/ ... : checked by its own client


def _check_folder(folder: Path, *, what: str, create: bool) -> None:
    """``folder`` exists (or is created) and takes a small file."""
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p == p.parent)
    if existing.exists() and not existing.is_dir():
        raise StoreError(f"the {what} is in {folder}, but {existing} is a file, not a folder")
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        elif not folder.exists():
            raise StoreError(f"the {what} is in {folder}, which does not exist; create the folder first")
        if not folder.is_dir():
            raise StoreError(f"the {what} is in {folder}, which is not a folder")
        probe = folder / f".nasforge-write-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            with open(probe, "wb") as f:
                f.write(b"\0" * 4096)  # a page: a full disk fails here, not at the first trial
                f.flush()
                os.fsync(f.fileno())
        finally:
            probe.unlink(missing_ok=True)
    except StoreError:
        raise
    except OSError as exc:
        raise StoreError(f"cannot write to the {what}: {exc.strerror or first_line(exc)} ({folder})") from None
