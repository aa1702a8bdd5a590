"""The shared torch helpers in nasforge.training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasforge import training
from nasforge.errors import ConfigError
from nasforge.data.builtin_tasks import load_breast_cancer_task, load_diabetes_task


def test_to_tensors_dtypes_and_shapes() -> None:
    data = training.to_tensors(load_breast_cancer_task(0), "cpu")
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert data.y_val.ndim == 1
    data = training.to_tensors(load_diabetes_task(0), "cpu", splits=("test",))
    assert data.y_test.dtype == torch.float32 and data.y_test.shape[1] == 1
    assert data.x_train is None


def test_minibatches_cover_every_index_once_and_are_seeded() -> None:
    batches = list(training.iterate_minibatches(10, 4, training.seeded_generator(3)))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))
    again = list(training.iterate_minibatches(10, 4, training.seeded_generator(3)))
    assert all(torch.equal(a, b) for a, b in zip(batches, again))


def test_seeded_generator_follows_manual_seed() -> None:
    torch.manual_seed(5)
    first = torch.randperm(20, generator=training.seeded_generator())
    torch.manual_seed(5)
    assert torch.equal(first, torch.randperm(20, generator=training.seeded_generator()))


@pytest.mark.parametrize("name", training.OPTIMIZERS)
def test_every_optimizer_takes_a_step(name: str) -> None:
    layer = nn.Linear(3, 1)
    before = layer.weight.detach().clone()
    optimizer = training.make_optimizer(name, layer.parameters(), lr=0.1, momentum=0.5, weight_decay=1e-4)
    layer(torch.ones(2, 3)).sum().backward()
    optimizer.step()
    assert not torch.equal(before, layer.weight)


def test_unknown_names_list_the_valid_choices() -> None:
    with pytest.raises(ConfigError, match="optimizer='lbfgs'.*adam, adamw"):
        training.make_optimizer("lbfgs", nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ConfigError, match="init='zeros'.*xavier_uniform"):
        training.init_weights(nn.Linear(2, 2), "zeros")
    with pytest.raises(ConfigError, match="clip='l1'.*norm, value"):
        training.clip_gradients(nn.Linear(2, 2), "l1", 1.0)


@pytest.mark.parametrize("scheme", [s for s in training.INITS if s != "default"])
def test_init_weights_reinitialises_linear_conv_and_recurrent(scheme: str) -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.Conv1d(2, 4, 3), nn.GRU(4, 4))
    torch.manual_seed(0)
    before = [p.detach().clone() for p in model.parameters()]
    training.init_weights(model, scheme)
    for (name, param), old in zip(model.named_parameters(), before):
        if "bias" in name:
            assert not param.any(), name
        else:
            assert not torch.equal(param, old), name


@pytest.mark.parametrize("mode, limit", [("norm", 0.5), ("value", 0.01)])
def test_clip_gradients(mode: str, limit: float) -> None:
    layer = nn.Linear(4, 4)
    (layer(torch.full((8, 4), 100.0)) ** 2).sum().backward()
    training.clip_gradients(layer, mode, limit)
    grads = torch.cat([p.grad.flatten() for p in layer.parameters()])
    measured = grads.norm() if mode == "norm" else grads.abs().max()
    assert measured <= limit * (1 + 1e-5)


def test_early_stopping_keeps_and_restores_the_best_weights() -> None:
    layer = nn.Linear(1, 1)
    stopper = training.EarlyStopping(patience=2)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    assert not stopper.step(0.5, layer, epoch=1)
    with torch.no_grad():
        layer.weight.fill_(2.0)
    assert not stopper.step(0.7, layer, epoch=2)
    assert stopper.step(0.6, layer, epoch=3)
    stopper.restore(layer)
    assert layer.weight.item() == 1.0 and stopper.best_epoch == 1


def test_count_params() -> None:
    model = nn.Linear(3, 2)
    assert training.count_params(model) == 8
    model.bias.requires_grad_(False)
    assert training.count_params(model) == 6 and training.count_params(model, trainable_only=False) == 8


def test_metrics() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    metrics = training.classification_metrics(logits, torch.tensor([0, 1, 1]), prefix="val")
    assert metrics["val_accuracy"] == pytest.approx(2 / 3)
    y = torch.tensor([[1.0], [2.0], [3.0]])
    metrics = training.regression_metrics(y.clone(), y, prefix="test")
    assert metrics == {"test_rmse": 0.0, "test_r2": 1.0, "test_loss": 0.0}
    metrics = training.regression_metrics(torch.full_like(y, 2.0), y, prefix="test")
    assert metrics["test_r2"] == pytest.approx(0.0)


# Configs validate without importing torch, so families keep their own copies of the names that
# nasforge.training (or their own torch module) knows. A copy must not drift from its original.
NAME_COPIES = [
    *[("nasforge_mlp.family", name, "nasforge.training") for name in ("ACTIVATIONS", "OPTIMIZERS", "INITS", "CLIP_MODES")],
    *[("nasforge_cnn.config", name, "nasforge.training") for name in ("ACTIVATIONS", "OPTIMIZERS", "INITS", "CLIP_MODES")],
    *[("nasforge_rnn.family", name, "nasforge.training") for name in ("OPTIMIZERS", "INITS", "CLIP_MODES")],
    ("nasforge_rnn.family", "CELLS", "nasforge_rnn.model"),
    *[("nasforge_autoencoder.checks", name, "nasforge.training") for name in ("ACTIVATIONS", "OPTIMIZERS")],
    ("nasforge_rl.config", "ACTIVATIONS", "nasforge.training"),
    ("nasforge_evidential.config", "OPTIMIZERS", "nasforge.training"),
]


@pytest.mark.parametrize("copy, name, original", NAME_COPIES, ids=[f"{c}.{n}" for c, n, _ in NAME_COPIES])
def test_names_a_config_checks_match_the_torch_helpers(copy: str, name: str, original: str) -> None:
    import importlib

    copied, known = getattr(importlib.import_module(copy), name), getattr(importlib.import_module(original), name)
    if isinstance(known, dict):          # name -> torch class: the same names, in any order
        assert set(copied) == set(known)
    else:                                # a tuple: the same names in the same order (error messages list them)
        assert tuple(copied) == tuple(known)
