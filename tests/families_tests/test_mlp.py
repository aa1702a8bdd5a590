"""The MLP family learns on real data, validates its config and fails loudly on divergence."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nasforge import training
from nasforge.data.builtin_tasks import load_breast_cancer_task, load_diabetes_task, load_digits_task
from nasforge.errors import ConfigError
from nasforge.spec.space import SearchSpace
from nasforge.testing import fit_once as train
from nasforge_mlp import MLPFamily


@pytest.fixture(scope="module")
def family() -> MLPFamily:
    return MLPFamily()


@pytest.fixture(scope="module")
def digits():
    return load_digits_task(0)


@pytest.fixture(scope="module")
def breast_cancer():
    return load_breast_cancer_task(0)


@pytest.fixture(scope="module")
def diabetes():
    return load_diabetes_task(0)


# -- learning ----------------------------------------------------------------------------
def test_learns_digits(family, digits) -> None:
    model, metrics, _ = train(family, digits, {"layers": [{"units": 64}], "lr": 3e-3}, 20)
    assert metrics["val_accuracy"] > 0.9
    assert family.evaluate(model, digits)["test_accuracy"] > 0.9  # chance is 0.1; measured ~0.96


def test_learns_breast_cancer(family, breast_cancer) -> None:
    model, _, _ = train(family, breast_cancer, {"layers": [{"units": 32}], "lr": 3e-3}, 20)
    assert family.evaluate(model, breast_cancer)["test_accuracy"] > 0.9  # majority class is 0.63


def test_learns_diabetes_better_than_the_mean(family, diabetes) -> None:
    model, metrics, _ = train(family, diabetes, {"layers": [{"units": 32}], "lr": 3e-3}, 30)
    # Predicting the training mean gives an RMSE of ~1.05 on val and ~0.90 on test (y is standardized).
    baseline_val = np.sqrt(((diabetes.y_val - diabetes.y_train.mean()) ** 2).mean())
    baseline_test = np.sqrt(((diabetes.y_test - diabetes.y_train.mean()) ** 2).mean())
    assert metrics["val_rmse"] < 0.8 * baseline_val        # measured ~0.69 vs 1.05
    assert metrics["val_r2"] > 0.4
    assert family.evaluate(model, diabetes)["test_rmse"] < 0.95 * baseline_test  # ~0.79 vs 0.90


# -- the training loop ---------------------------------------------------------------------
def test_reports_every_epoch_and_returns_the_restored_best(family, breast_cancer) -> None:
    model, metrics, reporter = train(family, breast_cancer, {"lr": 3e-2, "patience": 2}, 30)
    steps = [step for step, _ in reporter.history]
    assert steps == list(range(1, len(steps) + 1)) and metrics["epochs_trained"] == len(steps)
    assert len(steps) < 30, "a high lr with patience 2 should stop early"
    assert set(reporter.history[0][1]) == {"train_loss", "val_accuracy", "val_loss"}
    best = min(reported["val_loss"] for _, reported in reporter.history)
    assert metrics["val_loss"] == best
    assert family.evaluate(model, breast_cancer, split="val") == pytest.approx(
        {k: metrics[k] for k in ("val_accuracy", "val_loss")})


def test_regression_reports_rmse_and_r2(family, diabetes) -> None:
    _, metrics, reporter = train(family, diabetes, {}, 2)
    assert set(reporter.history[-1][1]) == {"train_loss", "val_rmse", "val_r2", "val_loss"}
    assert metrics["val_rmse"] == pytest.approx(metrics["val_loss"] ** 0.5)


def test_diverging_loss_raises(family, diabetes) -> None:
    with pytest.raises(FloatingPointError, match="loss is nan at epoch 1"):
        train(family, diabetes, {"optimizer": "sgd", "lr": 1e6}, 3)


@pytest.mark.parametrize("params", [
    {"optimizer": "adadelta", "lr": 1e-2},
    {"optimizer": "rmsprop", "lr": 1e-3, "init": "xavier_normal", "clip": "norm", "clip_value": 1.0},
    {"optimizer": "adagrad", "lr": 1e-2, "init": "orthogonal", "clip": "value", "clip_value": 0.5},
    {"optimizer": "adamw", "weight_decay": 1e-2, "init": "kaiming_uniform"},
    {"optimizer": "sgd", "lr": 1e-2, "momentum": 0.9, "init": "xavier_uniform",
     "layers": [{"units": 16, "activation": a, "dropout": 0.2} for a in ("elu", "leaky_relu", "selu", "silu")]},
])
def test_every_option_trains(family, breast_cancer, params) -> None:
    _, metrics, _ = train(family, breast_cancer, params, 2)
    assert metrics["epochs_trained"] == 2 and np.isfinite(metrics["val_loss"])


def test_build_follows_the_config(family, digits) -> None:
    params = {"n_layers": 2, "layers": [{"units": 32, "activation": "tanh", "dropout": 0.1},
                                        {"units": 16, "activation": "gelu"}]}
    model = family.build(family.make_config(params), digits)
    # 64 -> 32 -> 16 -> 10 logits
    assert training.count_params(model) == (64 * 32 + 32) + (32 * 16 + 16) + (16 * 10 + 10)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Flatten", "Linear", "Tanh", "Dropout", "Linear", "GELU", "Linear"]


# -- configuration -------------------------------------------------------------------------
@pytest.mark.parametrize("params, message", [
    ({"layers": [{"units": 8, "activation": "relux"}]}, r"layers\[0\]\.activation='relux'.*relu, tanh, sigmoid"),
    ({"optimizer": "adamx"}, r"optimizer='adamx'.*sgd, adam, adamw, adadelta"),
    ({"init": "zeros"}, r"init='zeros'.*xavier_uniform"),
    ({"clip": "l1"}, r"clip='l1'.*none, norm, value"),
    ({"lr": 0.0}, r"lr=0\.0"),
    ({"batch_size": 0}, r"batch_size=0"),
    ({"layers": [{"units": 8, "dropout": 1.0}]}, r"layers\[0\]\.dropout=1\.0"),
    ({"layers": [{"units": 8, "width": 3}]}, r"layers\[0\] has no field 'width'"),
    ({"n_layers": 2, "layers": [{"units": 8}]}, r"n_layers=2.*len\(layers\) = 1"),
    ({"colour": "red"}, r"no config field 'colour'"),
])
def test_bad_config_names_field_value_and_choices(family, params, message) -> None:
    with pytest.raises(ConfigError, match=message):
        family.make_config(params)


def test_config_defaults_and_asdict(family) -> None:
    config = family.make_config({"layers": [{"units": 8}]})
    assert dataclasses.asdict(config)["layers"] == [{"units": 8, "activation": "relu", "dropout": 0.0}]


def test_metrics_per_task_kind(family, digits, diabetes) -> None:
    assert family.default_objective(digits) == "val_accuracy"
    assert family.default_objective(diabetes) == "val_rmse"


@pytest.mark.parametrize("space_name", ["mlp", "mlp_small"])
def test_shipped_spaces_make_valid_configs(family, space_name) -> None:
    space = SearchSpace.load(space_name)
    assert space.family == "mlp"
    if space_name == "mlp_small":
        grid = space.grid()
        assert np.prod([len(v) for v in grid.values()]) == 8
        for units in grid["layers.0.units"]:
            flat = {"layers.0.units": units, "layers.0.activation": "tanh", "lr": 0.01}
            family.make_config(space.config_from_flat(flat))
