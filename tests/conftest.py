import contextlib
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # toy_family
# The kill-and-resume harness asserts for its callers: show what differed, as in a test module.
pytest.register_assert_rewrite("kill_and_resume")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# The models under test are tiny: one intra-op thread each. Several torch threads on a shared
# 2-core machine spin-wait and made single test modules 10x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def stores_in(folder: Path) -> dict:
    """The ``tracking_uri`` and ``storage`` arguments of a search whose sqlite stores live in ``folder``."""
    return {"tracking_uri": f"sqlite:///{folder / 'mlflow.db'}", "storage": f"sqlite:///{folder / 'optuna.db'}"}


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh MLflow sqlite store and Optuna storage in a temp dir (also the cwd)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return stores_in(tmp_path)


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

    for attempt in range(50):
        try:
            study = optuna.load_study(study_name=study_name, storage=storage)
            return sum(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False))
        except KeyError:  # the search has not created the study yet
            return 0
        except Exception:
            # the search holds the sqlite lock, or is creating the tables, for a moment: read again;
            # an error that lasts 5 s is a real one, not "no trial completed"
            if attempt == 49:
                raise
            time.sleep(0.1)


# Prepended to the script of a child that a test will Ctrl-C: a shell that starts pytest in the
# background starts it with SIGINT ignored, and children inherit that and never see the signal.
CTRL_C_REACHES_PYTHON = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


def runs_of(tracking_uri, experiment):
    """Every run of an experiment as a DataFrame, read back through mlflow.search_runs."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.search_runs(experiment_names=[experiment], max_results=10_000)


def task_for(family) -> str:
    """The family's default task, else the first registered task (by name) of a kind it supports."""
    from nasforge.plugins import get_registry

    registry = get_registry()
    default = getattr(family, "default_task", None)
    if default in registry.names("task"):
        return default
    for name in registry.names("task"):
        if registry.get("task", name).kind in family.task_kinds:
            return name
    pytest.fail(f"no registered task of a kind family {family.name!r} supports ({', '.join(family.task_kinds)})")


def child_runs(runs, parent_run_id):
    """The rows of ``runs`` (a ``runs_of`` frame) that are child runs of ``parent_run_id``."""
    return runs[runs["tags.mlflow.parentRunId"] == parent_run_id]


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a module of tiny models (restored afterwards): on a busy
    2-core machine two threads made such modules ~15x slower (OpenMP spin-waits)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def replay_strategy(sampler, space, trials, *, directions, others=()):
    """The params ``sampler`` suggests when it sees a history grow as ``trials`` did in a search.

    A fresh in-memory study runs one trial per recorded one, in order: sampled through ``space``
    (as a search samples), then given that trial's recorded reports and outcome. ``others``
    (another strategy's trials) join the history before every trial numbered after them. Built
    with the search's seed, a sampler that saw exactly ``trials`` suggests exactly their params.
    """
    import optuna

    class Failed(Exception):
        pass

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=directions, sampler=sampler)
    records = sorted(trials, key=lambda t: t.number)
    waiting = sorted(others, key=lambda t: t.number)
    suggested = []

    def add_waiting(*_):
        following = records[len(suggested)].number if len(suggested) < len(records) else float("inf")
        while waiting and waiting[0].number < following:
            study.add_trial(waiting.pop(0))

    def objective(trial):
        recorded = records[len(suggested)]
        space.sample(trial)
        suggested.append(trial.params)
        for step, value in sorted(recorded.intermediate_values.items()):
            trial.report(value, step)
        if recorded.state.name == "PRUNED":
            raise optuna.TrialPruned()
        if recorded.state.name != "COMPLETE":
            raise Failed()
        return recorded.values[0] if len(recorded.values) == 1 else recorded.values

    add_waiting()
    # optimize, not ask and tell: a sampler may end the study from inside (a covered brute-force space)
    study.optimize(objective, n_trials=len(records), catch=(Failed,), callbacks=[add_waiting])
    return suggested
