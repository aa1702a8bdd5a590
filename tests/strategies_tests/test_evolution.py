"""Regularized evolution: Optuna's sampler contract, the aging algorithm, learning, seeding."""

from __future__ import annotations

import optuna
import pytest
from optuna.testing.pytest_samplers import BasicSamplerTestCase, SingleOnlySamplerTestCase

import nasforge
from nasforge.errors import ConfigError
from nasforge.plugins import get_registry
from nasforge.spec.space import SearchSpace
from nasforge.spec.arguments import build_spec
from nasforge.strategies.evolution_sampler import MUTATED_ATTR, PARENT_ATTR, RegularizedEvolutionSampler

optuna.logging.set_verbosity(optuna.logging.WARNING)

# 6 decisions of 5 choices (15,625 architectures, like NAS-Bench-201); reward: matches with TARGET.
TARGET = {f"x{i}": v for i, v in enumerate([4, 1, 3, 0, 2, 3])}
SPACE = SearchSpace.from_dict({name: {"choice": [0, 1, 2, 3, 4]} for name in TARGET})


def objective(trial):
    config = SPACE.sample(trial)
    return float(sum(config[k] == v for k, v in TARGET.items()))


class TestBasicContract(BasicSamplerTestCase):
    @pytest.fixture
    def sampler(self):
        return lambda: RegularizedEvolutionSampler(seed=0, population_size=4, sample_size=2)


class TestSingleObjectiveOnly(SingleOnlySamplerTestCase):
    @pytest.fixture
    def sampler(self):
        return lambda: RegularizedEvolutionSampler(seed=0)


def test_children_mutate_one_decision_of_the_best_of_a_sample_of_the_youngest():
    sampler = RegularizedEvolutionSampler(seed=3, population_size=10, sample_size=4)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    study.optimize(objective, n_trials=60)
    trials = study.trials
    assert all(t.system_attrs[PARENT_ATTR] is None for t in trials[:10])   # random initial population
    for child in trials[10:]:
        parent = trials[child.system_attrs[PARENT_ATTR]]
        assert child.number - 10 <= parent.number < child.number, "the parent is one of the 10 youngest"
        changed = [k for k in child.params if child.params[k] != parent.params[k]]
        assert changed == [child.system_attrs[MUTATED_ATTR]]               # exactly one decision changed
        population = trials[child.number - 10:child.number]
        assert parent.value >= sorted(t.value for t in population)[3]     # the best of 4 beats >= 3 others


def test_same_seed_same_search_and_direction_is_respected():
    def run(seed, direction="maximize"):
        study = optuna.create_study(sampler=RegularizedEvolutionSampler(seed=seed, population_size=5, sample_size=2),
                                    direction=direction)
        study.optimize(objective if direction == "maximize" else lambda t: -objective(t), n_trials=30)
        return [t.params for t in study.trials]

    assert run(1) == run(1) != run(2)
    assert run(1, "minimize") == run(1)   # minimizing -f picks the same parents as maximizing f


def test_evolution_beats_random_search():
    """Best found after 100 trials, averaged over 3 seeds (random search: ~3.6 of 6)."""
    def best(sampler):
        study = optuna.create_study(sampler=sampler, direction="maximize")
        study.optimize(objective, n_trials=100)
        return study.best_value

    evolution = [best(RegularizedEvolutionSampler(seed=s, population_size=20, sample_size=5)) for s in range(3)]
    random = [best(optuna.samplers.RandomSampler(seed=s)) for s in range(3)]
    assert sum(evolution) / 3 >= sum(random) / 3 + 1.0


def test_failed_and_pruned_trials_are_not_parents():
    sampler = RegularizedEvolutionSampler(seed=0, population_size=4, sample_size=4)
    study = optuna.create_study(sampler=sampler, direction="maximize")

    def flaky(trial):
        value = objective(trial)
        if trial.number % 3 == 1:
            raise optuna.TrialPruned()
        return float("nan") if trial.number % 3 == 2 else value

    study.optimize(flaky, n_trials=30)
    for trial in study.trials:
        parent = trial.system_attrs[PARENT_ATTR]
        assert parent is None or study.trials[parent].state == optuna.trial.TrialState.COMPLETE


def test_bad_options_and_registration():
    with pytest.raises(ConfigError, match="sample_size \\(30\\) must not exceed population_size \\(20\\)"):
        RegularizedEvolutionSampler(population_size=20, sample_size=30)
    with pytest.raises(ConfigError, match="population_size must be an integer >= 1"):
        RegularizedEvolutionSampler(population_size=0)
    assert "evolution" in get_registry().names("strategy")
    with pytest.raises(nasforge.SpecError, match="'evolution' rejected its options.*'population'"):
        build_spec("mlp", task="digits", strategy="evolution", strategy_options={"population": 3})


def test_sampler_pickles():
    import pickle

    sampler = RegularizedEvolutionSampler(seed=4, population_size=3, sample_size=2)
    copy = pickle.loads(pickle.dumps(sampler))
    assert type(copy) is RegularizedEvolutionSampler and isinstance(copy, optuna.samplers.BaseSampler)
    assert (copy.population_size, copy.sample_size, copy._seed) == (3, 2, 4)
