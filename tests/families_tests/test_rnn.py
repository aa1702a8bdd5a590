"""The RNN family learns sequences (rows, the adding problem, tokens) and rejects what it cannot train."""

from __future__ import annotations

import math

import mlflow
import numpy as np
import pytest
import torch

import nasforge
from conftest import runs_of
from nasforge.data.builtin_tasks import load_breast_cancer_task, load_digits_task
from nasforge.errors import ConfigError
from nasforge.plugins import get_registry
from nasforge.testing import FamilyContract
from nasforge.testing import fit_once as train
from nasforge_rnn import RNNFamily, adding_problem, majority_tokens

# Tiny per-step matmuls gain nothing from intra-op threads (conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def family() -> RNNFamily:
    return RNNFamily()


@pytest.fixture(scope="module")
def digits():
    return load_digits_task(0)


@pytest.fixture(scope="module")
def adding_short():
    return get_registry().get("task", "adding_short").load(0)


@pytest.fixture(scope="module")
def tokens():
    return get_registry().get("task", "majority_tokens").load(0)


# -- learning ----------------------------------------------------------------------------
def test_learns_digits_as_a_sequence_of_rows(family, digits) -> None:
    model, metrics, _ = train(family, digits, {"cell": "gru", "hidden_size": 64}, 10)
    assert metrics["val_accuracy"] > 0.8                               # chance is 0.1; measured ~0.92
    assert family.evaluate(model, digits)["test_accuracy"] > 0.8


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gated_cells_solve_the_short_adding_problem(family, adding_short, cell) -> None:
    baseline = float(((adding_short.y_val - 1.0) ** 2).mean())        # always predict 1: ~1/6
    assert baseline == pytest.approx(1 / 6, abs=0.02)
    model, metrics, _ = train(family, adding_short, {"cell": cell, "hidden_size": 64}, 5)
    assert metrics["val_loss"] < 0.25 * baseline                       # measured: gru ~0.001, lstm ~0.013
    assert family.evaluate(model, adding_short)["test_loss"] < 0.25 * baseline


def test_embedding_learns_the_majority_token(family, tokens) -> None:
    model, metrics, _ = train(family, tokens, {"cell": "lstm", "embedding_dim": 8, "hidden_size": 32}, 3)
    assert model.embedding.weight.shape == (tokens.info["vocab_size"], 8)
    assert metrics["val_accuracy"] > 0.6                                # chance is 0.25; measured ~0.99
    assert family.evaluate(model, tokens)["test_accuracy"] > 0.6
    model.eval()
    with torch.no_grad():   # integer ids and the float32 copies the shared loaders make give the same outputs
        torch.testing.assert_close(model(torch.as_tensor(tokens.x_val[:8])),
                                   model(torch.as_tensor(tokens.x_val[:8], dtype=torch.float32)))


# -- the generated tasks -----------------------------------------------------------------
def test_adding_problem_follows_le_et_al() -> None:
    x, y = adding_problem(4000, 20, np.random.default_rng(0))
    assert x.shape == (4000, 20, 2) and y.shape == (4000, 1) and x.dtype == y.dtype == np.float32
    values, markers = x[..., 0], x[..., 1]
    assert values.min() >= 0.0 and values.max() <= 1.0
    assert set(np.unique(markers)) == {0.0, 1.0} and (markers.sum(axis=1) == 2).all()
    assert (markers[:, :10].sum(axis=1) == 1).all() and (markers[:, 10:].sum(axis=1) == 1).all()
    np.testing.assert_allclose(y[:, 0], (values * markers).sum(axis=1), rtol=1e-6)
    assert ((y - 1.0) ** 2).mean() == pytest.approx(1 / 6, abs=0.01)  # the predict-1 baseline
    again, _ = adding_problem(4000, 20, np.random.default_rng(0))
    other, _ = adding_problem(4000, 20, np.random.default_rng(1))
    assert np.array_equal(x, again) and not np.array_equal(x, other)


def test_registered_adding_variants(adding_short) -> None:
    registry = get_registry()
    for name, length in (("adding_short", 10), ("adding", 50), ("adding_long", 100)):
        assert registry.get("task", name).kind == "regression"
        assert registry.provenance("task", name)[0] == "rnn"
    assert adding_short.info["sequence_shape"] == (10, 2) and adding_short.x_train.shape[1:] == (10, 2)


def test_majority_tokens_labels_are_the_unique_mode(tokens) -> None:
    x, y = majority_tokens(500, 9, 3, np.random.default_rng(0))
    counts = np.stack([(x == v).sum(axis=1) for v in range(3)], axis=1)
    top = np.sort(counts, axis=1)
    assert (top[:, -1] > top[:, -2]).all() and (counts.argmax(axis=1) == y).all()
    assert tokens.info["vocab_size"] == 4 and tokens.info["sequence_shape"] == (tokens.x_train.shape[1],)
    assert np.bincount(tokens.y_train).min() > 0.2 * len(tokens.y_train)   # balanced classes


# -- the model and the loop --------------------------------------------------------------
def _input_grad(model, x, tbptt_steps):
    x = x.clone().requires_grad_(True)
    out = model(x, tbptt_steps=tbptt_steps)
    out.sum().backward()
    return out.detach(), x.grad.abs().sum(dim=(0, 2))                     # gradient per time step


def test_truncated_bptt_reaches_back_k_steps_only(family, adding_short) -> None:
    torch.manual_seed(0)
    model = family.build(family.make_config({"cell": "lstm", "hidden_size": 16, "n_layers": 2}), adding_short)
    x = torch.as_tensor(adding_short.x_val[:32])
    full_out, full = _input_grad(model, x, 0)
    cut_out, cut = _input_grad(model, x, 4)
    torch.testing.assert_close(cut_out, full_out)          # same outputs; only the gradients differ
    assert (full > 0).all()                                # full BPTT reaches step 0
    assert (cut[:6] == 0).all() and (cut[6:] > 0).all()     # truncated: the last 4 of 10 steps only


def test_truncated_bptt_trains(family, digits) -> None:
    _, metrics, _ = train(family, digits, {"cell": "gru", "tbptt_steps": 4}, 3)
    assert metrics["val_accuracy"] > 0.3                   # chance 0.1


def test_bidirectional_head_reads_both_final_states(family, digits) -> None:
    torch.manual_seed(0)
    model = family.build(family.make_config({"cell": "gru", "hidden_size": 12, "bidirectional": True,
                                             "n_layers": 2}), digits).eval()
    x = torch.as_tensor(digits.x_val[:5])
    with torch.no_grad():
        out, _ = model.rnn(model.sequences(x))              # (N, T, 2H): forward, backward halves
        expected = model.head(torch.cat([out[:, -1, :12], out[:, 0, 12:]], dim=1))
        torch.testing.assert_close(model(x), expected)
    assert model.sequences(x).shape == (5, 8, 8) and model.head.in_features == 24


@pytest.mark.parametrize("params", [
    {"cell": "rnn", "n_layers": 2, "dropout": 0.3, "clip": "value", "clip_value": 0.5},
    {"cell": "lstm", "bidirectional": True, "clip": "none", "init": "orthogonal", "optimizer": "rmsprop",
     "lr": 1e-3},
    {"cell": "gru", "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "init": "xavier_uniform", "batch_size": 128},
])
def test_every_option_trains(family, digits, params) -> None:
    _, metrics, reporter = train(family, digits, params, 1)
    assert metrics["epochs_trained"] == 1 and math.isfinite(metrics["val_loss"])
    assert set(reporter.history[0][1]) == {"train_loss", "val_accuracy", "val_loss"}


def test_regression_reports_rmse_r2_and_mse(family, adding_short) -> None:
    _, metrics, _ = train(family, adding_short, {"hidden_size": 8}, 1)
    assert family.metrics(adding_short) == {"val_rmse": "minimize", "val_r2": "maximize", "val_loss": "minimize"}
    assert metrics["val_rmse"] == pytest.approx(metrics["val_loss"] ** 0.5)


def test_diverging_loss_raises(family, adding_short) -> None:
    with pytest.raises(FloatingPointError, match="loss is (nan|inf) at epoch 1"):
        train(family, adding_short, {"cell": "rnn", "optimizer": "sgd", "lr": 1e8, "clip": "none"}, 2)


class TestContractOnTokens(FamilyContract):
    """The family contract on the token path (embedding); test_contract.py covers a real-valued task."""

    @pytest.fixture(scope="class")
    @classmethod
    def family(cls):
        return RNNFamily()

    @pytest.fixture(scope="class")
    @classmethod
    def task_name(cls):
        return "majority_tokens"

    @pytest.fixture(scope="class")
    @classmethod
    def config_params(cls):
        return {"hidden_size": 16, "embedding_dim": 4}


# -- configuration -------------------------------------------------------------------------
@pytest.mark.parametrize("params, message", [
    ({"cell": "transformer"}, r"cell='transformer'.*rnn, lstm, gru"),
    ({"hidden_size": 0}, r"hidden_size=0"),
    ({"n_layers": 0}, r"n_layers=0"),
    ({"bidirectional": "yes"}, r"bidirectional='yes'.*true or false"),
    ({"dropout": 1.0}, r"dropout=1\.0"),
    ({"embedding_dim": 0}, r"embedding_dim=0"),
    ({"tbptt_steps": -1}, r"tbptt_steps=-1"),
    ({"tbptt_steps": 5, "bidirectional": True}, r"tbptt_steps=5.*bidirectional=False"),
    ({"clip": "l1"}, r"clip='l1'.*none, norm, value"),
    ({"clip_value": 0.0}, r"clip_value=0\.0"),
    ({"optimizer": "adamx"}, r"optimizer='adamx'.*sgd, adam"),
    ({"init": "zeros"}, r"init='zeros'.*orthogonal"),
    ({"lr": -1.0}, r"lr=-1\.0"),
    ({"patience": 0}, r"patience=0"),
    ({"layers": 2}, r"no config field 'layers'"),
])
def test_bad_config_names_field_value_and_choices(family, params, message) -> None:
    with pytest.raises(ConfigError, match=message):
        family.make_config(params)


def test_task_without_a_sequence_shape_is_rejected(family, store, tmp_path) -> None:
    task = load_breast_cancer_task(0)
    for call in (lambda: family.metrics(task), lambda: family.build(family.make_config({}), task)):
        with pytest.raises(ConfigError, match=r"family 'rnn' cannot handle task 'breast_cancer'.*sequence_shape"):
            call()
    with pytest.raises(ConfigError, match=r"'rnn'.*'breast_cancer'"):
        nasforge.search("rnn", task="breast_cancer", trials=1, budget=1, **store)
    assert not (tmp_path / "mlflow.db").exists()                 # stopped before anything was written


# -- end to end ----------------------------------------------------------------------------
def test_search_records_two_child_runs_and_logs_the_model(store) -> None:
    result = nasforge.search("rnn", task="majority_tokens", space="rnn_tokens", strategy="random",
                             trials=2, budget=2, seed=0, **store)
    runs = runs_of(store["tracking_uri"], "rnn-majority_tokens")
    children = runs[runs["tags.mlflow.parentRunId"] == result.parent_run_id]
    assert len(children) == 2 and set(children["status"]) == {"FINISHED"}
    assert set(children["tags.family"]) == {"rnn"} and children["params.embedding_dim"].notna().all()
    assert result.best_value > 0.4                                             # chance is 0.25
    # The best model went through torch.export with float token ids and loads back.
    x = torch.as_tensor(get_registry().get("task", "majority_tokens").load(0).x_test[:16], dtype=torch.float32)
    mlflow.set_tracking_uri(store["tracking_uri"])
    loaded = mlflow.pytorch.load_model(result.network_uri)
    model = result.best_model()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
