"""strategy="darts" under max_params / max_flops: the size penalty in alpha's loss (ProxylessNAS's resource
loss over a measured pool), the picks within the caps, and the ranking of the picks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import nasforge
from conftest import runs_of
from nasforge.data.tasks import load_task
from nasforge.errors import ConfigError, SpecError
from nasforge.plugins import get_registry
from nasforge.size_limit import NetworkSizes, SizeLimit
from nasforge.spec.space import SearchSpace
from nasforge.stores.mlflow_runs import Tracker
from nasforge.strategies.oneshot.darts_phase import DartsPhase
from nasforge.strategies.oneshot.phase_options import PhaseJob, check_options
from nasforge.strategies.oneshot.relaxation import ArchitectureWeights
from nasforge.strategies.oneshot.size_penalty import ExpectedSize

CAP = 6000   # mlp_enas on digits: about 40% of uniform draws fit, and their mean size is above it
TOY = {"params": {"n_layers": 1,   # 6 networks of 3 sizes: 75 * units + 10 parameters
                  "layers": {"repeat": "n_layers",
                             "params": {"units": {"choice": [1, 4, 32]}, "activation": {"choice": ["relu", "tanh"]}}},
                  "lr": 3e-3}}


def _sizes(space, limit):
    return NetworkSizes(family=get_registry().get("family", "mlp"), space=space, task=load_task("digits", 0),
                        limit=limit)


def test_the_pool_gives_the_expected_size_and_its_gradient_under_alpha():
    """Self-normalised importance sampling over 8192 uniform draws against the exact expectation over the
    6 networks (and autograd's gradient of it) for a skewed alpha (the estimate's spread: ~1% of E[size])."""
    space, limit = SearchSpace.from_dict(TOY), SizeLimit(max_params=100)
    architecture = ArchitectureWeights(space=space, seed=0).double()
    with torch.no_grad():
        architecture.alpha[0].copy_(torch.tensor([0.5, -1.0, 2.0]))   # units
        architecture.alpha[1].copy_(torch.tensor([0.3, 0.0]))         # activation
    penalty, within, _ = ExpectedSize(architecture=architecture, space=space, sizes=_sizes(space, limit),
                                      limit=limit, seed=0, pool=8192)()
    estimate = torch.autograd.grad(penalty, list(architecture.alpha), retain_graph=True)
    penalty = penalty.detach()

    p_units = torch.softmax(architecture.alpha[0], 0)
    exact_size = p_units @ torch.tensor([75.0 * u + 10 for u in (1, 4, 32)], dtype=torch.float64)
    exact = torch.log(exact_size / 100)
    assert float(penalty) == pytest.approx(exact.item(), abs=0.03)   # E[size] within 3%
    assert within.item() == pytest.approx(p_units[0].item(), abs=0.03)      # only the 1-unit networks (85) fit
    exact_grad = torch.autograd.grad(exact, [architecture.alpha[0]])
    assert torch.nn.functional.cosine_similarity(estimate[0], exact_grad[0], dim=0) > 0.99
    assert float(estimate[1].abs().max()) < 0.02   # the activation does not change the size


def _phase(store, space, options, limit, *, seed=0):
    tracker = Tracker.for_experiment(tracking_uri=store["tracking_uri"], experiment="phase")
    job = PhaseJob(strategy="darts", family="mlp", task="digits", data_digest=None, space=space, seed=seed,
                   options=check_options("darts", options), top=3, tracking_uri=store["tracking_uri"],
                   experiment_id=tracker.experiment_id, run_id=tracker.start_run(name="phase", tags={}),
                   size_limit=limit)
    return DartsPhase(job=job, tracker=tracker)


def test_the_penalty_moves_alpha_within_the_cap_and_no_penalty_does_not(store):
    space = SearchSpace.load(get_registry().get("family", "mlp").supernet_space)
    limit = SizeLimit(max_params=CAP)
    sizes = _sizes(space, limit)

    def share_within(phase):
        draws = phase.architecture.draw(np.random.default_rng(1), 300)
        return float(np.mean([sizes(flat)["n_params"] <= CAP for flat in draws]))

    shares = {}
    for weight in (1.0, 0.0):
        phase = _phase(store, space, {"supernet_epochs": 3, "candidates": 12, "size_penalty": weight}, limit)
        before = share_within(phase)
        phase.run()
        shares[weight] = share_within(phase)
    assert before < 0.5   # measured: 0.37 uniform; 0.59 with the penalty, 0.22 without (alpha grows the networks)
    assert shares[1.0] > before + 0.1 and shares[1.0] > shares[0.0] + 0.2, (before, shares)


def test_darts_keeps_a_cap_end_to_end(store, tmp_path, capsys):
    result = nasforge.search("mlp", task="digits", strategy="darts", trials=3, budget=1, seed=0, max_params=CAP,
                             strategy_options={"supernet_epochs": 3, "candidates": 20}, experiment="darts-cap",
                             progress=True, **store)
    assert "3/3" in (bar := capsys.readouterr().err) and "within caps=" in bar   # the phase's progress bar
    trials = [t for t in result.trials if t.state.name == "COMPLETE"]
    assert len(trials) == 3 and all(t.user_attrs["metrics"]["n_params"] <= CAP for t in trials)
    assert result.best_value > 0.3   # chance is 0.1

    runs = runs_of(store["tracking_uri"], "darts-cap")
    phase = runs[runs["tags.phase"] == "supernet"].iloc[0]
    assert phase["status"] == "FINISHED" and phase["params.max_params"] == str(CAP)
    client = Tracker(tracking_uri=store["tracking_uri"], experiment_id=result.experiment_id).client
    curves = {key: [m.value for m in sorted(client.get_metric_history(phase["run_id"], f"curve/{key}"),
                                            key=lambda m: m.step)]
              for key in ("arch_size_penalty", "arch_within_caps", "arch_size_pool_ess")}
    assert all(len(values) == 3 for values in curves.values())
    assert curves["arch_size_penalty"][0] > 0 and curves["arch_size_penalty"][-1] < curves["arch_size_penalty"][0]
    assert curves["arch_within_caps"][-1] > curves["arch_within_caps"][0]
    with open(client.download_artifacts(phase["run_id"], "top_architectures.json", str(tmp_path)),
              encoding="utf-8") as f:
        rated = json.load(f)
    assert rated["candidates"] and all(c["n_params"] <= CAP for c in rated["candidates"])


def test_the_picks_after_the_argmax_are_the_draws_alpha_favours_over_uniform_not_the_shallowest(store):
    """Log-probability favours the networks with fewer choices (1 hidden layer here); the log-likelihood
    ratio against a uniform draw ranks by what alpha learnt: alpha that prefers 3 layers of 256 units."""
    space = SearchSpace.load(get_registry().get("family", "mlp").supernet_space)
    phase = _phase(store, space, {"supernet_epochs": 1, "candidates": 60}, SizeLimit())
    decisions = list(phase.architecture.decisions)
    with torch.no_grad():
        for name, alpha in zip(decisions, phase.architecture.alpha):
            if name == "n_layers":
                alpha.copy_(torch.tensor([0.0, 0.0, 0.7]))
            elif name.endswith("units"):
                alpha.copy_(torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0]))
    rated = phase.rate()
    ranked = rated["candidates"]
    assert rated["metric"] == "log_prob_ratio"
    samples = [e for e in ranked if e["source"] == "sample"]
    assert [e["log_prob_ratio"] for e in samples] == sorted((e["log_prob_ratio"] for e in samples), reverse=True)
    assert all(e["params"]["n_layers"] == 3 for e in rated["top"])
    by_log_prob = sorted(samples, key=lambda e: -e["log_prob"])
    assert by_log_prob[0]["params"]["n_layers"] == 1   # what the old ranking would have picked
    uniform = math.log(3) + 3 * (math.log(5) + math.log(4))
    assert samples[0]["log_prob_ratio"] == pytest.approx(samples[0]["log_prob"] + uniform)


def test_a_negative_size_penalty_one_without_caps_and_one_for_enas_are_refused(store):
    with pytest.raises(ConfigError, match="size_penalty must be a number >= 0, got -1"):
        check_options("darts", {"size_penalty": -1})
    with pytest.raises(ConfigError, match="strategy 'enas' has no option 'size_penalty'"):
        check_options("enas", {"size_penalty": 1.0})
    with pytest.raises(SpecError, match="size_penalty weighs the size caps .* give max_params or max_flops"):
        nasforge.search("mlp", task="digits", strategy="darts", trials=2, budget=1,
                        strategy_options={"size_penalty": 2.0}, experiment="no-cap", **store)
    assert runs_of(store["tracking_uri"], "no-cap").empty   # refused before any run


def test_draws_within_a_cap_no_draw_reaches_fail_clearly():
    architecture = ArchitectureWeights(space=SearchSpace.from_dict(TOY), seed=0)
    with pytest.raises(ConfigError, match="none of 50 architectures drawn from alpha .* was accepted"):
        architecture.draw(np.random.default_rng(0), 1, accept=lambda flat: False, max_tries=50)
