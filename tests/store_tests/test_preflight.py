"""A store that cannot be written stops the search BEFORE any trial, with a StoreError naming it."""

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import optuna
import pytest
import yaml

import nasforge
from nasforge.errors import StoreError
from nasforge.stores.http import HTTP_RETRIES, HTTP_TIMEOUT_S
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


class DownServer:
    """A real HTTP server on 127.0.0.1 that answers every request 503 (an MLflow server that is
    down behind its proxy), and records for each request its path and the MLflow HTTP settings
    this process had in force while it was made."""

    SETTINGS = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")

    def __init__(self):
        requests = self.requests = []

        class Handler(BaseHTTPRequestHandler):
            def answer(self):
                requests.append((self.path.split("?")[0], {k: os.environ.get(k) for k in DownServer.SETTINGS}))
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PATCH = do_DELETE = answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


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


def test_failing_mlflow_server_is_tried_once_per_call_with_a_short_timeout(store, toy, monkeypatch):
    # No back-off between MLflow's retries: were they not turned off, this fails in seconds (16 requests)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    server = DownServer()
    try:
        with pytest.raises(StoreError, match=f"cannot write to the MLflow store {server.url}"):
            search(store, tracking_uri=server.url)
    finally:
        server.close()
    # MLflow's own settings retry each call 7 times with back-off (minutes); the preflight asks once
    # per call, under the short timeout: the experiment is looked up, then once more (another search
    # may have created it at that moment), and nothing is retried.
    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(HTTP_RETRIES), "MLFLOW_HTTP_REQUEST_TIMEOUT": str(HTTP_TIMEOUT_S)}
    assert [path for path, _ in server.requests] == ["/api/2.0/mlflow/experiments/get-by-name"] * 2
    assert all(settings == quick for _, settings in server.requests) and quick["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    assert not set(DownServer.SETTINGS) & set(os.environ)   # the short settings were for the preflight only
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
