"""A weight-sharing search on Ray: the supernet phase as one task on a worker, its picks as Ray trials."""

import os

import pytest

import nasforge
from conftest import local_ray, runs_of
from nasforge.strategies.oneshot.phase_options import TOP_ATTR

ray = pytest.importorskip("ray")

TINY = {"supernet_epochs": 2, "controller_steps": 2, "controller_batch": 4, "candidates": 12, "finalists": 3,
        "finetune_epochs": 1}
OPTIONS = {"enas": TINY, "darts": {"supernet_epochs": 1, "candidates": 8}}


@pytest.mark.parametrize("strategy", ["enas", "darts"])
def test_the_supernet_phase_runs_on_a_worker_and_the_picks_as_ray_trials(store, strategy, capsys):
    kwargs = dict(task="digits", strategy=strategy, trials=2, budget=1, seed=5, strategy_options=OPTIONS[strategy],
                  **store)
    local = nasforge.search("mlp", experiment="ws-local", **kwargs)
    with local_ray():
        capsys.readouterr()
        remote = nasforge.search("mlp", experiment="ws-ray", backend="ray", progress=True, **kwargs)
    epochs, err = OPTIONS[strategy]["supernet_epochs"], capsys.readouterr().err
    assert f"supernet ({strategy}): 100%" in err and f"| {epochs}/{epochs} [" in err   # the worker's epochs, here

    def top(result):
        return result.study._storage.get_study_system_attrs(result.study._study_id)[TOP_ATTR]

    assert top(remote) == top(local)   # the same seeded phase, wherever it runs
    assert [t.params for t in remote.trials] == [t.params for t in local.trials]
    runs = runs_of(store["tracking_uri"], "ws-ray")
    phase = runs[runs["tags.phase"] == "supernet"].iloc[0]
    assert phase["status"] == "FINISHED" and phase["tags.mlflow.parentRunId"] == remote.parent_run_id
    assert phase["tags.worker"].rsplit(":", 1)[1] != str(os.getpid()) and phase["tags.worker_gpus"] == "none"
    retrain = runs[runs["tags.phase"] == "retrain"]
    assert len(retrain) == 2 and set(retrain["status"]) == {"FINISHED"} and retrain["tags.worker"].notna().all()
