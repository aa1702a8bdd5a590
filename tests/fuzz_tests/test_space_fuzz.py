"""Malformed search spaces (dicts and YAML text) end in a parsed space or a SpaceError, nothing else.

A space that parses must also work: Optuna distributions that survive Optuna's JSON storage,
a grid or a SpaceError, and a sampled configuration that rebuilds from its flat values.
"""

import math

import optuna
import pytest
from hypothesis import given

from fuzz_tests import generators as g
from fuzz_tests.generators import fuzz_settings, tried
from nasforge.errors import SpaceError
from nasforge.spec.space import SearchSpace, flatten

optuna.logging.set_verbosity(optuna.logging.ERROR)


def check_parsed(space: SearchSpace) -> None:
    """What every space that parses must support."""
    from optuna.distributions import distribution_to_json, json_to_distribution

    names = space.names()
    distributions = space.to_optuna()
    for name, dist in distributions.items():
        assert json_to_distribution(distribution_to_json(dist)) == dist, name
    try:
        grid = space.grid()
        assert set(grid) <= set(names)
    except SpaceError as exc:
        assert str(exc)
    if len(names) > 200:  # parsing is what is fuzzed here; sampling huge spaces is slow
        return
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    config = space.sample(trial)
    assert space.config_from_flat(trial.params) == config
    assert set(trial.params) <= set(names)
    for name, value in flatten(config).items():
        if name in distributions:
            assert distributions[name]._contains(distributions[name].to_internal_repr(value)), (name, value)


def parse_or_space_error(parse) -> SearchSpace | None:
    try:
        return parse()
    except SpaceError as exc:
        message = str(exc)
        assert message and "Traceback" not in message
        return None


@fuzz_settings(600)
@given(g.space_dict)
def test_space_dicts_parse_or_raise_space_error(data):
    tried("space dicts")
    space = parse_or_space_error(lambda: SearchSpace.from_dict(data))
    if space is not None:
        check_parsed(space)


@fuzz_settings(400)
@given(text=g.space_yaml)
def test_space_yaml_parses_or_raises_space_error(tmp_path, text):
    tried("space YAML")
    path = tmp_path / "space.yaml"
    path.write_text(text, encoding="utf-8")
    space = parse_or_space_error(lambda: SearchSpace.load(path))
    if space is not None:
        check_parsed(space)


# -- what the fuzzer found (each was a traceback from Python, Optuna or a hang) --------------------
@pytest.mark.parametrize("params, path, message", [
    ({"x": {"float": [0, 10**400]}}, "params.x.float", "high must be a finite number, got 1000"),
    ({"x": {"float": [-1e308, 1e308]}}, "params.x.float", "too wide to sample"),
    ({"x": {"float": [0, 1], "step": float("nan")}}, "params.x.step", "positive number, got nan"),
    ({"x": {"float": [0.5, 100.0], "step": 0.3}}, "params.x.step", "does not divide high - low (99.5); use high 99.8"),
    ({"x": {"float": [0.5, 483.9], "step": 3.5e14}}, "params.x.step", "does not divide"),
    ({"x": {"float": [0.0, 1e30], "step": 0.5}}, "params.x.step", "too small"),
    ({"x": {"int": [0, 10], "step": 3}}, "params.x.step", "step 3 does not divide high - low (10); use high 9 or 12"),
    ({"x": {"int": [0, 10**30]}}, "params.x.int", "too large"),
    ({"x": {"choice": [1, True]}}, "params.x.choice", "1 and True are equal"),
    ({"x": {"choice": [float("nan")]}}, "params.x.choice", "cannot be NaN"),
    ({"n": {"int": [0, 10**9]}, "l": {"repeat": "n", "params": {"u": 1}}}, "params.l.repeat", "at most 1000 copies"),
    ({"n": {"int": [1, 100]}, "l": {"repeat": "n", "params": {"m": {"int": [1, 200]},
                                                              "k": {"repeat": "m", "params": {"u": 1}}}}},
     "params", "expands to 20101 parameters"),
    ({"n": True, "l": {"repeat": "n", "params": {"u": 1}}}, "params.l.repeat", "must name an int parameter"),
    ({"o": {"choice": ["a"]}, "x": {"int": [0, 1], "when": {"o": []}}}, "params.x.when.o", "at least one value"),
    ({"n": {"int": [0, 3]}, "x": {"int": [0, 1], "when": {"n": {"a": 1}}}}, "params.x.when.n", "must be a string"),
    ({"n": {"int": [0, 3]}, "x": {"int": [0, 1], "when": {"n": 7}}}, "params.x.when.n", "could never hold"),
])
def test_found_bugs_now_raise_space_error(params, path, message):
    with pytest.raises(SpaceError) as info:
        SearchSpace.from_dict({"params": params})
    assert info.value.path == path and message in str(info.value)


def test_budget_must_be_finite():
    with pytest.raises(SpaceError, match=r"budget\.epochs: must be a positive number, got nan"):
        SearchSpace.from_dict({"params": {"x": 1}, "budget": {"epochs": math.nan}})


def test_huge_grids_are_refused_before_they_are_built():
    space = SearchSpace.from_dict({"params": {"x": {"int": [0, 2**40]}}})
    with pytest.raises(SpaceError, match=r"params\.x|x: has 1,099,511,627,777 values, too many for a grid"):
        space.grid()
    space = SearchSpace.from_dict({"params": {f"p{i}": {"int": [0, 99]} for i in range(4)}})
    with pytest.raises(SpaceError, match="more than 1,000,000 configurations"):
        space.grid()


@pytest.mark.parametrize("name", ["../search_spaces/mlp", "a/b", "..", "x\x00y", "n" * 5000])
def test_odd_space_names_are_space_errors(name):
    with pytest.raises(SpaceError):
        SearchSpace.load(name)
