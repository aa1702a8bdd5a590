"""The CNN family learns images and 1-D signals, keeps shapes valid and rejects bad input."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
import torch
from conftest import runs_of

import nasforge
from nasforge import training
from nasforge.data.builtin_tasks import load_breast_cancer_task, load_digits_task, load_mnist1d_task
from nasforge.errors import ConfigError
from nasforge.spec.space import SearchSpace
from nasforge.testing import FamilyContract
from nasforge.testing import fit_once as train
from nasforge_cnn import CNNFamily
from nasforge_cnn import config as cnn_config
from nasforge_cnn.shapes import plan_blocks


@pytest.fixture(scope="module")
def family() -> CNNFamily:
    return CNNFamily()


@pytest.fixture(scope="module")
def digits():
    return load_digits_task(0)


@pytest.fixture(scope="module")
def mnist1d():
    return load_mnist1d_task(0)


def block_outputs(model, task):
    """Shape (without the batch axis) leaving each conv block, from a real forward pass."""
    shapes = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:])))
             for name, m in model.named_children() if name.startswith("block")]
    model.eval()
    with torch.no_grad():
        logits = model(torch.as_tensor(task.x_test[:3]))
    for hook in hooks:
        hook.remove()
    assert logits.shape == (3, task.n_classes)
    return shapes


# -- learning ----------------------------------------------------------------------------
def test_learns_digits_with_2d_convolutions(family, digits) -> None:
    params = {"blocks": [{"filters": 16}, {"filters": 32}], "lr": 3e-3}
    model, metrics, _ = train(family, digits, params, 8)
    assert isinstance(model.block0.conv, torch.nn.Conv2d)
    assert metrics["val_accuracy"] > 0.9
    assert family.evaluate(model, digits)["test_accuracy"] > 0.9  # chance is 0.1; measured ~0.96


def test_learns_mnist1d_with_1d_convolutions(family, mnist1d) -> None:
    blocks = [{"filters": 32, "kernel_size": 5, "batch_norm": True}, {"filters": 32, "batch_norm": True}]
    model, _, _ = train(family, mnist1d, {"blocks": blocks, "lr": 3e-3, "batch_size": 128}, 8)
    assert isinstance(model.block0.conv, torch.nn.Conv1d)
    # Published (Greydanus, 2020): logistic regression 32%, MLP 68%, CNN 94%. Measured ~0.90 (3 seeds).
    assert family.evaluate(model, mnist1d)["test_accuracy"] > 0.8


# -- the training loop ---------------------------------------------------------------------
def test_reports_every_epoch_and_returns_the_restored_best(family, digits) -> None:
    model, metrics, reporter = train(family, digits, {"lr": 3e-2, "patience": 2}, 30)
    steps = [step for step, _ in reporter.history]
    assert steps == list(range(1, len(steps) + 1)) and metrics["epochs_trained"] == len(steps)
    assert set(reporter.history[0][1]) == {"train_loss", "val_accuracy", "val_loss"}
    best = min(reported["val_loss"] for _, reported in reporter.history)
    assert metrics["val_loss"] == best
    assert family.evaluate(model, digits, split="val") == pytest.approx(
        {k: metrics[k] for k in ("val_accuracy", "val_loss")})


def test_diverging_loss_raises(family, digits) -> None:
    with pytest.raises(FloatingPointError, match="loss is nan at epoch 1"):
        train(family, digits, {"optimizer": "sgd", "lr": 1e6}, 3)


@pytest.mark.parametrize("params", [
    {"optimizer": "adadelta", "lr": 1.0, "init": "kaiming_normal", "head": "dense", "dense_units": 32,
     "dense_activation": "tanh", "dense_dropout": 0.3},
    {"optimizer": "sgd", "lr": 1e-2, "momentum": 0.9, "init": "xavier_uniform", "clip": "norm",
     "blocks": [{"filters": 8, "activation": a, "pool": p, "batch_norm": True, "dropout": 0.2}
                for a, p in (("elu", "avg"), ("leaky_relu", "none"), ("selu", "max"), ("silu", "avg"))]},
    {"optimizer": "rmsprop", "lr": 1e-3, "clip": "value", "clip_value": 0.5,
     "blocks": [{"filters": 8, "kernel_size": 4, "stride": 2, "padding": "valid", "activation": "gelu"}]},
])
def test_every_option_trains(family, digits, params) -> None:
    _, metrics, _ = train(family, digits, params, 2)
    assert metrics["epochs_trained"] == 2 and np.isfinite(metrics["val_loss"])


# -- shapes --------------------------------------------------------------------------------
def test_build_follows_the_config(family, digits) -> None:
    params = {"blocks": [{"filters": 4, "kernel_size": 3, "pool": "max", "batch_norm": True},
                         {"filters": 6, "kernel_size": 3, "pool": "avg", "dropout": 0.1}],
              "head": "dense", "dense_units": 12}
    model = family.build(family.make_config(params), digits)
    assert block_outputs(model, digits) == [(4, 4, 4), (6, 2, 2)]
    # conv without bias under batch norm (+ its scale and shift), conv with bias, dense, logits
    expected = (1 * 4 * 9 + 2 * 4) + (4 * 6 * 9 + 6) + (6 * 2 * 2 * 12 + 12) + (12 * 10 + 10)
    assert training.count_params(model) == expected
    assert [type(m).__name__ for m in model.block0] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]
    assert [type(m).__name__ for m in model.block1] == ["Conv2d", "ReLU", "AvgPool2d", "Dropout"]


@pytest.mark.parametrize("kernel, stride", [(3, 1), (4, 1), (5, 2), (4, 2), (2, 3)])
def test_same_padding_keeps_ceil_size_over_stride(family, mnist1d, kernel, stride) -> None:
    blocks = [{"filters": 3, "kernel_size": kernel, "stride": stride, "pool": "none"}] * 2
    model = family.build(family.make_config({"blocks": blocks}), mnist1d)
    first = -(-40 // stride)
    assert block_outputs(model, mnist1d) == [(3, first), (3, -(-first // stride))]


def test_pooling_is_clamped_then_skipped_on_small_inputs(family, digits) -> None:
    # 8x8 halves three times to 1x1; the pools of blocks 4 and 5 have nothing left to pool.
    model = family.build(family.make_config({"blocks": [{"filters": 4, "pool": "max"}] * 5}), digits)
    assert block_outputs(model, digits) == [(4, 4, 4), (4, 2, 2), (4, 1, 1), (4, 1, 1), (4, 1, 1)]
    assert model.notes == ("blocks[3]: max pool 2 on size (1, 1); skipped",
                           "blocks[4]: max pool 2 on size (1, 1); skipped")
    assert not hasattr(model.block3, "pool")
    # A window of 3 on a 2x2 map shrinks to 2x2.
    blocks = [{"filters": 4, "pool": "avg", "pool_size": 3}] * 2
    model = family.build(family.make_config({"blocks": blocks}), digits)
    assert block_outputs(model, digits) == [(4, 2, 2), (4, 1, 1)]
    assert model.notes == ("blocks[1]: avg pool 3 on size (2, 2); window clamped to (2, 2)",)


def test_valid_kernel_wider_than_input_is_clamped() -> None:
    blocks = cnn_config.CNNConfig(blocks=[{"filters": 2, "kernel_size": 5, "padding": "valid", "pool": "none"},
                                          {"filters": 2, "kernel_size": 7, "padding": 1, "pool": "none"}]).blocks
    plans = plan_blocks(blocks, (1, 8, 8))
    assert [p.out_shape for p in plans] == [(2, 4, 4), (2, 1, 1)]
    assert plans[1].kernel == (6, 6)
    assert plans[1].notes[0] == "blocks[1]: kernel 7 > padded input 6 on axis 0; clamped to 6"


def test_sampled_configs_of_the_shipped_space_all_build(family, digits, mnist1d) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = SearchSpace.load("cnn")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(15):
        config = family.make_config(space.sample(study.ask()))
        for task in (digits, mnist1d):
            block_outputs(family.build(config, task), task)


# -- configuration -------------------------------------------------------------------------
@pytest.mark.parametrize("params, message", [
    ({"blocks": [{"pool": "min"}]}, r"blocks\[0\]\.pool='min'.*choose one of: max, avg, none"),
    ({"blocks": [{}, {"activation": "relux"}]}, r"blocks\[1\]\.activation='relux'.*relu, tanh, sigmoid"),
    ({"blocks": [{"padding": "full"}]}, r"blocks\[0\]\.padding='full'.*same, valid, or an integer"),
    ({"blocks": [{"padding": -1}]}, r"blocks\[0\]\.padding=-1"),
    ({"blocks": [{"filters": 0}]}, r"blocks\[0\]\.filters=0.*integer >= 1"),
    ({"blocks": [{"batch_norm": "yes"}]}, r"blocks\[0\]\.batch_norm='yes'.*true or false"),
    ({"blocks": [{"dropout": 1.0}]}, r"blocks\[0\]\.dropout=1\.0"),
    ({"blocks": [{"width": 3}]}, r"blocks\[0\] has no field 'width'; valid fields: filters, kernel_size"),
    ({"blocks": []}, r"blocks=\[\].*non-empty list"),
    ({"n_blocks": 2, "blocks": [{}]}, r"n_blocks=2.*len\(blocks\) = 1"),
    ({"head": "mlp"}, r"head='mlp'.*linear, dense"),
    ({"dense_activation": "soft"}, r"dense_activation='soft'.*relu"),
    ({"optimizer": "adamx"}, r"optimizer='adamx'.*sgd, adam, adamw"),
    ({"lr": 0.0}, r"lr=0\.0"),
    ({"colour": "red"}, r"no config field 'colour'"),
])
def test_bad_config_names_field_value_and_choices(family, params, message) -> None:
    with pytest.raises(ConfigError, match=message):
        family.make_config(params)


def test_task_without_image_or_signal_shape_is_rejected(family, store) -> None:
    task = load_breast_cancer_task(0)
    pattern = r"family 'cnn' cannot handle task 'breast_cancer'.*'image_shape'.*'signal_shape'"
    with pytest.raises(ConfigError, match=pattern):
        family.build(family.make_config({}), task)
    with pytest.raises(ConfigError, match=pattern):  # before any trial runs
        nasforge.search("cnn", task="breast_cancer", trials=1, budget=1, **store)
    with pytest.raises(ConfigError, match=r"family 'cnn' cannot handle task 'diabetes' of kind 'regression'"):
        nasforge.search("cnn", task="diabetes", trials=1, budget=1, **store)


@pytest.mark.parametrize("space_name", ["cnn", "cnn_small"])
def test_shipped_spaces_are_for_this_family(space_name) -> None:
    space = SearchSpace.load(space_name)
    assert space.family == "cnn" and set(space.budget) == {"epochs"}
    if space_name == "cnn_small":
        assert np.prod([len(v) for v in space.grid().values()]) == 8


# -- end to end ----------------------------------------------------------------------------
def test_search_records_every_trial(store) -> None:
    result = nasforge.search("cnn", task="digits", strategy="random", trials=2, budget=2, seed=0, **store)
    runs = runs_of(store["tracking_uri"], "cnn-digits")
    children = runs[runs["tags.mlflow.parentRunId"].notna()]
    assert len(children) == 2 and set(children["status"]) == {"FINISHED"}
    assert set(children["tags.family"]) == {"cnn"}
    assert result.test_metrics["test_accuracy"] > 0.3  # two epochs of a random CNN; chance is 0.1
    assert isinstance(result.best_model(), torch.nn.Sequential)


class TestCNNOnSignals(FamilyContract):
    """The family contract on the 1-D path (the registry-wide contract runs the 2-D one)."""

    @pytest.fixture(scope="class")
    @classmethod
    def family(cls):
        return CNNFamily()

    @pytest.fixture(scope="class")
    @classmethod
    def task_name(cls):
        return "mnist1d"
