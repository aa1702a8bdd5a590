"""The Ray executor on a real local Ray (2 CPUs): same run tree as locally, schedulers, failures, resume."""

import re
import signal

import optuna
import pytest
import ray  # noqa: F401 - a dev dependency: a broken install fails here, it does not skip
from mlflow import MlflowClient

import nasforge
from conftest import child_runs, completed_trials, local_ray, runs_of, stores_in
from kill_and_resume import check_resumed_search, interrupt_search
from toy_family import SLOW_TOY_SPACE, TOY_SPACE, ToyPlugin

WORKER_TAGS = {"tags.worker_node", "tags.worker"}


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray for the module (starting Ray takes seconds); shut down afterwards."""
    with local_ray():
        yield


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray_stores")
    return stores_in(root)


@pytest.fixture(scope="module")
def toy_module():
    from executors_tests.ray_families import RayTestPlugin

    plugins = {"toy-plugin": ToyPlugin(), "ray-test-plugin": RayTestPlugin()}
    for name, plugin in plugins.items():
        nasforge.register(plugin, name=name)
    try:
        yield
    finally:
        for plugin in plugins.values():
            nasforge.unregister(plugin)


def _keys(row, prefix):
    return {k for k, v in row.items() if k.startswith(prefix) and v == v and v is not None}  # v == v: not NaN


# -- the same search on both executors -------------------------------------------------------
def test_ray_run_tree_has_the_local_structure(ray_local, stores, toy_module):
    kwargs = dict(space=TOY_SPACE, strategy="random", trials=3, budget=3, seed=7, **stores)
    local = nasforge.search("toy", experiment="same-local", **kwargs)
    remote = nasforge.search("toy", experiment="same-ray", backend="ray", **kwargs)

    assert [t.state for t in remote.trials] == [t.state for t in local.trials]
    assert [t.params for t in remote.trials] == [t.params for t in local.trials]   # same seed, same sampler
    for a, b in zip(local.trials, remote.trials):
        assert set(a.user_attrs) == set(b.user_attrs) and set(a.intermediate_values) == set(b.intermediate_values)
        assert b.values == pytest.approx(a.values, abs=1e-4)   # same trial seed, same CPU arithmetic

    uri = stores["tracking_uri"]
    parents = {name: runs_of(uri, name) for name in ("same-local", "same-ray")}
    p_local = parents["same-local"].set_index("run_id").loc[local.parent_run_id]
    p_ray = parents["same-ray"].set_index("run_id").loc[remote.parent_run_id]
    assert p_local["status"] == p_ray["status"] == "FINISHED"
    assert _keys(p_ray, "tags.") == _keys(p_local, "tags.") and p_ray["tags.backend"] == "ray"
    assert _keys(p_ray, "metrics.") == _keys(p_local, "metrics.")
    ray_only = _keys(p_ray, "params.") - _keys(p_local, "params.")
    assert ray_only and all(k.startswith("params.ray.") for k in ray_only)

    c_local = child_runs(runs_of(uri, "same-local"), local.parent_run_id).set_index("tags.trial_number").sort_index()
    c_ray = child_runs(runs_of(uri, "same-ray"), remote.parent_run_id).set_index("tags.trial_number").sort_index()
    assert list(c_ray.index) == list(c_local.index) == ["0", "1", "2"]
    assert list(c_ray["status"]) == list(c_local["status"]) == ["FINISHED"] * 3
    for number in c_local.index:
        a, b = c_local.loc[number], c_ray.loc[number]
        assert _keys(b, "tags.") == _keys(a, "tags.") | WORKER_TAGS
        assert _keys(b, "params.") == _keys(a, "params.")
        assert _keys(b, "metrics.") == _keys(a, "metrics.")
        assert {k: b[k] for k in _keys(a, "params.")} == {k: a[k] for k in _keys(a, "params.")}
        assert b["tags.backend"] == "ray" and b["tags.seed"] == a["tags.seed"]
        assert remote.trials[int(number)].user_attrs["mlflow_run_id"] == b["run_id"]

    # per-epoch curves with the epoch as step, the weights saved by the worker, the best model rebuilt
    client = MlflowClient(uri)
    run_id = remote.best_trial.user_attrs["mlflow_run_id"]
    assert [m.step for m in client.get_metric_history(run_id, "curve/val_loss")] == [1, 2, 3]   # one point per epoch
    assert [m.step for m in client.get_metric_history(run_id, "val_loss")] == [3]            # the trial's result
    assert remote.test_metrics["test_accuracy"] == pytest.approx(local.test_metrics["test_accuracy"], abs=1e-4)


# -- a scheduler, a crashing configuration ---------------------------------------------------
ASHA_SPACE = {"params": {"lr": {"float": [0.003, 3.0], "log": True}, "width": {"choice": [4, 16]},
                         "mode": {"choice": ["ok", "crash"]}}}
ASHA_BUDGET = 9


@pytest.fixture(scope="module")
def asha_search(ray_local, stores, toy_module):
    # One trial at a time: the order of results, hence ASHA's decisions, is the same on every run.
    return nasforge.search("brittle", task="digits", space=ASHA_SPACE, strategy="random", trials=8,
                           budget=ASHA_BUDGET, seed=0, backend="ray", scheduler="asha", max_concurrent=1,
                           experiment="asha", **stores)


def test_scheduler_stops_trials_which_become_pruned_with_killed_runs(asha_search, stores):
    result = asha_search
    states = [t.state.name for t in result.trials]
    assert "PRUNED" in states and "COMPLETE" in states
    children = child_runs(runs_of(stores["tracking_uri"], "asha"), result.parent_run_id).set_index("tags.trial_number")
    assert len(children) == len(result.trials) == 8 and "RUNNING" not in set(children["status"])
    client = MlflowClient(stores["tracking_uri"])
    for trial in result.trials:
        run = children.loc[str(trial.number)]
        assert run["run_id"] == trial.user_attrs["mlflow_run_id"]
        if trial.state.name == "PRUNED":
            reason = trial.user_attrs["status_reason"]
            step = int(re.fullmatch(r"stopped by the asha scheduler at epochs (\d+)", reason).group(1))
            assert step < ASHA_BUDGET and max(trial.intermediate_values) == step
            assert run["status"] == "KILLED" and run["tags.status_reason"] == reason
            assert run["tags.nasforge_status"] == "pruned"
            assert [m.step for m in client.get_metric_history(run["run_id"], "curve/val_accuracy")][-1] == step
        elif trial.state.name == "COMPLETE":
            assert sorted(trial.intermediate_values) == list(range(1, ASHA_BUDGET + 1))
            assert run["status"] == "FINISHED" and trial.user_attrs["metrics"]["val_accuracy"] == trial.values[0]


def test_a_trial_that_raises_is_recorded_failed_and_not_retried(asha_search, stores):
    result = asha_search
    failed = [t for t in result.trials if t.state.name == "FAIL"]
    assert failed, [(t.params["mode"], t.state.name) for t in result.trials]
    children = child_runs(runs_of(stores["tracking_uri"], "asha"), result.parent_run_id)
    client = MlflowClient(stores["tracking_uri"])
    for trial in failed:
        assert trial.params["mode"] == "crash"
        assert trial.user_attrs["status_reason"] == "RuntimeError: brittle crash on purpose"
        runs = children[children["tags.trial_number"] == str(trial.number)]
        assert len(runs) == 1   # a recorded failure, not a Ray error: FailureConfig does not retry it
        run = runs.iloc[0]
        assert run["status"] == "FAILED" and run["tags.status_reason"] == trial.user_attrs["status_reason"]
        assert [a.path for a in client.list_artifacts(run["run_id"])] == ["error.txt"]
    # the search went on after the failure
    assert any(t.state.name == "COMPLETE" and t.number > failed[0].number for t in result.trials)


# -- a worker process that dies --------------------------------------------------------------
def test_a_trial_whose_worker_dies_is_retried(ray_local, stores, toy_module, tmp_path):
    space = {"params": {"lr": {"float": [0.05, 0.5]}, "die_once": str(tmp_path / "died")}}
    result = nasforge.search("fragile", task="digits", space=space, strategy="random", trials=2, budget=3,
                             seed=0, backend="ray", max_failures=1, experiment="fragile", **stores)
    assert (tmp_path / "died").exists()
    assert [t.state.name for t in result.trials] == ["COMPLETE", "COMPLETE"]
    children = child_runs(runs_of(stores["tracking_uri"], "fragile"), result.parent_run_id)
    assert len(children) == 3   # the died attempt, its retry, the other trial
    killed = children[children["status"] == "KILLED"]
    assert len(killed) == 1 and "worker died" in killed.iloc[0]["tags.status_reason"]
    retried = result.trials[int(killed.iloc[0]["tags.trial_number"])]
    finished = children[children["status"] == "FINISHED"]
    assert sorted(finished["run_id"]) == sorted(t.user_attrs["mlflow_run_id"] for t in result.trials)
    assert retried.user_attrs["mlflow_run_id"] != killed.iloc[0]["run_id"]


# -- the driver is interrupted, then killed ------------------------------------------------------
TARGET = 8


def test_an_interrupted_then_killed_driver_resumes_without_duplicates(ray_local, stores, toy_module):
    uri, storage = stores["tracking_uri"], stores["storage"]
    # Each driver runs in its own process with its own Ray; one paced trial at a time.
    search = dict(family="toy", space=SLOW_TOY_SPACE, strategy="tpe", trials=TARGET, budget=10, seed=0, backend="ray",
                  max_concurrent=1, study_name="resumable", experiment="resumable", **stores)
    # Ctrl-C: the trials in flight are settled and their runs closed before the driver exits
    output = interrupt_search(search, completed=2, sig=signal.SIGINT)
    assert "resume=True" in output, output
    study = optuna.load_study(study_name="resumable", storage=storage)
    assert all(t.state.name != "RUNNING" for t in study.trials)
    runs = runs_of(uri, "resumable")
    assert "RUNNING" not in set(runs["status"]) and "KILLED" in set(runs["status"])   # the parent, at least
    # kill -9 of a resumed driver: its Ray dies with it, the trial in flight stays RUNNING in the study
    interrupt_search({**search, "resume": True}, completed=min(completed_trials(storage) + 1, TARGET - 1),
                     sig=signal.SIGKILL)
    assert 3 <= completed_trials(storage) < TARGET

    result = nasforge.search(**{**search, "max_concurrent": None}, resume=True)
    counts = check_resumed_search(result, stores, TARGET, experiment="resumable")
    children = counts["children"]
    assert set(children[children["status"] == "KILLED"]["tags.status_reason"]) <= {
        "interrupted (process killed)", "interrupted (KeyboardInterrupt)"}
