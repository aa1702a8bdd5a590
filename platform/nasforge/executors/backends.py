"""The executors by backend name: each runs the trials of a search.

Each is a function ``run(spec, *, study, context, n_trials, tracker, on_outcome)`` that runs
``n_trials`` more trials of the Optuna ``study`` through :func:`nasforge.trial.run_trial` and
calls ``on_outcome`` in the driver as each one ends. Imported lazily, by backend name.

An executor may also have a session (:data:`SESSIONS`): a context manager around the whole
search, entered before any store is written -- Ray joins its cluster and checks the nodes there.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import TYPE_CHECKING, ContextManager

if TYPE_CHECKING:
    from nasforge.spec.arguments import SearchSpec

EXECUTORS = {
    "local": "nasforge.executors.local:run_local",
    "ray": "nasforge.executors.ray:run_ray",
}
SESSIONS = {
    "ray": "nasforge.executors.ray:ray_session",
}


def executor_session(spec: "SearchSpec") -> ContextManager:
    """The session of ``spec.backend``'s executor (a no-op for those without one)."""
    target = SESSIONS.get(spec.backend)
    if target is None:
        return contextlib.nullcontext()
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)(spec)
