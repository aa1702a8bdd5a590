"""Every hook a nasforge plugin can implement.

Registration hooks receive a ``register`` callback; the host validates each object,
records which plugin registered it and refuses duplicate names.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("nasforge")
hookimpl = pluggy.HookimplMarker("nasforge")


@hookspec
def register_families(register):
    """Register model families: ``register(family)`` with a :class:`nasforge.Family`."""


@hookspec
def register_tasks(register):
    """Register tasks: ``register(task_def)`` with a :class:`nasforge.TaskDef`."""


@hookspec
def register_strategies(register):
    """Register search strategies: ``register(strategy_def)`` with a :class:`nasforge.StrategyDef`."""


@hookspec
def register_pruners(register):
    """Register pruners: ``register(pruner_def)`` with a :class:`nasforge.PrunerDef`."""


@hookspec
def trial_finished(record):
    """Called in the driver after every trial with its :class:`nasforge.TrialRecord`."""


@hookspec
def search_finished(result):
    """Called once at the end of a search with its :class:`nasforge.SearchResult`."""
