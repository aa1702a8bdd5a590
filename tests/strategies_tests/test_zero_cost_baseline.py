"""The benchmarks' zero-cost baseline (benchmarks/zero_cost.py): FLOPs counted right, the biggest
architectures picked, and those trained as ordinary trials of a search."""

import sys
from pathlib import Path

import pytest
from conftest import child_runs, runs_of

import nasforge
from nasforge.data.tasks import load_task
from nasforge.plugins import get_registry
from nasforge.spec.space import SearchSpace

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import zero_cost  # noqa: E402


@pytest.fixture(scope="module")
def cnn():
    family = get_registry().get("family", "cnn")
    return family, load_task("mnist1d", 0), SearchSpace.load(family.supernet_space)


def test_flops_and_parameters_of_a_small_cnn_are_counted_by_hand(cnn):
    family, task, space = cnn
    flat = {"n_blocks": 1, "blocks.0.filters": 16, "blocks.0.kernel_size": 3, "blocks.0.pool": "max"}
    conv = 16 * 1 * 3 * 40            # multiply-adds of a 'same' conv over 40 steps
    head = (16 * 20) * 10             # linear head on the pooled 16 x 20 features
    assert zero_cost.flops(family, task, space, flat) == 2 * (conv + head)
    assert zero_cost.n_params(family, task, space, flat) == 16 * 3 + 2 * 16 + 320 * 10 + 10


def test_the_picks_are_the_distinct_draws_with_the_most_flops(cnn):
    family, task, space = cnn
    picks = zero_cost.flops_picks(family, task, space, seed=3, candidates=30, top=5)
    counted = [zero_cost.flops(family, task, space, p) for p in picks]
    assert len(picks) == 5 and counted == sorted(counted, reverse=True)
    assert len({tuple(sorted(p.items())) for p in picks}) == 5
    assert picks == zero_cost.flops_picks(family, task, space, seed=3, candidates=30, top=5)   # seeded
    deeper = zero_cost.flops_picks(family, task, space, seed=3, candidates=30, top=30)
    assert deeper[:5] == picks and all(zero_cost.flops(family, task, space, p) <= counted[-1] for p in deeper[5:])


def test_fixed_picks_trains_the_given_architectures_in_order(store, cnn):
    family, task, space = cnn
    picks = zero_cost.flops_picks(family, task, space, seed=0, candidates=10, top=2)
    zero_cost.register_fixed_picks()
    zero_cost.register_fixed_picks()   # once per process, however often asked
    try:
        result = nasforge.search("cnn", task="mnist1d", space=family.supernet_space, strategy="fixed-picks",
                                 strategy_options={"picks": picks}, trials=2, budget=1, plots=False,
                                 experiment="fixed-picks", **store)
    finally:
        nasforge.unregister(name="benchmark-fixed-picks")
    assert "fixed-picks" not in get_registry().names("strategy")
    trials = sorted(result.trials, key=lambda t: t.number)
    assert [t.params for t in trials] == picks
    children = child_runs(runs_of(store["tracking_uri"], "fixed-picks"), result.parent_run_id)
    assert sorted(children["tags.trial_number"].astype(int)) == [0, 1] and set(children["status"]) == {"FINISHED"}


def test_the_zero_cost_warm_up_turns_the_controller_to_the_networks_with_most_flops(store):
    """``weight_sharing.py --zero-cost-warmup``: REINFORCE on FLOPs percentiles, before the phase."""
    from nasforge.stores.mlflow_runs import Tracker
    from nasforge.strategies.oneshot.phase import SupernetPhase
    from nasforge.strategies.oneshot.phase_options import PhaseJob, check_options

    tracker = Tracker.for_experiment(tracking_uri=store["tracking_uri"], experiment="phase")
    job = PhaseJob(strategy="enas", family="mlp", task="digits", data_digest=None, space=SearchSpace.load("mlp_enas"),
                   seed=0, options=check_options("enas", {}), top=3, tracking_uri=store["tracking_uri"],
                   experiment_id=tracker.experiment_id, run_id=tracker.start_run(name="phase", tags={}))
    means = zero_cost.warm_controller_on_flops(SupernetPhase(job=job, tracker=tracker), 40)
    first, last = sum(means[:5]) / 5, sum(means[-5:]) / 5
    assert 0.3 < first < 0.7        # a fresh controller draws about the median network
    assert last > first + 0.2       # measured: 0.53 -> 0.81 (steps of 10 draws: noisy one by one)
