"""Size caps in a weight-sharing search: the supernet phase draws, rewards and picks within them."""

import json

import numpy as np
import pytest

import nasforge
from conftest import runs_of
from nasforge.data.tasks import load_task
from nasforge.plugins import get_registry
from nasforge.size_limit import NetworkSizes, SizeLimit, penalised_reward
from nasforge.spec.space import SearchSpace
from nasforge.stores.mlflow_runs import Tracker
from nasforge.strategies.oneshot.paths import ControllerPaths, UniformPaths
from nasforge.strategies.oneshot.phase_options import PhaseOptions

TINY = {"supernet_epochs": 2, "controller_steps": 2, "controller_batch": 4, "candidates": 12}
CAP = 6000   # mlp_enas on digits: about 40% of uniform draws fit


@pytest.fixture(scope="module")
def mlp_enas():
    family = get_registry().get("family", "mlp")
    task = load_task("digits", 0)
    space = SearchSpace.load(family.supernet_space)
    sizes = NetworkSizes(family=family, space=space, task=task, limit=SizeLimit(max_params=CAP))
    return family, task, space, lambda flat: sizes(flat)["n_params"]


@pytest.mark.parametrize("strategy", ["rsws", "enas"])
def test_the_phase_rates_and_retrains_only_architectures_within_the_cap(store, strategy):
    result = nasforge.search("mlp", task="digits", strategy=strategy, trials=3, budget=1, seed=0, max_params=CAP,
                             strategy_options=TINY, experiment=f"cap-{strategy}", **store)
    runs = runs_of(store["tracking_uri"], f"cap-{strategy}")
    phase = runs[runs["tags.phase"] == "supernet"].iloc[0]
    assert phase["status"] == "FINISHED" and phase["params.max_params"] == str(CAP)
    tracker = Tracker(tracking_uri=store["tracking_uri"], experiment_id=result.experiment_id)
    path = tracker.client.download_artifacts(phase["run_id"], "top_architectures.json")
    with open(path) as f:
        rated = json.load(f)
    assert rated["candidates"] and all(c["n_params"] <= CAP for c in rated["candidates"])
    trials = [t for t in result.trials if t.state.name == "COMPLETE"]
    assert len(trials) == 3 and all(t.user_attrs["metrics"]["n_params"] <= CAP for t in trials)
    assert result.best_value > 0.3   # chance is 0.1: the capped networks still learn


def test_uniform_draws_within_a_cap_are_the_accepted_ones_and_a_cap_nothing_fits_fails(mlp_enas):
    family, task, space, count = mlp_enas
    draws = UniformPaths(space=space, accept=lambda flat: count(flat) <= CAP).draw(np.random.default_rng(0), 40)
    assert all(count(flat) <= CAP for flat, _ in draws)
    free = UniformPaths(space=space).draw(np.random.default_rng(0), 40)
    assert any(count(flat) > CAP for flat, _ in free)   # without the cap they are not
    with pytest.raises(nasforge.errors.ConfigError, match="none of 50 uniform draws .* was accepted"):
        UniformPaths(space=space, accept=lambda flat: False, max_tries=50).draw(np.random.default_rng(0), 1)


def test_the_mnasnet_penalty_keeps_rewards_within_the_caps_and_lowers_them_beyond():
    limit = SizeLimit(max_params=6000, max_flops=50_000)

    def reward(value, n_params, flops):
        return penalised_reward(value, limit.factor({"n_params": n_params, "flops": flops}))

    assert reward(0.9, 6000, 50_000) == 0.9
    assert reward(0.9, 12_000, 10_000) == pytest.approx(0.45)    # accuracy x cap / size
    assert reward(-0.2, 12_000, 10_000) == pytest.approx(-0.4)   # minus an MSE: divided, so worse too
    assert reward(0.9, 12_000, 100_000) == pytest.approx(0.225)  # beyond both: both factors
    assert reward(0.9, 24_000, 10_000) < reward(0.9, 12_000, 10_000)
    assert limit.factor({"n_params": 10, "flops": 0}) == 1.0   # a size of 0 is within, not a division


def test_the_penalty_alone_teaches_the_enas_controller_the_cap(mlp_enas):
    """REINFORCE on the penalty only (every accuracy 1): the policy moves its mass within the cap."""
    family, task, space, count = mlp_enas
    o = PhaseOptions()
    paths = ControllerPaths(space=space, seed=0, batch=10, lr=o.controller_lr, entropy_weight=o.entropy_weight,
                            baseline_decay=o.baseline_decay, hidden_size=o.controller_hidden_size)
    rng = np.random.default_rng(0)

    def share_within():
        return float(np.mean([count(flat) <= CAP for flat, _ in paths.draw(rng, 200)]))

    before = share_within()
    for _ in range(60):
        for flat, tokens in paths.draw(rng, 10):
            paths.learn(tokens, penalised_reward(1.0, min(1.0, CAP / count(flat))))
    assert share_within() >= before + 0.25
