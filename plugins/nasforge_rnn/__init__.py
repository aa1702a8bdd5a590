"""nasforge's built-in recurrent family (vanilla RNN, LSTM, GRU) and its generated sequence tasks.

Registered through the ``nasforge`` entry-point group. Importing this module does not
import torch: the model and the loop live in ``nasforge_rnn.model`` / ``nasforge_rnn.loop``.
"""

from nasforge.hookspecs import hookimpl
from nasforge_rnn.family import RNNConfig, RNNFamily
from nasforge_rnn.tasks import adding_problem, majority_tokens, task_defs

__all__ = ["RNNConfig", "RNNFamily", "adding_problem", "majority_tokens", "register_families", "register_tasks"]


@hookimpl
def register_families(register):
    register(RNNFamily())


@hookimpl
def register_tasks(register):
    for task_def in task_defs():
        register(task_def)
