"""The autoencoder family: the VAE's terms follow Kingma & Welling (2014), it learns real data,
validates its config and logs its figures into a real MLflow store."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from mlflow import MlflowClient

import nasforge
from conftest import runs_of
from nasforge.data.builtin_tasks import load_breast_cancer_task, load_diabetes_task, load_digits_task, load_mnist1d_task
from nasforge.errors import ConfigError
from nasforge.testing import FigureReporter
from nasforge.testing import fit_once as train
from nasforge_autoencoder import AutoencoderFamily
from nasforge_autoencoder.model import bernoulli_nll, gaussian_kl, gaussian_nll, split_metrics


@pytest.fixture(scope="module")
def family() -> AutoencoderFamily:
    return AutoencoderFamily()


@pytest.fixture(scope="module")
def digits():
    return load_digits_task(0)


def mean_image_baselines(task):
    """Val MSE and Bernoulli -log p(x) of the model that predicts the training mean for every input."""
    mean = task.x_train.mean(axis=0)
    p = np.clip(mean, 1e-6, 1 - 1e-6)
    nll = -(task.x_val * np.log(p) + (1 - task.x_val) * np.log(1 - p)).sum(axis=1).mean()
    return float(((task.x_val - mean) ** 2).mean()), float(nll)


# -- the terms of the bound --------------------------------------------------------------
def test_closed_form_kl_matches_the_formula_by_hand_and_monte_carlo() -> None:
    mu = torch.tensor([[0.0, 0.0], [1.0, -2.0], [0.5, 0.3]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, 0.0], [0.0, math.log(4.0)], [-1.0, 0.7]], dtype=torch.float64)
    kl = gaussian_kl(mu, logvar)
    # KL(N(m, s^2) || N(0, 1)) = 0.5 * (s^2 + m^2 - 1 - log s^2), summed over dimensions
    by_hand = [0.0, 0.5 * 1.0 + 0.5 * (4.0 + 4.0 - 1.0 - math.log(4.0)),
               0.5 * (math.exp(-1.0) + 0.25 - 1.0 + 1.0) + 0.5 * (math.exp(0.7) + 0.09 - 1.0 - 0.7)]
    assert kl.tolist() == pytest.approx(by_hand, rel=1e-12, abs=1e-12)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    assert kl.tolist() == pytest.approx(torch.distributions.kl_divergence(q, p).sum(1).tolist(), rel=1e-12)
    torch.manual_seed(0)
    z = q.sample((200_000,))
    monte_carlo = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean(0)    # E_q[log q(z) - log p(z)]
    assert monte_carlo.tolist() == pytest.approx(by_hand, abs=0.02)
    assert (kl >= 0).all()


def test_reconstruction_terms_are_per_sample_log_likelihoods() -> None:
    x = torch.tensor([[0.0, 1.0, 0.25], [1.0, 0.5, 0.0]], dtype=torch.float64)
    logits = torch.tensor([[-1.0, 2.0, 0.3], [0.1, 0.0, -3.0]], dtype=torch.float64)
    p = torch.sigmoid(logits)
    by_hand = -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(1)
    assert bernoulli_nll(logits, x).tolist() == pytest.approx(by_hand.tolist(), rel=1e-12)
    mean, logvar = logits, torch.tensor([0.0, -1.0, 2.0], dtype=torch.float64)
    normal = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    assert gaussian_nll(mean, logvar, x).tolist() == pytest.approx((-normal.log_prob(x).sum(1)).tolist(), rel=1e-12)


# -- learning ------------------------------------------------------------------------------
def test_vae_learns_digits_better_than_the_mean_image(family, digits) -> None:
    model, metrics, reporter = train(family, digits, {"lr": 3e-3}, 25, reporter=FigureReporter())
    baseline_mse, baseline_nll = mean_image_baselines(digits)   # ~0.073 and ~27.3 nats
    assert metrics["val_mse"] < 0.6 * baseline_mse                 # measured ~0.03
    assert metrics["val_neg_elbo"] < baseline_nll - 1.5            # measured ~24.6: a bound, and still lower
    assert metrics["val_neg_elbo"] == pytest.approx(metrics["val_recon"] + metrics["val_kl"])
    assert metrics["val_kl"] > 1.0, "the code carries information (no posterior collapse)"
    test = family.evaluate(model, digits)
    assert set(test) == {"test_mse", "test_recon", "test_kl", "test_neg_elbo"}
    assert test["test_neg_elbo"] < baseline_nll - 1.0
    # per-epoch reports, and the figures of the restored model
    assert [step for step, _ in reporter.history] == list(range(1, metrics["epochs_trained"] + 1))
    assert set(reporter.history[0][1]) == {"train_loss", "val_mse", "val_recon", "val_kl", "val_neg_elbo",
                                           "val_loss"}
    assert set(reporter.figures) == {"reconstructions.png", "samples.png"}
    for name in reporter.figures:
        assert reporter.png(name).startswith(b"\x89PNG")
    # 32 samples tiled 4 x 8, 8x8 pixels each with 1-pixel gaps
    assert reporter.figures["samples.png"].axes[0].images[0].get_array().shape == (4 * 9 + 1, 8 * 9 + 1)


def test_a_pruned_trial_still_logs_its_figures(family, digits) -> None:
    class PruneAtTwo(FigureReporter):
        def report(self, step, metrics):
            super().report(step, metrics)
            if step == 2:
                raise nasforge.TrialPruned("pruned at epoch 2")

    reporter = PruneAtTwo()
    with pytest.raises(nasforge.TrialPruned):
        train(family, digits, {"kind": "ae"}, 5, reporter=reporter)
    assert len(reporter.history) == 2 and set(reporter.figures) == {"reconstructions.png", "samples.png"}


def test_beta_weighs_the_kl_term(family, digits) -> None:
    _, low, _ = train(family, digits, {"lr": 3e-3, "beta": 0.2}, 8)
    _, high, _ = train(family, digits, {"lr": 3e-3, "beta": 4.0}, 8)
    assert low["val_kl"] > high["val_kl"]
    assert low["val_loss"] == pytest.approx(low["val_recon"] + 0.2 * low["val_kl"])


def test_autoencoder_learns_digits(family, digits) -> None:
    model, metrics, reporter = train(family, digits, {"kind": "ae", "lr": 3e-3}, 20, reporter=FigureReporter())
    baseline_mse, _ = mean_image_baselines(digits)
    assert metrics["val_mse"] < 0.4 * baseline_mse          # measured ~0.018 vs 0.073
    assert "val_kl" not in metrics and "val_neg_elbo" not in metrics
    assert set(family.evaluate(model, digits)) == {"test_mse", "test_recon"}
    assert set(reporter.figures) == {"reconstructions.png", "samples.png"}


def test_conv_vae_learns_digits(family, digits) -> None:
    model, metrics, _ = train(family, digits, {"arch": "conv", "layers": [16, 32], "lr": 3e-3}, 8)
    assert [type(m).__name__ for m in model.encoder][:2] == ["Unflatten", "Conv2d"]
    assert metrics["val_mse"] < 0.8 * mean_image_baselines(digits)[0]


def test_gaussian_likelihood_on_mnist1d_signals(family) -> None:
    task = load_mnist1d_task(0)
    model, metrics, reporter = train(family, task, {"lr": 3e-3, "latent_size": 16}, 5, reporter=FigureReporter())
    assert model.likelihood == "gaussian"          # MNIST-1D values are not in [0, 1]
    baseline = float(((task.x_val - task.x_train.mean(axis=0)) ** 2).mean())
    assert metrics["val_mse"] < 0.8 * baseline
    figure = reporter.figures["reconstructions.png"]
    assert len(figure.axes[0].lines) == 2           # input and reconstruction, as line plots
    assert reporter.png("reconstructions.png").startswith(b"\x89PNG")


def test_forward_is_the_deterministic_reconstruction(family, digits) -> None:
    config = family.make_config({})
    torch.manual_seed(0)
    model = family.build(config, digits).eval()
    x = torch.as_tensor(digits.x_test[:4])
    out = model(x)
    assert out.shape == x.shape and torch.equal(out, model(x))
    assert ((out >= 0) & (out <= 1)).all()          # Bernoulli means
    # the held-out metrics are the training terms at the same noise, averaged over samples
    eps = torch.randn(4, config.latent_size)
    recon, kl = model.loss_terms(x, eps)
    held_out = split_metrics(model, x, eps=eps, beta=2.0, prefix="v")
    assert held_out["v_recon"] == pytest.approx(recon.mean().item(), rel=1e-6)
    assert held_out["v_kl"] == pytest.approx(kl.mean().item(), rel=1e-6)
    assert held_out["v_loss"] == pytest.approx((recon + 2.0 * kl).mean().item(), rel=1e-6)
    assert held_out["v_mse"] == pytest.approx(((out - x) ** 2).mean().item(), rel=1e-6)


# -- configuration -------------------------------------------------------------------------
@pytest.mark.parametrize("params, message", [
    ({"kind": "gan"}, r"kind='gan'.*vae, ae"),
    ({"arch": "rnn"}, r"arch='rnn'.*mlp, conv"),
    ({"likelihood": "poisson"}, r"likelihood='poisson'.*auto, bernoulli, gaussian"),
    ({"activation": "relux"}, r"activation='relux'.*relu, tanh"),
    ({"optimizer": "adamx"}, r"optimizer='adamx'.*sgd, adam"),
    ({"latent_size": 0}, r"latent_size=0"),
    ({"beta": -1.0}, r"beta=-1\.0"),
    ({"lr": 0.0}, r"lr=0\.0"),
    ({"layers": [{"units": 0}]}, r"layers\[0\]\.units=0"),
    ({"layers": [{"units": 8, "dropout": 0.1}]}, r"layers\[0\] has no field 'dropout'"),
    ({"n_layers": 2, "layers": [8]}, r"n_layers=2.*len\(layers\) = 1"),
    ({"arch": "conv", "layers": []}, r"layers=\[\].*at least 1"),
    ({"colour": "red"}, r"no config field 'colour'"),
])
def test_bad_config_names_field_value_and_choices(family, params, message) -> None:
    with pytest.raises(ConfigError, match=message):
        family.make_config(params)


def test_build_rejects_what_the_task_cannot_hold(family, digits) -> None:
    with pytest.raises(ConfigError, match=r"arch='conv' needs an image task.*'breast_cancer'.*mlp"):
        family.build(family.make_config({"arch": "conv"}), load_breast_cancer_task(0))
    with pytest.raises(ConfigError, match=r"divisible by 16"):
        family.build(family.make_config({"arch": "conv", "layers": [4, 4, 4, 4]}), digits)
    with pytest.raises(ConfigError, match=r"likelihood='bernoulli'.*'diabetes'.*auto, gaussian"):
        family.build(family.make_config({"likelihood": "bernoulli"}), load_diabetes_task(0))
    with pytest.raises(ConfigError, match="cannot handle task 'x' of kind 'control'"):
        family.check_task("x", "control")


# -- end to end ----------------------------------------------------------------------------
def test_search_logs_figures_on_every_trial(store) -> None:
    result = nasforge.search("autoencoder", task="digits", trials=2, budget=2, seed=0, **store)
    assert result.spec.objectives[0].metric == "val_mse"
    runs = runs_of(store["tracking_uri"], "autoencoder-digits")
    children = runs[runs["tags.mlflow.parentRunId"] == result.parent_run_id]
    assert len(children) == 2 and set(children["status"]) == {"FINISHED"}
    client = MlflowClient(store["tracking_uri"])
    for run_id in children["run_id"]:
        names = {a.path for a in client.list_artifacts(run_id)}
        assert {"reconstructions.png", "samples.png"} <= names, names
    assert set(result.test_metrics) >= {"test_mse", "test_recon"}    # the best model, rebuilt and scored
    assert result.model_uri.startswith("models:/")                   # forward() exported (torch.export)
