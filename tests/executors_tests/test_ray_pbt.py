"""Population Based Training on a real local Ray: exploits copy checkpoints, MLflow shows them."""

import json

import pytest
import ray  # noqa: F401 - a dev dependency: a broken install fails here, it does not skip
import torch
from mlflow import MlflowClient

import nasforge
from conftest import local_ray, runs_of
from nasforge.errors import SpecError
from toy_family import TOY_SPACE, ToyPlugin

PBT_SPACE = {
    "family": "mlp",
    "params": {
        "n_layers": 1,
        "layers": {"repeat": "n_layers", "params": {"units": {"int": [16, 48]}}},   # the architecture varies
        "lr": {"float": [1.0e-4, 3.0e-2], "log": True},
        "weight_decay": {"float": [0.0, 1.0e-3]},
        "batch_size": 128,
        "patience": None,
    },
}
PBT_OPTIONS = {"perturbation_interval": 2, "quantile_fraction": 0.5}


@pytest.fixture(scope="module")
def ray_local():
    with local_ray():
        yield


def test_pbt_exploits_copy_checkpoints_and_mlflow_shows_them(ray_local, tmp_path) -> None:
    # One trial at a time (2 CPUs per trial on the 2-CPU Ray): the four trials take turns in a fixed
    # order (PBT resumes the one furthest behind), so which trial is weak at which perturbation, and
    # hence every exploit, is the same on every run. Two at a time, which of the two reported first
    # decided whether the weaker one found a donor with a checkpoint, and a loaded machine saw none.
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = nasforge.search("mlp", task="digits", space=PBT_SPACE, strategy="random", trials=4,
                             budget={"epochs": 8}, seed=0, backend="ray", scheduler="pbt", cpus_per_trial=2,
                             scheduler_options=PBT_OPTIONS, experiment="pbt", tracking_uri=uri,
                             storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert result.spec.scheduler_options["hyperparam_mutations"] == {   # default: the space's training floats
        "lr": {"low": 1.0e-4, "high": 3.0e-2, "log": True}, "weight_decay": {"low": 0.0, "high": 1.0e-3, "log": False}}
    assert [t.state.name for t in result.trials] == ["COMPLETE"] * 4

    runs = runs_of(uri, "pbt")
    children = runs[runs["tags.mlflow.parentRunId"] == result.parent_run_id]
    assert len(children) == 4                                        # one child run per trial, exploits included
    assert set(children["status"]) == {"FINISHED"}
    assert "tags.pbt_exploits" in children.columns, "no trial exploited another"
    exploited = children[children["tags.pbt_exploits"].notna()]
    assert len(exploited) >= 1
    client = MlflowClient(uri)
    for _, run in exploited.iterrows():
        run_id = run["run_id"]
        local = client.download_artifacts(run_id, "pbt/lineage.json", str(tmp_path / run_id))
        with open(local) as f:
            lineage = json.load(f)
        assert len(lineage) == int(run["tags.pbt_exploits"])
        last = lineage[-1]
        assert str(last["donor_trial"]) == run["tags.pbt_last_donor_trial"]
        assert last["donor_run_id"] in set(children["run_id"]) - {run_id}
        assert set(last["changed"]) == {"lr", "weight_decay"}
        lr_history = client.get_metric_history(run_id, "pbt.lr")
        assert lr_history and lr_history[-1].value == pytest.approx(json.loads(run["tags.pbt_params"])["lr"])
        # The run's epochs: its own, then on from the donor's checkpoint (the restored step).
        steps = [m.step for m in client.get_metric_history(run_id, "curve/val_accuracy")]
        restored = int(run["tags.pbt_restored_step"])
        assert restored + 1 in steps and max(steps) == 8

    # Final metrics are the trial's last; the study records the config its weights ended in.
    for trial in result.trials:
        run = children[children["run_id"] == trial.user_attrs["mlflow_run_id"]].iloc[0]
        assert run["metrics.val_accuracy"] == pytest.approx(trial.value)
        assert ("final_params" in trial.user_attrs) == (run["run_id"] in set(exploited["run_id"]))
    model = result.best_model()
    out = model(torch.zeros(3, 64))
    assert out.shape == (3, 10)


def _pbt(**overrides):
    kwargs = dict(task="digits", space=PBT_SPACE, strategy="random", trials=4, budget={"epochs": 8},
                  backend="ray", scheduler="pbt", scheduler_options=PBT_OPTIONS)
    kwargs.update(overrides)
    family = kwargs.pop("family", "mlp")
    return nasforge.search(family, **kwargs)


def test_pbt_refuses_a_family_without_checkpoints(tmp_path) -> None:
    plugin = ToyPlugin()
    nasforge.register(plugin, name="toy-pbt")
    try:
        with pytest.raises(SpecError, match=r"family 'toy' does not save or restore checkpoints.*mlp"):
            _pbt(family="toy", task="digits", space=TOY_SPACE, budget=8, tracking_uri=f"sqlite:///{tmp_path}/m.db")
    finally:
        nasforge.unregister(plugin)
    assert not (tmp_path / "m.db").exists()   # refused while checking the spec: no store, no Ray trial


@pytest.mark.parametrize(("options", "message"), [
    ({"hyperparam_mutations": {"units": None}}, r"cannot change 'units' on a built model.*mutable: lr"),
    ({"hyperparam_mutations": ["dropout"]}, r"cannot change 'dropout'"),
    ({"hyperparam_mutations": {"momentum": [0.1, 0.9]}}, r"does not sample 'momentum' as a float"),
    ({"hyperparam_mutations": {"lr": [0.1, 0.01]}}, r"low < high"),
    ({"perturbation_interval": 8}, r"must be below the budget"),
    ({"burn_in": 2}, r"no option 'burn_in'; valid options: perturbation_interval"),
    ({"quantile_fraction": 0.7}, r"quantile_fraction must be"),
])
def test_pbt_refuses_bad_options_before_ray_starts(tmp_path, options, message) -> None:
    with pytest.raises(SpecError, match=message):
        _pbt(scheduler_options=options, tracking_uri=f"sqlite:///{tmp_path}/m.db")
    assert not (tmp_path / "m.db").exists()


def test_pbt_refuses_max_concurrent(tmp_path) -> None:
    with pytest.raises(SpecError, match=r"max_concurrent=2 does not apply to scheduler='pbt'.*cpus_per_trial"):
        _pbt(max_concurrent=2, tracking_uri=f"sqlite:///{tmp_path}/m.db")
    assert not (tmp_path / "m.db").exists()


def test_pbt_refuses_a_learning_strategy(tmp_path) -> None:
    with pytest.raises(SpecError, match=r"strategy 'tpe' cannot run with pbt, use one of: random"):
        _pbt(strategy="tpe", tracking_uri=f"sqlite:///{tmp_path}/m.db")
