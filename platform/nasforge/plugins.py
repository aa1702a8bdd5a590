"""The plugin manager and the registry of families, tasks, strategies and pruners.

Plugins come from three places, all through the hooks in :mod:`nasforge.hookspecs`:
the core's own ``DEFAULT_PLUGINS``, entry points in the ``nasforge`` group of installed
distributions (the built-in families use these too), and objects registered at run time
with :func:`register`. Set ``NASFORGE_PLUGINS`` to a comma-separated list of entry-point
names to load only those (an empty string loads none).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from nasforge import hookspecs
from nasforge.errors import RegistrationError, UnknownNameError

DEFAULT_PLUGINS = (
    "nasforge.data.builtin_tasks",
    "nasforge.strategies.samplers",
    "nasforge.strategies.pruners",
    "nasforge.strategies.evolution",
    "nasforge.strategies.controller.strategy",
    "nasforge.strategies.oneshot.plugin",
)

ENTRY_POINT_GROUP = "nasforge"
RUN_TIME = "(registered at run time)"   # the distribution of a plugin given to nasforge.register

# kind -> (hook name, attribute that must exist on each registered object)
KINDS = {
    "family": ("register_families", ("name", "build", "fit")),
    "task": ("register_tasks", ("name", "kind", "load")),
    "strategy": ("register_strategies", ("name", "create")),
    "pruner": ("register_pruners", ("name", "create")),
}


@dataclass
class PluginInfo:
    """One loaded plugin: its name, where it came from and what it registered."""

    name: str
    distribution: str
    version: str
    registered: dict[str, list[str]] = field(default_factory=dict)


class Registry:
    """Loads plugins once, collects what they register and answers look-ups by name."""

    def __init__(self, *, load_entry_points: bool = True):
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self._load_entry_points = load_entry_points
        self._loaded = False
        self._items: dict[str, dict[str, Any]] | None = None
        self._origin: dict[tuple[str, str], str] = {}
        self._provenance: dict[tuple[str, str], tuple[str, str]] = {}

    # -- loading ---------------------------------------------------------------------
    def load(self) -> None:
        """Register the default plugins and the installed entry points (once)."""
        if self._loaded:
            return
        self._loaded = True
        for module_name in DEFAULT_PLUGINS:
            module = importlib.import_module(module_name)
            if not self.pm.is_registered(module):
                self.pm.register(module, name=module_name)
        try:
            if self._load_entry_points:
                self._load_setuptools_entry_points()
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.pm.get_name(exc.plugin) or getattr(exc.plugin, "__name__", exc.plugin)
            raise _invalid_plugin(self.pm, exc, name) from None

    def _load_setuptools_entry_points(self) -> None:
        only = os.environ.get("NASFORGE_PLUGINS")
        if only is None:
            self.pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
            return
        for name in filter(None, (n.strip() for n in only.split(","))):
            self.pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register a plugin object (a module or an instance with hook implementations).

        Registering the same object again is a no-op (a notebook cell run twice). Without ``name``
        the plugin is named after its module or class (``__main__.WinePlugin``; ``-2``, ``-3`` for
        more objects of one class), so messages name plugins, not object ids.
        """
        self.load()
        if self.pm.is_registered(plugin):
            return self.pm.get_name(plugin)
        if name is not None and self.pm.get_plugin(name) is not None:
            raise RegistrationError(f"plugin name {name!r} is taken by another object; unregister it first "
                                    f"(nasforge.unregister(name={name!r})) or choose another name")
        name = name or self._free_name(plugin)
        try:
            plugin_name = self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise _invalid_plugin(self.pm, exc, name) from None
        try:
            self.pm.check_pending()
            self._items = None
            self._collect()
        except Exception as exc:
            self.pm.unregister(plugin)
            self._items = None
            if isinstance(exc, pluggy.PluginValidationError):
                raise _invalid_plugin(self.pm, exc, plugin_name) from None
            raise
        return plugin_name

    def _free_name(self, plugin: object) -> str:
        """A readable, unused plugin name: the module's name, or the class's qualified name."""
        import types

        if isinstance(plugin, types.ModuleType):
            base = plugin.__name__
        elif isinstance(plugin, type):
            base = f"{plugin.__module__}.{plugin.__qualname__}"
        else:
            base = f"{type(plugin).__module__}.{type(plugin).__qualname__}"
        name, n = base, 1
        while self.pm.get_plugin(name) is not None:
            n += 1
            name = f"{base}-{n}"
        return name

    def unregister(self, plugin: object | None = None, *, name: str | None = None) -> None:
        """Remove a plugin registered at run time."""
        self.pm.unregister(plugin, name=name)
        self._items = None

    # -- collecting ------------------------------------------------------------------
    def _collect(self) -> dict[str, dict[str, Any]]:
        if self._items is not None:
            return self._items
        self.load()
        items: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        origin: dict[tuple[str, str], str] = {}
        for kind, (hook_name, required) in KINDS.items():
            hook = getattr(self.pm.hook, hook_name)
            for impl in hook.get_hookimpls():  # registration order
                register = self._make_register(kind, required, impl.plugin_name, items, origin)
                impl.function(**{arg: register for arg in impl.argnames})
        self._items, self._origin, self._provenance = items, origin, {}
        return items

    @staticmethod
    def _make_register(kind, required, plugin_name, items, origin) -> Callable[[Any], None]:
        def register(obj: Any) -> None:
            missing = [attr for attr in required if not hasattr(obj, attr)]
            if missing:
                raise RegistrationError(
                    f"plugin {plugin_name!r} registered a {kind} {obj!r} without "
                    f"{', '.join(missing)}"
                )
            name = obj.name
            if not isinstance(name, str) or not name:
                raise RegistrationError(f"plugin {plugin_name!r} registered a {kind} with no name")
            if items[kind].get(name) is obj:
                return   # the same object again (e.g. by two plugins of a notebook): nothing to do
            if name in items[kind]:
                raise RegistrationError(
                    f"{kind} {name!r} is registered twice: by plugin "
                    f"{origin[(kind, name)]!r} and by plugin {plugin_name!r}; "
                    "uninstall or rename one of them"
                )
            items[kind][name] = obj
            origin[(kind, name)] = plugin_name

        return register

    # -- look-ups --------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        return sorted(self._collect()[kind])

    def get(self, kind: str, name: str) -> Any:
        items = self._collect()[kind]
        if name not in items:
            raise UnknownNameError(kind, name, items)
        return items[name]

    def origin(self, kind: str, name: str) -> str:
        self._collect()
        return self._origin[(kind, name)]

    def plugin_infos(self) -> list[PluginInfo]:
        """Every loaded plugin with its distribution, version and registered names."""
        items = self._collect()
        dists = {self.pm.get_name(p): d for p, d in self.pm.list_plugin_distinfo()}
        infos: dict[str, PluginInfo] = {}
        for plugin_name, plugin in self.pm.list_name_plugin():
            dist = dists.get(plugin_name)
            if dist is not None:
                dist_name, version = dist.metadata["name"], dist.version
            elif plugin_name in DEFAULT_PLUGINS:
                dist_name, version = "nasforge", _version("nasforge")
            else:
                dist_name, version = RUN_TIME, ""
            infos[plugin_name] = PluginInfo(plugin_name, dist_name, version)
        for kind in items:
            for name in items[kind]:
                info = infos[self._origin[(kind, name)]]
                info.registered.setdefault(kind, []).append(name)
        return list(infos.values())

    def plugin_info(self, plugin_name: str) -> PluginInfo:
        return {i.name: i for i in self.plugin_infos()}[plugin_name]

    def provenance(self, kind: str, name: str) -> tuple[str, str]:
        """``(plugin name, version)`` of whatever registered ``name``; cached per collection."""
        self._collect()
        key = (kind, name)
        if key not in self._provenance:
            plugin = self._origin[key]
            info = self.plugin_info(plugin)
            version = info.version or str(getattr(self.pm.get_plugin(plugin), "__version__", ""))
            self._provenance[key] = (plugin, version)
        return self._provenance[key]


def _invalid_plugin(pm: pluggy.PluginManager, exc: pluggy.PluginValidationError, plugin_name: object) -> RegistrationError:
    """pluggy's PluginValidationError as a RegistrationError naming the plugin and the hook."""
    hooks = sorted(name for name, caller in vars(pm.hook).items() if not name.startswith("_") and caller.has_spec())
    implemented = {opts.get("specname") or attr for attr in dir(exc.plugin)
                   if (opts := pm.parse_hookimpl_opts(exc.plugin, attr)) is not None and not opts.get("optionalhook")}
    unknown = sorted(implemented - set(hooks))
    if unknown:
        return RegistrationError(f"plugin {plugin_name!r} implements {', '.join(map(repr, unknown))}, which is not "
                                 f"a nasforge hook (misspelled?); the hooks are: {', '.join(hooks)}")
    details = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return RegistrationError(f"plugin {plugin_name!r} has a hook implementation nasforge cannot call: {details}")


def _version(dist_name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist_name)
    except PackageNotFoundError:
        return "unknown"


_registry: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    global _registry
    if _registry is None:
        _registry = Registry()
    return _registry


def register(plugin: object, name: str | None = None) -> str:
    """Register a plugin object at run time; returns its plugin name."""
    return get_registry().register(plugin, name=name)


def unregister(plugin: object | None = None, *, name: str | None = None) -> None:
    """Unregister a plugin registered with :func:`register`."""
    get_registry().unregister(plugin, name=name)
