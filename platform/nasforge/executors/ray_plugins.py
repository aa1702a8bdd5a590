"""Plugins registered at run time, shipped from the driver to the Ray workers.

Workers load entry-point plugins by themselves, but an object registered with
``nasforge.register(...)`` exists only in the driver. :func:`pack_plugins` pickles those that
register families or tasks (strategies, pruners and hooks run in the driver) with Ray's
cloudpickle -- *by value* for the modules that define them and the classes they register
(a script, a test module, a notebook: code the workers may not be able to import), by
reference for installed distributions and the standard library -- and :func:`install_plugins`
registers them in each worker before its first trial.

Anything else such code imports must be importable on the workers (installed, or shipped
with Ray's ``runtime_env``).
"""

from __future__ import annotations

import functools
import hashlib
import sys
import types
from typing import Any

from nasforge.errors import NasforgeError

RUN_TIME = "(registered at run time)"
_INSTALLED: dict[str, str] = {}   # plugin name -> digest of the payload it came from (this worker)


def pack_plugins(registry) -> bytes | None:
    """The driver's run-time registered plugins as one payload (None if there are none)."""
    from ray import cloudpickle

    # Workers need the families and tasks; strategies, pruners and hooks run in the driver.
    infos = [i for i in registry.plugin_infos()
             if i.distribution == RUN_TIME and ("family" in i.registered or "task" in i.registered)]
    if not infos:
        return None
    plugins = [(info.name, registry.pm.get_plugin(info.name)) for info in infos]
    objects: list[Any] = [p for _, p in plugins]
    for info in infos:
        for kind, names in info.registered.items():
            for name in names:
                item = registry.get(kind, name)
                objects += [item, getattr(item, "config_class", None)]
    modules = _local_modules(objects)
    for module in modules:
        cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps(plugins)
    except Exception as exc:
        names = ", ".join(name for name, _ in plugins)
        raise NasforgeError(f"plugins registered at run time ({names}) cannot be sent to the Ray workers: "
                            f"{type(exc).__name__}: {exc}; install them as an entry point, or use "
                            "backend='local'") from exc
    finally:
        for module in modules:
            cloudpickle.unregister_pickle_by_value(module)


def install_plugins(payload: bytes | None) -> None:
    """Register the driver's run-time plugins in this worker (once per payload)."""
    if not payload:
        return
    digest = hashlib.sha1(payload).hexdigest()
    if _INSTALLED and all(d == digest for d in _INSTALLED.values()):
        return
    from ray import cloudpickle

    from nasforge.plugins import get_registry

    registry = get_registry()
    for name, plugin in cloudpickle.loads(payload):
        current = registry.pm.get_plugin(name)
        if current is not None and name not in _INSTALLED:
            continue                       # this worker has it already (an entry point of that name)
        if current is not None:
            registry.unregister(current)   # an earlier search's copy: take the driver's current one
        registry.register(plugin, name=name)
        _INSTALLED[name] = digest


@functools.lru_cache(maxsize=1)
def _installed_top_levels() -> frozenset[str]:
    """Top-level names of installed distributions (scanning them takes ~0.5 s: once per process)."""
    from importlib.metadata import packages_distributions

    return frozenset(packages_distributions())


def _local_modules(objects: list[Any]) -> list[types.ModuleType]:
    """Modules defining ``objects`` (and their classes' bases) that are not installed packages."""
    names: set[str] = set()
    for obj in objects:
        if obj is None:
            continue
        if isinstance(obj, types.ModuleType):
            names.add(obj.__name__)
            continue
        cls = obj if isinstance(obj, type) else type(obj)
        names.update(c.__module__ for c in cls.__mro__)
    installed = _installed_top_levels() | set(sys.stdlib_module_names) | {"builtins", "__main__"}
    return [sys.modules[n] for n in sorted(names) if n in sys.modules and n.partition(".")[0] not in installed]
