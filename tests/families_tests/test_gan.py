"""The GAN family and its sample-quality metric: the Frechet distance is right, ranks real data,
a trained generator, noise and a collapsed generator in that order, and the GAN learns digits."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from mlflow import MlflowClient

import nasforge
from conftest import runs_of
from nasforge.data.builtin_tasks import load_breast_cancer_task, load_digits_task
from nasforge.errors import ConfigError
from nasforge.testing import FigureReporter
from nasforge.testing import fit_once as train
from nasforge_gan import GANFamily
from nasforge_gan import fid

# Learns fast on digits (val_fid ~30 after 20 epochs, measured); the test trains 30.
FAST = {"g_layers": [512], "d_layers": [256], "g_lr": 2e-3, "d_lr": 2e-3}


@pytest.fixture(scope="module")
def family() -> GANFamily:
    return GANFamily()


@pytest.fixture(scope="module")
def digits():
    return load_digits_task(0)


@pytest.fixture(scope="module")
def trained(family, digits):
    return train(family, digits, FAST, 30, reporter=FigureReporter())


@pytest.fixture(scope="module")
def reference_scores(digits):
    """Scores against the validation split of real held-out data, noise and a collapsed generator."""
    scorer = fid.SampleScorer(digits, digits.x_val)
    rng = np.random.default_rng(0)
    n, d = 1000, digits.x_train.shape[1]
    candidates = {
        "real": digits.x_test,                                                   # held-out real digits
        "gaussian": np.clip(rng.normal(digits.x_train.mean(), digits.x_train.std(), (n, d)), 0, 1),
        "uniform": rng.uniform(0.0, 1.0, (n, d)),
        "collapsed": np.repeat(digits.x_train[:1], n, axis=0),                    # one real image, repeated
    }
    return {name: scorer.score(x.astype(np.float32), prefix="val") for name, x in candidates.items()}


# -- the metric ----------------------------------------------------------------------------
def test_frechet_distance_matches_closed_forms() -> None:
    # 1-D Gaussians: (m1 - m2)^2 + (s1 - s2)^2
    assert fid.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-1.0]), np.array([[1.0]])) \
        == pytest.approx(4.0 + 1.0)
    # against the textbook formula with scipy's general matrix square root
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    c1, c2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    m1, m2 = rng.normal(size=6), rng.normal(size=6)
    textbook = ((m1 - m2) ** 2).sum() + np.trace(c1 + c2 - 2 * scipy.linalg.sqrtm(c1 @ c2).real)
    assert fid.frechet_distance(m1, c1, m2, c2) == pytest.approx(textbook, rel=1e-8)
    assert fid.frechet_distance(m1, c1, m1, c1) == pytest.approx(0.0, abs=1e-8)


def test_metric_ranks_real_data_best_and_noise_and_collapse_worst(reference_scores, trained) -> None:
    scores = {name: s["val_fid"] for name, s in reference_scores.items()}
    scores["trained"] = trained[1]["val_fid"]
    # measured: real ~2.2, trained ~25, gaussian ~90, uniform ~120, collapsed ~460
    assert scores["real"] < 5.0, scores
    assert scores["real"] < scores["trained"] < min(scores["gaussian"], scores["uniform"]), scores
    assert scores["collapsed"] > 20 * scores["real"] and scores["collapsed"] > scores["trained"], scores
    collapsed, real = reference_scores["collapsed"], reference_scores["real"]
    assert collapsed["val_inception_score"] == pytest.approx(1.0, abs=1e-3)      # one class, every time
    assert collapsed["val_class_coverage"] == pytest.approx(0.1)
    assert real["val_inception_score"] > 8.0 and real["val_class_coverage"] == 1.0


def test_classifier_is_fixed_cached_and_leaves_the_callers_rng_alone(digits) -> None:
    classifier = fid.feature_classifier(digits)
    assert fid.feature_classifier(digits) is classifier
    with torch.no_grad():
        accuracy = (classifier(torch.as_tensor(digits.x_val)).argmax(1).numpy() == digits.y_val).mean()
    assert accuracy > 0.9                                      # measured ~0.96
    task = load_breast_cancer_task(0)
    for key in [k for k in fid._CACHE if k[0] == "breast_cancer"]:
        del fid._CACHE[key]
    torch.manual_seed(7)
    state = torch.get_rng_state()
    first = fid.feature_classifier(task)                       # trains now
    assert torch.equal(torch.get_rng_state(), state)
    for key in [k for k in fid._CACHE if k[0] == "breast_cancer"]:
        del fid._CACHE[key]
    again = fid.feature_classifier(task)
    assert all(torch.equal(p, q) for p, q in zip(first.parameters(), again.parameters()))


# -- learning ------------------------------------------------------------------------------
def test_gan_learns_digits_far_better_than_noise(family, digits, trained, reference_scores) -> None:
    model, metrics, reporter = trained
    noise = min(reference_scores["gaussian"]["val_fid"], reference_scores["uniform"]["val_fid"])
    assert metrics["val_fid"] < 0.5 * noise                    # measured ~25 vs ~90
    assert metrics["val_class_coverage"] >= 0.7 and metrics["val_inception_score"] > 4.0
    test = family.evaluate(model, digits)
    assert set(test) == {"test_fid", "test_inception_score", "test_class_coverage"}
    assert test["test_fid"] < 0.5 * noise
    assert [step for step, _ in reporter.history] == list(range(1, 31))
    assert set(reporter.history[0][1]) == {"d_loss", "g_loss", "val_fid", "val_inception_score",
                                           "val_class_coverage"}
    assert metrics["val_fid"] == min(r["val_fid"] for _, r in reporter.history)   # best epoch restored
    assert family.evaluate(model, digits, split="val")["val_fid"] == pytest.approx(metrics["val_fid"])
    figure = reporter.figures["samples.png"]
    assert reporter.png("samples.png").startswith(b"\x89PNG")
    assert figure.axes[0].images[0].get_array().shape == (8 * 9 + 1, 8 * 9 + 1)    # 64 samples, tiled 8 x 8
    samples = model.sample(16)
    assert samples.shape == (16, 64) and ((samples >= 0) & (samples <= 1)).all()   # sigmoid for pixels


def test_eval_every_scores_every_nth_epoch_and_the_last(family, digits) -> None:
    _, metrics, reporter = train(family, digits, {"eval_every": 2, "g_layers": [32], "d_layers": [32]}, 5)
    assert [step for step, _ in reporter.history] == [2, 4, 5] and metrics["epochs_trained"] == 5


@pytest.mark.parametrize("params", [
    {"d_steps": 3, "label_smoothing": 0.1, "noise_size": 4},
    {"optimizer": "rmsprop", "g_lr": 1e-4, "d_lr": 1e-4, "g_layers": [32, 32], "d_layers": [32, 32],
     "g_activation": "elu", "d_activation": "tanh"},
])
def test_options_train(family, digits, params) -> None:
    _, metrics, _ = train(family, digits, params, 2)
    assert metrics["epochs_trained"] == 2 and np.isfinite(metrics["val_fid"])


def test_unbounded_data_get_a_linear_output(family) -> None:
    task = load_breast_cancer_task(0)            # standardized features
    model = family.build(family.make_config({}), task)
    assert type(model.generator[-1]).__name__ == "Linear"
    assert model(torch.as_tensor(task.x_test[:3])).shape == (3, 1)   # forward: discriminator logits


# -- configuration -------------------------------------------------------------------------
@pytest.mark.parametrize("params, message", [
    ({"label_smoothing": 0.5}, r"label_smoothing=0\.5.*\[0\.0, 0\.5\)"),
    ({"d_steps": 0}, r"d_steps=0.*integer >= 1"),
    ({"noise_size": 0}, r"noise_size=0"),
    ({"g_activation": "relux"}, r"g_activation='relux'.*relu, tanh"),
    ({"optimizer": "adamx"}, r"optimizer='adamx'.*sgd, adam"),
    ({"g_lr": -1.0}, r"g_lr=-1\.0"),
    ({"beta1": 1.0}, r"beta1=1\.0"),
    ({"eval_every": 0}, r"eval_every=0"),
    ({"d_layers": [{"units": 0}]}, r"d_layers\[0\]\.units=0"),
    ({"n_g_layers": 3, "g_layers": [8]}, r"n_g_layers=3.*len\(g_layers\) = 1"),
    ({"colour": "red"}, r"no config field 'colour'"),
])
def test_bad_config_names_field_value_and_choices(family, params, message) -> None:
    with pytest.raises(ConfigError, match=message):
        family.make_config(params)


def test_rejects_tasks_without_labels_for_the_metric(family) -> None:
    with pytest.raises(ConfigError, match="cannot handle task 'diabetes' of kind 'regression'"):
        family.check_task("diabetes", "regression")


# -- end to end ----------------------------------------------------------------------------
def test_search_logs_samples_on_every_trial(store) -> None:
    result = nasforge.search("gan", task="digits", trials=2, budget=2, seed=0, **store)
    assert result.spec.objectives[0].metric == "val_fid"
    runs = runs_of(store["tracking_uri"], "gan-digits")
    children = runs[runs["tags.mlflow.parentRunId"] == result.parent_run_id]
    assert len(children) == 2 and set(children["status"]) == {"FINISHED"}
    client = MlflowClient(store["tracking_uri"])
    for run_id in children["run_id"]:
        assert "samples.png" in {a.path for a in client.list_artifacts(run_id)}
    assert set(result.test_metrics) >= {"test_fid", "test_inception_score", "test_class_coverage"}
