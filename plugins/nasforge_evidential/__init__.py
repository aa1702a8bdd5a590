"""nasforge's built-in evidential family and its tasks, registered through the ``nasforge`` entry point.

Importing this module loads no torch: the family imports it inside ``build`` / ``fit``.
"""

from nasforge.hookspecs import hookimpl
from nasforge.data.tasks import TaskDef
from nasforge_evidential.config import EvidentialConfig
from nasforge_evidential.family import EvidentialFamily
from nasforge_evidential.tasks import load_cubic_task, load_digits_ood_task, ood_inputs

__all__ = ["EvidentialConfig", "EvidentialFamily", "load_cubic_task", "load_digits_ood_task", "ood_inputs",
           "register_families", "register_tasks"]


@hookimpl
def register_families(register):
    register(EvidentialFamily())


@hookimpl
def register_tasks(register):
    register(TaskDef(name="cubic", kind="regression", load=load_cubic_task,
                     description="y = x^3 + N(0, 3^2) on [-4, 4], tested on [-7, 7] (Amini et al. 2020)"))
    register(TaskDef(name="digits_ood", kind="classification", load=load_digits_ood_task,
                     description="scikit-learn digits 0-6; 7, 8, 9 held out as out-of-distribution inputs"))
