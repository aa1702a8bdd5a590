"""What one Ray node has: run there by the pre-flight (:mod:`nasforge.executors.ray_preflight`).

Shipped to the node by value and standard library only at import, so it answers on a node where
nasforge itself is missing or broken. Everything it returns is plain data.
"""

from __future__ import annotations

from typing import Any


def describe_node(request: dict[str, Any]) -> dict[str, Any]:
    """Answer the driver's ``request`` on this node (see :func:`nasforge.executors.ray_preflight.ask`).

    ``request``: ``distributions`` (names to look up the installed version of), ``lookups``
    (``(kind, name)`` pairs the node's registry must resolve), ``plugins`` (the run-time plugins'
    payload, unpickled but not registered), ``data_paths`` (files to open and size).
    """
    import importlib.metadata
    import platform
    import socket
    import sys

    answer: dict[str, Any] = {"hostname": socket.gethostname(), "python": platform.python_version(),
                              "executable": sys.executable, "versions": {}, "lookups": {}, "nasforge_error": None,
                              "registry_error": None, "plugins_error": None, "data_paths": {}}
    for path in request.get("data_paths", ()):   # a streamed data set's files: read on every node
        try:
            with open(path, "rb") as f:
                f.read(1)
                answer["data_paths"][path] = f.seek(0, 2)
        except OSError as exc:
            answer["data_paths"][path] = f"{type(exc).__name__}: {exc.strerror or exc}"
    for dist in request.get("distributions", ()):
        try:
            answer["versions"][dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            answer["versions"][dist] = None
    try:
        import nasforge  # noqa: F401
        from nasforge.plugins import get_registry
    except Exception as exc:  # noqa: BLE001 - any import failure is the answer
        answer["nasforge_error"] = f"{type(exc).__name__}: {exc}"
        return answer
    try:
        registry = get_registry()
        for kind, name in request.get("lookups", ()):
            try:
                registry.get(kind, name)
                plugin, version = registry.provenance(kind, name)
                answer["lookups"][f"{kind}:{name}"] = {"plugin": plugin, "version": version, "error": None}
            except Exception as exc:  # noqa: BLE001
                answer["lookups"][f"{kind}:{name}"] = {"error": f"{type(exc).__name__}: {exc}"}
    except Exception as exc:  # noqa: BLE001 - a broken plugin on this node breaks every look-up
        answer["registry_error"] = f"{type(exc).__name__}: {exc}"
    if request.get("plugins"):
        try:
            from ray import cloudpickle

            cloudpickle.loads(request["plugins"])
        except Exception as exc:  # noqa: BLE001
            answer["plugins_error"] = f"{type(exc).__name__}: {exc}"
    return answer
