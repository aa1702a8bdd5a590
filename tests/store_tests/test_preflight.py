"""A store that cannot be written stops the search BEFORE any trial, with a StoreError naming it."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

import nasforge
from nasforge.errors import StoreError
from nasforge.stores.preflight import check_storage
from toy_family import TOY_SPACE

DRIVER = Path(__file__).with_name("search_driver.py")


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder this process cannot write: chmod 555, or, for root (who ignores modes), /sys."""
    if os.geteuid() == 0:
        yield Path("/sys")
        return
    path = tmp_path / "readonly"
    path.mkdir()
    path.chmod(0o555)
    yield path
    path.chmod(0o755)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def search(store, **kwargs):
    return nasforge.search("toy", task="digits", space=TOY_SPACE, trials=2, budget=1, save_models=False,
                           **{**store, **kwargs})


def assert_no_trial_ran(store):
    db = Path(store["storage"][len("sqlite:///"):])
    if db.exists():
        summaries = optuna.get_all_study_summaries(store["storage"], include_best_trial=False)
        assert sum(s.n_trials for s in summaries) == 0


@pytest.mark.parametrize("where, message", [
    ("file/mlflow.db", "is a file, not a folder"),
    ("file/deeper/mlflow.db", "is a file, not a folder"),
    ("READONLY/mlflow.db", "cannot write to the MLflow store"),
    ("READONLY/new/mlflow.db", "cannot write to the MLflow store"),
])
def test_unwritable_tracking_location(store, toy, tmp_path, readonly_dir, where, message):
    (tmp_path / "file").write_text("not a folder")
    path = Path(str(tmp_path / where).replace(str(tmp_path / "READONLY"), str(readonly_dir)))
    with pytest.raises(StoreError, match=message) as info:
        search(store, tracking_uri=f"sqlite:///{path}")
    assert str(path.parent) in str(info.value) or str(readonly_dir) in str(info.value)
    assert_no_trial_ran(store)


@pytest.mark.parametrize("where, message", [
    ("file/optuna.db", "is a file, not a folder"),
    ("READONLY/optuna.db", "cannot write to the Optuna storage"),
])
def test_unwritable_optuna_storage(tmp_path, readonly_dir, where, message):
    (tmp_path / "file").write_text("not a folder")
    path = Path(str(tmp_path / where).replace(str(tmp_path / "READONLY"), str(readonly_dir)))
    with pytest.raises(StoreError, match=message):
        check_storage(f"sqlite:///{path}")  # (search() checks the MLflow store first, then this)


def test_unreachable_mlflow_server_fails_fast(store, toy):
    uri = f"http://127.0.0.1:{closed_port()}"
    started = time.perf_counter()
    with pytest.raises(StoreError, match=f"cannot write to the MLflow store {uri}"):
        search(store, tracking_uri=uri)
    assert time.perf_counter() - started < 20  # MLflow's own retries would take minutes
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ  # the short timeouts were for the preflight only
    assert_no_trial_ran(store)


def test_full_disk_stops_before_any_trial(tmp_path):
    """RLIMIT_FSIZE=0: every write that grows a file fails with EFBIG, like a full disk."""
    space = tmp_path / "toy.yaml"
    space.write_text(yaml.safe_dump(TOY_SPACE))
    job = {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "storage": f"sqlite:///{tmp_path / 'optuna.db'}",
           "experiment": "full", "study_name": "full", "trials": 2, "space": str(space), "fsize_limit": 0, "cli": True}
    proc = subprocess.run([sys.executable, str(DRIVER), json.dumps(job)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("nasforge: error: cannot write to the MLflow store") and "File too large" in lines[-1]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "optuna.db").exists()
