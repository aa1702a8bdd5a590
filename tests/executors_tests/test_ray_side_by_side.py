"""Strategies side by side on a real local Ray: the workers are shared, each trial tagged with its strategy."""


import pytest
import ray  # noqa: F401 - a dev dependency: a broken install fails here, it does not skip

import nasforge
from conftest import local_ray, runs_of
from toy_family import TOY_SPACE



@pytest.fixture
def ray_local():
    with local_ray():
        yield


def test_ray_runs_strategies_side_by_side_on_shared_workers(ray_local, store, toy):
    result = nasforge.search("toy", space=TOY_SPACE, strategy=["controller", "tpe", "random"], trials=7, budget=2,
                             seed=0, backend="ray", max_concurrent=2, save_models=False, **store)
    trials = result.trials
    assert len(trials) == 7 and all(t.state.name == "COMPLETE" for t in trials)
    per = {n: sum(t.user_attrs["strategy"] == n for t in trials) for n in ("controller", "tpe", "random")}
    assert per == {"controller": 3, "tpe": 2, "random": 2}

    runs = runs_of(store["tracking_uri"], "toy-digits")
    children = runs[runs["tags.mlflow.parentRunId"] == result.parent_run_id]
    assert len(children) == 7 and set(children["status"]) == {"FINISHED"}
    for _, child in children.iterrows():
        trial = trials[int(child["tags.trial_number"])]
        assert child["tags.strategy"] == trial.user_attrs["strategy"] and child["tags.backend"] == "ray"
        assert child["run_id"] == trial.user_attrs["mlflow_run_id"] and child["tags.worker"]
    # the driver deals each free worker's next trial to the strategy with the fewest started
    order = [t.user_attrs["strategy"] for t in sorted(trials, key=lambda t: t.number)]
    assert order == ["controller", "tpe", "random"] * 2 + ["controller"]
    table = result.strategy_summary()
    assert list(table["trials"]) == [3, 2, 2] and table["best_val_accuracy"].max() == result.best_value
