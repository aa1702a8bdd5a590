"""The RNN controller: Optuna's sampler contract, learning on a toy space, resume, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pytest
import torch
from mlflow import MlflowClient
from optuna.testing.pytest_samplers import (
    BasicSamplerTestCase,
    RelativeSamplerTestCase,
    SingleOnlySamplerTestCase,
)

import nasforge
from conftest import runs_of
from nasforge.errors import ConfigError, SpecError
from nasforge.spec.space import SearchSpace
from nasforge.strategies.controller.decisions import candidates, to_controller
from nasforge.strategies.controller.sampler import TOKENS_ATTR, ControllerSampler

optuna.logging.set_verbosity(optuna.logging.WARNING)

# 6 decisions of 4 choices (4096 architectures); the reward counts the decisions equal to TARGET.
TARGET = {"a": 3, "b": 1, "c": 2, "d": 0, "e": 3, "f": 1}
TOY = SearchSpace.from_dict({name: {"choice": [0, 1, 2, 3]} for name in TARGET})

# Conditional and repeated decisions.
NESTED = SearchSpace.from_dict({
    "depth": {"int": [1, 3]},
    "layers": {"repeat": "depth", "params": {"op": {"choice": ["conv", "pool", "skip"]}}},
    "head": {"choice": ["linear", "mlp"]},
    "width": {"int": [1, 256], "log": True, "when": {"head": "mlp"}},
    "lr": {"float": [1e-4, 1e-1], "log": True},
    "seed": 7,
})


def toy_objective(trial):
    config = TOY.sample(trial)
    return float(sum(config[k] == v for k, v in TARGET.items()))


def nested_objective(trial):
    config = NESTED.sample(trial)
    score = sum(layer["op"] == "conv" for layer in config["layers"]) + (config["head"] == "mlp")
    return score + config.get("width", 0) / 256 - abs(math.log10(config["lr"]) + 2)


# -- Optuna's own sampler contract --------------------------------------------------------
class TestBasicContract(BasicSamplerTestCase):
    @pytest.fixture
    def sampler(self):
        return lambda: ControllerSampler(seed=0, batch_size=2)


class TestRelativeContract(RelativeSamplerTestCase):
    @pytest.fixture
    def sampler(self):
        return lambda: ControllerSampler(seed=0, batch_size=2)


class TestSingleObjectiveOnly(SingleOnlySamplerTestCase):
    """Multi-objective studies are refused with a ValueError (REINFORCE needs one reward)."""

    @pytest.fixture
    def sampler(self):
        return lambda: ControllerSampler(seed=0)


# -- decisions ---------------------------------------------------------------------------
def test_space_becomes_decisions_with_documented_bins():
    decisions = {d.name: d.values for d in to_controller(NESTED, bins=4)}
    assert list(decisions) == ["depth", "layers.0.op", "layers.1.op", "layers.2.op", "head", "width", "lr"]
    assert decisions["depth"] == (1, 2, 3)                   # few values: exact
    assert decisions["layers.1.op"] == ("conv", "pool", "skip")
    assert decisions["width"] == (1, 6, 40, 256)             # log-spaced ints, ends included
    assert decisions["lr"] == pytest.approx((1e-4, 1e-3, 1e-2, 1e-1))
    dist = optuna.distributions.FloatDistribution(-10, 10, step=0.5)
    values = candidates("x", dist, 5)
    assert values == (-10.0, -5.0, 0.0, 5.0, 10.0) and all(dist._contains(v) for v in values)


def test_inactive_decisions_are_not_sampled_and_get_no_gradient():
    sampler = ControllerSampler(space=NESTED, seed=0, batch_size=4)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    heads = {d.name: sampler.policy.heads[sampler.policy.slots[i]] for i, d in enumerate(sampler.decisions)}
    before = {name: [p.detach().clone() for p in head.parameters()] for name, head in heads.items()}
    for _ in range(4):   # shallow, linear-head architectures: width and the third layer stay inactive
        study.enqueue_trial({"depth": 2, "head": "linear"})
    study.optimize(nested_objective, n_trials=4)
    assert sampler.step == 1
    for trial in study.trials:
        assert set(trial.params) == {"depth", "layers.0.op", "layers.1.op", "head", "lr"}
        assert [key for key, _ in trial.system_attrs[TOKENS_ATTR]] == list(trial.params)   # one token each
    unchanged = [torch.equal(a, b) for a, b in zip(before["width"], heads["width"].parameters())]
    assert all(unchanged) and all(p.grad is None for p in heads["width"].parameters())
    assert heads["head"].weight.grad.abs().sum() > 0


def test_decisions_with_the_same_choices_can_share_a_softmax():
    separate = ControllerSampler(space=NESTED, seed=0, share=False)
    shared = ControllerSampler(space=NESTED, seed=0)   # the default, as ENAS shares them
    assert len(set(separate.policy.slots)) == len(separate.decisions) == 7
    assert shared.policy.slots == [0, 1, 1, 1, 2, 3, 4]


def test_conditional_space_runs_and_respects_conditions():
    sampler = ControllerSampler(space=NESTED, seed=1, batch_size=3)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    study.optimize(nested_objective, n_trials=15)
    assert sampler.step == 5
    for trial in study.trials:
        depth = trial.params["depth"]
        assert {f"layers.{i}.op" for i in range(depth)} <= set(trial.params)
        assert not {f"layers.{i}.op" for i in range(depth, 3)} & set(trial.params)
        assert ("width" in trial.params) == (trial.params["head"] == "mlp")
        assert trial.params["lr"] in sampler.decisions[-1].values


def test_drawn_batches_of_a_conditional_space_follow_the_policy():
    """``draw`` walks many architectures of a repeat / when space in lockstep: each is a valid
    architecture whose tokens read back from its values, and their frequencies are the policy's own
    probabilities (``log_prob``, scored one sequence at a time), as if drawn one by one."""
    from scipy.stats import chisquare

    from nasforge.strategies.controller.suggesters import ParamsReader

    # a far from uniform policy (no temperature / tanh squashing, wide initial weights)
    sampler = ControllerSampler(space=NESTED, seed=3, init_range=1.0, temperature=None, tanh_constant=None)
    drawn = sampler.draw(np.random.default_rng(0), 20_000)
    counts: dict[str, int] = {}
    flats = {}
    for flat, tokens in drawn:
        reader = ParamsReader(sampler, flat)
        NESTED.sample(reader)
        assert reader.sequence == tokens and len(flat) == len(tokens)
        key = json.dumps(sorted(flat.items()))
        counts[key] = counts.get(key, 0) + 1
        flats[key] = flat
    expected = {key: 20_000 * math.exp(sampler.log_prob(flat)) for key, flat in flats.items()}
    common = [key for key in counts if expected[key] >= 5]
    observed = [counts[key] for key in common] + [20_000 - sum(counts[key] for key in common)]
    wanted = [expected[key] for key in common] + [20_000 - sum(expected[key] for key in common)]
    assert len(common) > 30 and max(wanted) > 10 * min(wanted)    # many architectures, far from uniform
    assert chisquare(observed, wanted).pvalue > 1e-3
    again = sampler.draw(np.random.default_rng(0), 20_000)   # the generator decides every draw
    assert [tokens for _, tokens in again] == [tokens for _, tokens in drawn]


# -- learning ----------------------------------------------------------------------------
def _last_rewards(sampler, n_trials, seed):
    study = optuna.create_study(sampler=sampler, direction="maximize")
    study.optimize(toy_objective, n_trials=n_trials)
    return np.mean([t.value for t in study.trials[-30:]])


def test_controller_learns_the_toy_optimum_and_beats_random():
    """The probability of the optimum rises and late samples beat random search's, over 3 seeds."""
    optimum = {k: v for k, v in TARGET.items()}
    controller_means, random_means = [], []
    for seed in range(3):
        sampler = ControllerSampler(space=TOY, seed=seed)
        start = sampler.log_prob(optimum)
        controller_means.append(_last_rewards(sampler, 90, seed))
        random_means.append(_last_rewards(optuna.samplers.RandomSampler(seed=seed), 90, seed))
        assert start == pytest.approx(6 * math.log(1 / 4), abs=0.1)      # ~uniform at first
        assert sampler.log_prob(optimum) > start + math.log(20), f"seed {seed}: p(optimum) did not rise 20x"
        probs = [h["greedy_prob"] for h in sampler.history]
        assert probs[-1] > 5 * probs[0]
    # random search averages 6/4 = 1.5 matching decisions
    assert np.mean(random_means) == pytest.approx(1.5, abs=0.35)
    assert np.mean(controller_means) > np.mean(random_means) + 1.5


def test_self_imitation_raises_only_the_architectures_that_beat_the_baseline():
    """After the REINFORCE step, one step on past trials with max(R - b, 0) (Oh et al. 2018)."""
    sampler = ControllerSampler(space=TOY, seed=0, batch_size=4, entropy_weight=0.0)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    study.optimize(toy_objective, n_trials=8)       # two updates; memory holds all 8 trials
    assert [r for _, r in sampler.memory] == [t.value for t in study.trials]
    shaped = sampler._shape(np.array(sampler.rewards_seen))
    better = {i for i, r in enumerate(shaped) if r > sampler.baseline}
    assert 0 < len(better) < 8
    sequences = [seq for seq, _ in sampler.memory]
    before = sampler._score(sequences)[0].detach()
    loss = sampler._imitate()
    after = sampler._score(sequences)[0].detach()
    assert loss > 0 and sampler.history[-1]["imitation_loss"] > 0   # -w * mean of adv * log p
    advantage = torch.tensor(np.maximum(shaped - sampler.baseline, 0), dtype=after.dtype)
    assert (advantage * after).sum() > (advantage * before).sum()   # the imitated ones gained, weighted
    rows = sorted(better)
    assert after[rows].mean() > before[rows].mean()

    without = ControllerSampler(space=TOY, seed=0, batch_size=4, entropy_weight=0.0, self_imitation=0.0)
    again = optuna.create_study(sampler=without, direction="maximize")
    again.optimize(toy_objective, n_trials=8)
    assert [t.params for t in again.trials[:4]] == [t.params for t in study.trials[:4]]   # same until the step
    assert all(h["imitation_loss"] == 0.0 for h in without.history)


# -- resume ------------------------------------------------------------------------------
def _state_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if key == "policy":
            assert a[key].keys() == b[key].keys()
            assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])
        elif key == "optimizer":
            assert a[key]["param_groups"] == b[key]["param_groups"]
            for i, s in a[key]["state"].items():
                assert all(torch.equal(v, b[key]["state"][i][k]) for k, v in s.items())
        else:
            assert a[key] == b[key], key


def test_resumed_study_continues_from_the_same_controller_state(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    options = dict(space=TOY, seed=5, batch_size=5)
    first = ControllerSampler(**options)
    study = optuna.create_study(storage=storage, study_name="s", sampler=first, direction="maximize")
    study.optimize(toy_objective, n_trials=13)          # 2 updates, 3 rewards pending
    assert first.step == 2 and len(first.pending) == 3

    resumed = ControllerSampler(**options)              # a new process would start like this
    again = optuna.load_study(storage=storage, study_name="s", sampler=resumed)
    resumed._bind(again)
    _state_equal(resumed.state_dict(), first.state_dict())
    again.optimize(toy_objective, n_trials=12)

    straight = ControllerSampler(**options)
    reference = optuna.create_study(sampler=straight, direction="maximize")
    reference.optimize(toy_objective, n_trials=25)
    assert [t.params for t in again.trials] == [t.params for t in reference.trials]
    _state_equal(resumed.state_dict(), straight.state_dict())
    assert resumed.step == 5


# -- bad input and bad trials ------------------------------------------------------------
def test_bad_options_name_the_parameter():
    with pytest.raises(ConfigError, match=r"'lr'.*continuous float.*bins"):
        ControllerSampler(space=NESTED, bins=None)
    with pytest.raises(ConfigError, match=r"param_bins names 'nope'.*numeric parameters: .*width"):
        ControllerSampler(space=NESTED, param_bins={"nope": 4})
    with pytest.raises(ConfigError, match=r"'head', a choice parameter"):
        ControllerSampler(space=NESTED, param_bins={"head": 4})
    with pytest.raises(ConfigError, match="bins must be an integer >= 2"):
        ControllerSampler(space=NESTED, bins=1)
    with pytest.raises(ConfigError, match=r"reward='best' is not valid; choose one of: rank, zscore, raw"):
        ControllerSampler(reward="best")
    with pytest.raises(ConfigError, match="lr must be a positive number"):
        ControllerSampler(lr=0)
    for bad in (-0.1, float("nan"), True, "0.3"):
        with pytest.raises(ConfigError, match=r"self_imitation must be a number >= 0, got"):
            ControllerSampler(self_imitation=bad)
    with pytest.raises(ConfigError, match="no parameter to decide"):
        ControllerSampler(space=SearchSpace.from_dict({"x": 1}))


def test_bad_options_stop_a_search_before_it_starts(store):
    with pytest.raises(ConfigError, match=r"'layers\.0\.dropout'.*continuous float"):
        nasforge.search("mlp", task="digits", strategy="controller", strategy_options={"bins": None}, **store)
    with pytest.raises(SpecError, match="controller"):
        nasforge.search("mlp", task="digits", strategy="controller", strategy_options={"no_such": 1}, **store)
    with pytest.raises(SpecError, match="strategy 'controller' handles a single objective"):
        nasforge.search("mlp", task="digits", strategy="controller", objective=["val_accuracy", "n_params"],
                        **store)


@pytest.mark.parametrize("failed_reward", [None, 0.0])
def test_failed_pruned_and_nan_trials_never_crash_the_controller(failed_reward):
    sampler = ControllerSampler(space=TOY, seed=0, batch_size=3, failed_reward=failed_reward)
    study = optuna.create_study(sampler=sampler, direction="maximize")

    def objective(trial):
        value = toy_objective(trial)
        kind = trial.number % 4
        if kind == 1:
            raise RuntimeError("crashed on purpose")
        if kind == 2:
            raise optuna.TrialPruned()
        return float("nan") if kind == 3 else value

    study.optimize(objective, n_trials=24, catch=(RuntimeError,))
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == 6 and states.count("FAIL") == 12 and states.count("PRUNED") == 6
    if failed_reward is None:
        assert len(sampler.rewards_seen) == 6 and sampler.step == 2          # skipped
    else:
        assert len(sampler.rewards_seen) == 24 and sampler.step == 8         # penalized
        assert sorted(set(sampler.rewards_seen))[0] == 0.0
    assert all(math.isfinite(h["loss"]) for h in sampler.history)


def test_minimized_objectives_are_negated():
    sampler = ControllerSampler(space=TOY, seed=0, batch_size=4, reward="raw")
    study = optuna.create_study(sampler=sampler, direction="minimize")
    study.optimize(lambda t: 6.0 - toy_objective(t), n_trials=8)
    assert sampler.rewards_seen == [-t.value for t in study.trials]


# -- end to end --------------------------------------------------------------------------
def test_search_on_nasbench201_logs_the_controller_curves(store):
    result = nasforge.search("nasbench201", task="nb201-cifar10", strategy="controller", trials=20,
                             strategy_options={"batch_size": 4}, save_models=False, seed=0, **store)
    assert len(result.completed_trials) == 20
    assert 0.5 < result.best_value <= 1.0
    assert len({json.dumps(t.params, sort_keys=True) for t in result.trials}) == 20   # no architecture twice
    sampler = result.study.sampler
    assert isinstance(sampler, ControllerSampler) and sampler.step == 5
    runs = runs_of(store["tracking_uri"], "nasbench201-nb201-cifar10")
    parent = runs[runs["run_id"] == result.parent_run_id].iloc[0]
    assert parent["tags.controller.updates"] == "5"
    assert set(json.loads(parent["tags.controller.most_probable"])) == {f"Op{i}" for i in range(6)}
    client = MlflowClient(store["tracking_uri"])
    for curve in ("mean_reward", "baseline", "entropy", "loss", "imitation_loss", "greedy_prob"):
        history = client.get_metric_history(result.parent_run_id, f"controller.{curve}")
        assert sorted(m.step for m in history) == [1, 2, 3, 4, 5]
    rewards = sorted(client.get_metric_history(result.parent_run_id, "controller.mean_reward"), key=lambda m: m.step)
    values = [t.value for t in result.study.trials]
    assert [m.value for m in rewards] == pytest.approx([np.mean(values[i:i + 4]) for i in range(0, 20, 4)])


def test_sampler_pickles_and_carries_on(tmp_path):
    """Ray Tune's OptunaSearch pickles the sampler (e.g. for Tuner.restore)."""
    import pickle

    sampler = ControllerSampler(space=TOY, seed=2, batch_size=2)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    study.optimize(toy_objective, n_trials=5)
    copy = pickle.loads(pickle.dumps(sampler))
    _state_equal(copy.state_dict(), sampler.state_dict())
    study.sampler = copy
    study.optimize(toy_objective, n_trials=3)
    assert copy.step == 4


def test_resumed_search_logs_each_update_once(store):
    options = dict(task="nb201-cifar10", strategy="controller", strategy_options={"batch_size": 4},
                   save_models=False, seed=3, **store)
    first = nasforge.search("nasbench201", trials=8, **options)
    resumed = nasforge.search("nasbench201", trials=12, resume=True, **options)
    assert resumed.parent_run_id == first.parent_run_id and resumed.study.sampler.step == 3
    history = MlflowClient(store["tracking_uri"]).get_metric_history(first.parent_run_id, "controller.loss")
    assert sorted(m.step for m in history) == [1, 2, 3]
