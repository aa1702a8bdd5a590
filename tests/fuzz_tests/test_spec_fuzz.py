"""Malformed arguments of ``nasforge.search`` / ``build_spec`` end in a spec or a NasforgeError.

Validation only: ``build_spec`` checks everything before any store is written or trial run.
"""

import pytest
from hypothesis import given

from fuzz_tests import generators as g
from fuzz_tests.generators import fuzz_settings, tried
from nasforge.errors import NasforgeError, SpecError
from nasforge.spec.arguments import SearchSpec, build_spec
from toy_family import TOY_SPACE


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Relative paths in the fuzzed specs resolve here (build_spec writes nothing)."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("spec-fuzz")
        mp.chdir(path)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield path


@fuzz_settings(800)
@given(call=g.spec_call())
def test_spec_arguments_build_or_raise_a_nasforge_error(workdir, toy, call):
    tried("specs")
    family, kwargs = call
    try:
        spec = build_spec(family, **kwargs)
    except NasforgeError as exc:
        assert str(exc) and "Traceback" not in str(exc)
        return
    assert isinstance(spec, SearchSpec) and spec.trials >= 1 and spec.objectives
    assert not any(workdir.iterdir()), "build_spec must not write anything"


# -- what the fuzzer found (each was a TypeError/AttributeError/ValueError from deep inside) -------
@pytest.mark.parametrize("field, value, message", [
    ("task", ["digits"], "task must be a string, got ['digits']"),
    ("backend", [], "backend must be a string"),
    ("pruner", {"a": 1}, "pruner must be a string"),
    ("tracking_uri", float("-inf"), "tracking_uri must be a string"),
    ("study_name", True, "study_name must be a string"),
    ("experiment", 3, "experiment must be a string"),
    ("storage", "nope", "storage must be an Optuna storage URL"),
    ("strategy_options", [None], "strategy_options must be a mapping"),
    ("pruner_options", "x", "pruner_options must be a mapping"),
    ("scheduler_options", 3.0, "scheduler_options must be a mapping"),
    ("tags", 5, "tags must be a mapping"),
    ("tags", {"bad\nkey": 1}, "is not a valid MLflow tag name"),
    ("scheduler", ["asha"], "scheduler must be a string"),
    ("seed", 10**30, "seed must be an integer in [0, 4294967295]"),
    ("timeout", float("nan"), "timeout must be a finite number"),
    ("run_dir", "a\x00b", "run_dir must be a folder path"),
])
def test_found_bugs_now_raise_spec_error(workdir, toy, field, value, message):
    kwargs = {"task": "digits", "space": TOY_SPACE, "storage": "sqlite:///optuna.db",
              "tracking_uri": "sqlite:///mlflow.db", field: value}
    if field == "run_dir":
        del kwargs["storage"]
    with pytest.raises(SpecError) as info:
        build_spec("toy", **kwargs)
    assert message in str(info.value)
