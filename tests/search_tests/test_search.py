"""End-to-end searches on real Optuna studies, a real sqlite MLflow store and real data."""

import math

import mlflow
import numpy as np
import optuna
import pytest
import torch
from mlflow import MlflowClient

import nasforge
from conftest import child_runs, replay_strategy, runs_of, stores_in
from nasforge.strategies.build import make_sampler
from toy_family import TOY_SPACE


@pytest.fixture(scope="module")
def mlp_search(tmp_path_factory):
    """One small real MLP search on digits, shared by the run-tree tests."""
    root = tmp_path_factory.mktemp("mlp_search")
    store = stores_in(root)
    result = nasforge.search("mlp", task="digits", space="mlp_small", strategy="random", trials=3, budget=4,
                             seed=3, **store)
    return result, store


def test_run_tree_has_a_parent_and_one_child_per_trial(mlp_search):
    result, store = mlp_search
    runs = runs_of(store["tracking_uri"], "mlp-digits")
    parents = runs[runs["tags.mlflow.parentRunId"].isna()]
    assert list(parents["run_id"]) == [result.parent_run_id]
    parent = parents.iloc[0]
    assert parent["status"] == "FINISHED"
    assert parent["params.strategy"] == "random" and parent["params.trials"] == "3"
    assert parent["tags.best_trial"] == str(result.best_trial.number)
    assert parent["metrics.best_val_accuracy"] == pytest.approx(result.best_value)

    children = child_runs(runs, result.parent_run_id)
    assert len(children) == 3 and set(children["status"]) == {"FINISHED"}
    for _, child in children.iterrows():
        n = int(child["tags.trial_number"])
        trial = result.study.trials[n]
        assert trial.user_attrs["mlflow_run_id"] == child["run_id"]
        assert child["tags.family"] == "mlp" and child["tags.task"] == "digits"
        assert child["tags.strategy"] == "random" and child["tags.backend"] == "local"
        assert child["tags.plugin"] == "mlp" and child["tags.plugin_version"] == nasforge.__version__
        assert child["tags.search_seed"] == "3" and child["tags.seed"]
        assert child["params.layers.0.units"] == str(trial.params["layers.0.units"])   # flattened
        assert child["metrics.val_accuracy"] == pytest.approx(trial.values[0])
        assert child["metrics.n_params"] > 0


def test_per_epoch_curves_are_pure_and_the_metric_holds_the_trial_result(mlp_search):
    result, store = mlp_search
    client = MlflowClient(store["tracking_uri"])
    best = result.best_trial
    run_id = best.user_attrs["mlflow_run_id"]
    history = client.get_metric_history(run_id, "curve/train_loss")
    epochs = int(best.user_attrs["metrics"]["epochs_trained"])
    assert [m.step for m in history] == list(range(1, epochs + 1))   # one point per epoch, no jump at the end
    assert history[-1].value < history[0].value  # it learned
    # the metric's own name: the trial's result (best weights restored), what Optuna and trials.csv hold
    result_points = client.get_metric_history(run_id, "val_accuracy")
    assert [p.value for p in result_points] == [best.value]
    curve = client.get_metric_history(run_id, "curve/val_accuracy")
    assert max(p.value for p in curve) == pytest.approx(best.value)
    run = client.get_run(run_id)
    assert run.info.run_name == f"trial-{best.number} {best.value:.4g} random"      # a name that says it
    parent = client.get_run(result.parent_run_id)
    assert parent.data.metrics["val_accuracy"] == best.value               # the parent's row is not "-"
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    plugins = parent.data.tags["plugins"].split(", ")
    assert len(plugins) == len(set(plugins))


def test_best_model_is_trained_and_logged_as_a_pytorch_network_and_a_served_model(mlp_search):
    result, store = mlp_search
    model = result.best_model()
    assert isinstance(model, torch.nn.Module)
    assert result.test_metrics["test_accuracy"] > 0.5  # 10 classes: chance is 0.1
    from nasforge.data.tasks import load_task

    x = torch.as_tensor(load_task("digits", 3).x_test[:16])
    mlflow.set_tracking_uri(store["tracking_uri"])
    loaded = mlflow.pytorch.load_model(result.network_uri)
    with torch.no_grad():
        np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)
        expected = model(x).argmax(dim=1).numpy()
    assert result.model_uri.startswith("models:/") and result.model_uri != result.network_uri
    served = mlflow.pyfunc.load_model(result.model_uri)        # the predictor: class labels out
    np.testing.assert_array_equal(np.asarray(served.predict(x.numpy())), expected)
    np.testing.assert_array_equal(result.predict(x.numpy()), expected)
    assert result.best_params["layers"][0]["units"] in (16, 64)  # nested, as the family receives it


def test_failed_and_nan_trials_are_recorded_and_the_search_goes_on(store, toy):
    space = {"params": {**TOY_SPACE["params"], "mode": {"choice": ["ok", "crash", "nan"]}}}
    result = nasforge.search("toy", space=space, strategy="random", trials=9, budget=3, seed=1,
                             save_models=False, **store)
    states = {t.number: t.state.name for t in result.trials}
    modes = {t.number: t.params["mode"] for t in result.trials}
    assert len(states) == 9 and {"COMPLETE", "FAIL"} <= set(states.values())
    runs = runs_of(store["tracking_uri"], "toy-digits")
    children = child_runs(runs, result.parent_run_id).set_index("tags.trial_number")
    client = MlflowClient(store["tracking_uri"])
    for n, state in states.items():
        run = children.loc[str(n)]
        if modes[n] == "ok":
            assert state == "COMPLETE" and run["status"] == "FINISHED"
            continue
        assert state == "FAIL" and run["status"] == "FAILED"
        expected = "toy crash on purpose" if modes[n] == "crash" else "loss is nan"
        assert expected in run["tags.status_reason"]
        assert expected in result.study.trials[n].user_attrs["status_reason"]
        traceback = client.download_artifacts(run["run_id"], "error.txt")
        assert "Traceback" in open(traceback).read()


def test_pruned_trials_are_killed_runs_with_a_reason(store, toy):
    result = nasforge.search("toy", space=TOY_SPACE, strategy="random", pruner="median",
                             pruner_options={"n_startup_trials": 2, "n_warmup_steps": 1},
                             trials=12, budget=6, seed=0, save_models=False, **store)
    pruned = [t for t in result.trials if t.state.name == "PRUNED"]
    assert pruned, "the median pruner stopped nothing"
    runs = runs_of(store["tracking_uri"], "toy-digits").set_index("run_id")
    for t in pruned:
        run = runs.loc[t.user_attrs["mlflow_run_id"]]
        assert run["status"] == "KILLED" and run["tags.status_reason"].startswith("pruned at epochs")
        assert max(t.intermediate_values) < 6


def test_multi_objective_search_returns_a_pareto_front(store, toy):
    result = nasforge.search("toy", space=TOY_SPACE, strategy="nsga2", trials=8, budget=2, seed=0,
                             objective=[{"metric": "val_accuracy", "direction": "maximize"}, "n_params"],
                             save_models=False, **store)
    front = result.best_trials
    assert front and result.spec.directions == ["maximize", "minimize"]
    for a in front:  # nothing in the front is dominated by another completed trial
        for b in result.completed_trials:
            assert not (b.values[0] >= a.values[0] and b.values[1] <= a.values[1] and b.values != a.values)


def test_grid_search_visits_every_combination_once(store):
    result = nasforge.search("mlp", task="digits", space="mlp_small", strategy="grid", trials=50, budget=1,
                             save_models=False, **store)
    combos = [tuple(sorted(t.params.items())) for t in result.trials]
    assert len(combos) == len(set(combos)) == 8


# Each strategy, its Optuna sampler, options that take it past its random start-up trials within
# 4 trials, a space it models (CMA-ES leaves categorical and 1-D spaces to random sampling), and
# the trials it can run (brute force stops once it has tried each of the 3 configurations once).
WIDTH_INT = {"params": {**TOY_SPACE["params"], "width": {"int": [4, 16]}}}
THREE_CONFIGS = {"params": {"lr": {"choice": [0.1, 0.3, 0.5]}, "width": 4}}
STRATEGIES = {
    "random": (optuna.samplers.RandomSampler, {}, TOY_SPACE, 4),
    "tpe": (optuna.samplers.TPESampler, {"n_startup_trials": 2}, TOY_SPACE, 4),
    "cmaes": (optuna.samplers.CmaEsSampler, {"n_startup_trials": 1}, WIDTH_INT, 4),
    "gp": (optuna.samplers.GPSampler, {"n_startup_trials": 2}, WIDTH_INT, 4),
    "qmc": (optuna.samplers.QMCSampler, {}, TOY_SPACE, 4),
    "bruteforce": (optuna.samplers.BruteForceSampler, {}, THREE_CONFIGS, 3),
}


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_every_builtin_strategy_runs_its_own_sampler(store, toy, strategy):
    sampler_class, options, space, n_trials = STRATEGIES[strategy]
    result = nasforge.search("toy", space=space, strategy=strategy, strategy_options=options, trials=4, budget=2,
                             seed=0, save_models=False, **store)
    assert len(result.completed_trials) == len(result.trials) == n_trials and math.isfinite(result.best_value)
    assert type(result.study.sampler) is sampler_class
    # The study's trials are what that sampler, built again with the search's seed, proposes when
    # told the same outcomes one by one; a random sampler (a silent fallback) would have proposed others.
    replayed = replay_strategy(make_sampler(result.spec), result.spec.space, result.trials,
                               directions=result.spec.directions)
    assert replayed == [t.params for t in result.trials]
    if strategy == "bruteforce":
        assert sorted(t.params["lr"] for t in result.trials) == [0.1, 0.3, 0.5]
    if strategy != "random":
        fallback = replay_strategy(optuna.samplers.RandomSampler(seed=0), result.spec.space, result.trials,
                                   directions=result.spec.directions)
        assert fallback != replayed


def test_same_seed_same_configurations_and_results(tmp_path, toy):
    def run(name):
        return nasforge.search("toy", space=TOY_SPACE, strategy="tpe", trials=6, budget=3, seed=7,
                               save_models=False, tracking_uri=f"sqlite:///{tmp_path / name}.db",
                               storage=f"sqlite:///{tmp_path / name}-optuna.db")

    a, b = run("a"), run("b")
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.values for t in a.trials] == [t.values for t in b.trials]
    c = nasforge.search("toy", space=TOY_SPACE, strategy="tpe", trials=3, budget=3, seed=8,
                        save_models=False, tracking_uri=f"sqlite:///{tmp_path / 'c'}.db",
                        storage=f"sqlite:///{tmp_path / 'c'}-optuna.db")
    assert [t.params for t in c.trials] != [t.params for t in a.trials[:3]]
