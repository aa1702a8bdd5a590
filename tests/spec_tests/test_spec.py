"""Bad input stops before any trial runs, with an error naming the value and the choices."""

import pytest

import nasforge
from nasforge.errors import ConfigError, NasforgeError, SpaceError, SpecError, UnknownNameError
from nasforge.spec.arguments import build_spec
from toy_family import TOY_SPACE


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(family="transformer"), UnknownNameError, "unknown family 'transformer'; known: .*mlp"),
    (dict(task="mnist"), UnknownNameError, "unknown task 'mnist'; known: .*breast_cancer.*diabetes.*digits.*mnist1d"),
    (dict(strategy="bayes"), UnknownNameError, "unknown strategy 'bayes'; known: .*tpe"),
    (dict(pruner="asha"), UnknownNameError, "unknown pruner 'asha'; known: .*median"),
    (dict(trials=0), SpecError, "trials must be an integer >= 1, got 0"),
    (dict(seed=-1), SpecError, "seed must be an integer >= 0"),
    (dict(n_jobs=0), SpecError, "n_jobs"),
    (dict(timeout=-5), SpecError, "timeout must be a positive"),
    (dict(objective="val_f1"), SpecError, "never reports metric 'val_f1' on task 'digits'; it reports: val_accuracy"),
    (dict(objective={"metric": "val_accuracy", "direction": "up"}), SpecError, "direction must be one of maximize, minimize"),
    (dict(objective=["val_accuracy", "n_params"], strategy="cmaes"), SpecError, "single objective.*nsga2"),
    (dict(objective=["val_accuracy", "n_params"], strategy="nsga2", pruner="median"), SpecError, "multi-objective"),
    (dict(backend="spark"), SpecError, "unknown backend 'spark'; valid backends: local"),
    (dict(budget={"epochs": 0}), SpecError, "budget.epochs must be an integer >= 1"),
    (dict(budget="long"), SpecError, "budget must be an integer number of epochs"),
    (dict(strategy="grid"), SpaceError, "continuous float"),
    (dict(space={"params": {"lr": {"float": [0.1, 1]}, "colour": {"choice": ["red"]}}}), SpecError,
     "params.colour: family 'mlp' has no such config field"),
    (dict(space={"family": "cnn", "params": {"lr": 0.1}}), SpecError, "is for family 'cnn', not 'mlp'"),
    (dict(strategy_options={"n_startup": 3}), SpecError, "strategy 'tpe' rejected its options"),
    (dict(tracking_uri="mlflow.db"), SpecError, "is not a URI"),
    (dict(study_name="a b"), SpecError, "study_name"),
])
def test_bad_specs_fail_up_front(store, kwargs, error, message):
    args = dict(family="mlp", task="digits", **store)
    args.update(kwargs)
    family = args.pop("family")
    with pytest.raises(error, match=message) as info:
        nasforge.search(family, **args)
    assert isinstance(info.value, NasforgeError)
    assert not (store["tracking_uri"].startswith("sqlite:///") and
                __import__("pathlib").Path(store["tracking_uri"][10:]).exists()), "a store was written"


def test_family_that_cannot_handle_the_task_names_both(toy, store):
    with pytest.raises(ConfigError, match="family 'toy' cannot handle task 'diabetes' of kind 'regression'"):
        build_spec("toy", task="diabetes", space=TOY_SPACE, **store)


def test_defaults_come_from_family_and_space(store):
    spec = build_spec("mlp", task="diabetes", **store)
    assert spec.objectives[0].metric == "val_rmse" and spec.objectives[0].direction == "minimize"
    assert spec.budget == {"epochs": 20} and spec.experiment == "mlp-diabetes"
    spec = build_spec("mlp", task="digits", objective="n_params", budget=3, **store)
    assert (spec.objectives[0].direction, spec.budget) == ("minimize", {"epochs": 3})


def test_existing_study_needs_resume(store, toy):
    nasforge.search("toy", space=TOY_SPACE, trials=1, budget=1, study_name="s1", save_models=False, **store)
    with pytest.raises(SpecError, match="study 's1' already exists.*resume=True"):
        nasforge.search("toy", space=TOY_SPACE, trials=1, study_name="s1", **store)
    with pytest.raises(SpecError, match="nothing to resume"):
        nasforge.search("mlp", task="digits", trials=1, resume=True, **store)
