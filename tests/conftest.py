import contextlib
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # toy_family
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# The models under test are tiny: one intra-op thread each. Several torch threads on a shared
# 2-core machine spin-wait and made single test modules 10x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh MLflow sqlite store and Optuna storage in a temp dir (also the cwd)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return {
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "storage": f"sqlite:///{tmp_path / 'optuna.db'}",
    }


@contextlib.contextmanager
def toy_registered():
    """The toy family, registered at run time while the block runs."""
    import nasforge
    from toy_family import ToyPlugin

    plugin = ToyPlugin()
    nasforge.register(plugin, name="toy-plugin")
    try:
        yield plugin
    finally:
        nasforge.unregister(plugin)


@pytest.fixture
def toy():
    """The toy family, registered at run time and removed afterwards."""
    with toy_registered() as plugin:
        yield plugin


@contextlib.contextmanager
def local_ray():
    """A throwaway local Ray (2 CPUs, no dashboard, no auth token file in $HOME); yields its address.

    ``address="local"``: a plain ``ray.init()`` would join whatever cluster ``ray start`` last
    started on this machine (another test run's, another user's).
    """
    import logging

    import ray

    from nasforge.executors.ray_connect import refresh_auth_settings

    saved = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    refresh_auth_settings()   # Ray caches the auth mode per process: an earlier test may have set "token"
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved


def completed_trials(storage, study_name="resumable"):
    """COMPLETE trials of a study another process is writing (0 before it exists)."""
    import time

    import optuna

    for _ in range(50):  # a busy search can hold the sqlite lock for a moment: read again
        try:
            study = optuna.load_study(study_name=study_name, storage=storage)
        except KeyError:  # the search has not created the study yet
            return 0
        except Exception:
            time.sleep(0.1)
            continue
        return sum(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False))
    return 0


# Prepended to the script of a child that a test will Ctrl-C: a shell that starts pytest in the
# background starts it with SIGINT ignored, and children inherit that and never see the signal.
CTRL_C_REACHES_PYTHON = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


def runs_of(tracking_uri, experiment):
    """Every run of an experiment as a DataFrame, read back through mlflow.search_runs."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.search_runs(experiment_names=[experiment], max_results=10_000)
