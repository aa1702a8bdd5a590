"""One test per hook: a run-time plugin implements it and a real search uses it."""

import numpy as np
import optuna
import pytest

import nasforge
from nasforge import PrunerDef, StrategyDef, TaskDef
from nasforge.data.tasks import Task, split_arrays
from toy_family import TOY_SPACE


def _blobs(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 300)
    x = (rng.normal(size=(300, 4)) + y[:, None] * 2.0).astype(np.float32)
    return Task(name="blobs", kind="classification", seed=seed, n_classes=3, input_shape=(4,),
                **split_arrays(x, y.astype(np.int64), seed=seed, stratify=True))


class Everything:
    def __init__(self):
        self.trials, self.results, self.sampler_calls = [], [], 0

    @nasforge.hookimpl
    def register_tasks(self, register):
        register(TaskDef(name="blobs", kind="classification", load=_blobs))

    @nasforge.hookimpl
    def register_strategies(self, register):
        def create(*, space, seed, n_objectives, **options):
            self.sampler_calls += 1
            return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)

        register(StrategyDef(name="sobol-test", create=create))

    @nasforge.hookimpl
    def register_pruners(self, register):
        register(PrunerDef(name="always", create=lambda *, budget, **o: optuna.pruners.ThresholdPruner(lower=2.0)))

    @nasforge.hookimpl
    def trial_finished(self, record):
        self.trials.append(record)

    @nasforge.hookimpl
    def search_finished(self, result):
        self.results.append(result)


@pytest.fixture
def everything(toy):
    plugin = Everything()
    nasforge.register(plugin, name="everything")
    yield plugin
    nasforge.unregister(plugin)


def test_hook_register_tasks_and_register_strategies(store, everything):
    result = nasforge.search("toy", task="blobs", space=TOY_SPACE, strategy="sobol-test", trials=3,
                             budget=2, save_models=False, **store)
    assert len(result.completed_trials) == 3 and everything.sampler_calls >= 1
    assert result.best_value > 0.5  # three separable blobs: far above chance (1/3)


def test_hook_register_pruners(store, everything):
    result = nasforge.search("toy", task="blobs", space=TOY_SPACE, strategy="random", pruner="always",
                             trials=2, budget=3, save_models=False, **store)
    assert [t.state.name for t in result.trials] == ["PRUNED", "PRUNED"]


def test_hook_trial_finished_and_search_finished(store, everything):
    result = nasforge.search("toy", task="blobs", space=TOY_SPACE, strategy="random", trials=2,
                             budget=1, save_models=False, **store)
    assert [r.number for r in everything.trials] == [0, 1]
    assert all(r.status == "complete" and r.run_id for r in everything.trials)
    assert everything.results == [result]


def test_hook_register_families(toy):
    assert nasforge.get_registry().origin("family", "toy") == "toy-plugin"
