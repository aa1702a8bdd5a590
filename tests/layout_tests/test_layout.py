"""The core's layout stays one path: no import circles, no private names across modules, one home per name.

The package is read with ``ast`` (nothing is imported). Every import counts, including those
inside functions; only imports under ``if TYPE_CHECKING:`` (never executed) are left out.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

import nasforge

PACKAGE = Path(nasforge.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _owner(dotted: str) -> str | None:
    """The module of ``dotted`` (a module name, or a name inside one)."""
    while dotted and dotted not in MODULES:
        dotted = dotted.rpartition(".")[0]
    return dotted or None


def _imports(name: str) -> list[tuple[str, str | None]]:
    """``(imported module, name taken from it or None)`` for each nasforge import in module ``name``."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    out = []
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            out += [(_owner(a.name), None) for a in node.names if a.name.split(".")[0] == "nasforge"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "nasforge":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.append((full, None) if full in MODULES else (_owner(node.module), alias.name))
    return out


def _graph() -> dict[str, set[str]]:
    return {name: {target for target, _ in _imports(name) if target and target != name} for name in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_walk_sees_the_package():
    """A guard for the guards below: the walk finds the modules and their imports."""
    assert {"nasforge.runner", "nasforge.spec.arguments", "nasforge.stores.study"} <= set(MODULES)
    assert "nasforge.stores.study" in _graph()["nasforge.runner"]


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    cycles = _cycles(_graph())
    assert not cycles, "modules that import each other (directly or around a circle): " + "; ".join(
        " <-> ".join(c) for c in cycles)


def test_no_private_name_is_imported_from_another_module():
    taken = [f"{name} takes {target}.{attr}" for name in MODULES for target, attr in _imports(name)
             if attr and attr.startswith("_") and not attr.startswith("__") and target != name]
    assert not taken, "make these public in their home module (or move them): " + "; ".join(taken)


def test_no_two_modules_share_a_file_name():
    names = Counter(p.name for p in MODULES.values() if p.name != "__init__.py")
    assert not [n for n, count in names.items() if count > 1]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_each_module_says_what_it_is(name):
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree)
    assert doc, f"{MODULES[name]} has no module docstring"
    first = doc.splitlines()[0]
    assert first.strip() and first.rstrip().endswith((".", ":", ")")), f"{name}: the first line is a sentence"


@pytest.mark.parametrize("name", sorted(n for n, p in MODULES.items() if p.name == "__init__.py"))
def test_package_inits_only_re_export(name):
    """An ``__init__.py`` holds its docstring, imports and ``__all__`` (the top level also its
    version and the lazy ``search`` and ``load`` fronts)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    allowed = {"__all__", "__version__"}
    for node in tree.body[1:] if ast.get_docstring(tree) else tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id in allowed for t in node.targets):
            continue
        if name == "nasforge" and isinstance(node, ast.FunctionDef) and node.name in ("search", "load"):
            continue
        pytest.fail(f"{MODULES[name]}:{node.lineno}: an __init__.py re-exports only; move this into a module")
