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


@pytest.fixture
def toy():
    """The toy family, registered at run time and removed afterwards."""
    import nasforge
    from toy_family import ToyPlugin

    plugin = ToyPlugin()
    nasforge.register(plugin, name="toy-plugin")
    try:
        yield plugin
    finally:
        nasforge.unregister(plugin)


# Prepended to the script of a child that a test will Ctrl-C: a shell that starts pytest in the
# background starts it with SIGINT ignored, and children inherit that and never see the signal.
CTRL_C_REACHES_PYTHON = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


def runs_of(tracking_uri, experiment):
    """Every run of an experiment as a DataFrame, read back through mlflow.search_runs."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.search_runs(experiment_names=[experiment], max_results=10_000)
