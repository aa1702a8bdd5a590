"""The shared config checks and budget parsing name the field, the value and what is valid."""

import math

import pytest

from conftest import task_for
from nasforge.checks import check_bool, check_choice, check_int, check_number
from nasforge.errors import ConfigError
from nasforge.family import NullReporter
from nasforge.plugins import get_registry


def test_check_choice_is_strict_about_types():
    check_choice("activation", "relu", ("relu", "tanh"))
    check_choice("bidirectional", False, (False, True))
    with pytest.raises(ConfigError, match=r"activation='relu6' is not valid; choose one of: relu, tanh"):
        check_choice("activation", "relu6", ("relu", "tanh"))
    with pytest.raises(ConfigError, match=r"layers=True is not valid; choose one of: 1, 2"):
        check_choice("layers", True, (1, 2))       # True == 1, but a bool is not a layer count
    with pytest.raises(ConfigError, match=r"units='1'"):
        check_choice("units", "1", (1, 2))
    with pytest.raises(ConfigError, match=r"pool=\['max'\]"):
        check_choice("pool", ["max"], ("max", "avg"))


@pytest.mark.parametrize("value", [0, -3, 1.5, True, "2", None])
def test_check_int_refuses(value):
    with pytest.raises(ConfigError, match=r"n=.* is not valid; expected an integer >= 1"):
        check_int("n", value, low=1)


@pytest.mark.parametrize("value, kwargs", [
    (math.nan, {"low": 0.0}), (math.inf, {"low": 0.0}), (-0.1, {"low": 0.0}),
    (0.0, {"low": 0.0, "low_open": True}), (1.0, {"low": 0.0, "high": 1.0, "high_open": True}), (False, {"low": 0.0}),
])
def test_check_number_refuses(value, kwargs):
    with pytest.raises(ConfigError, match=r"lr=.* is not valid; expected a finite number in [\[(]0.0, "):
        check_number("lr", value, **kwargs)


def test_check_bool():
    check_bool("batch_norm", True)
    with pytest.raises(ConfigError, match="expected true or false"):
        check_bool("batch_norm", 1)


@pytest.mark.parametrize("family", get_registry().names("family"))
def test_every_family_reads_its_budget_the_same_way(family):
    fam = get_registry().get("family", family)
    unit = fam.budget_unit
    assert fam.budget_amount({}) == fam.default_budget
    assert fam.budget_amount({unit: 3.0}) == 3
    # ... and its fit refuses a bad budget with the same words before it trains
    task = get_registry().get("task", task_for(fam)).load(0)
    config = fam.make_config({})
    model, reporter = fam.build(config, task), NullReporter()
    for check in (fam.budget_amount, lambda budget: fam.fit(model, task, config, budget, reporter)):
        with pytest.raises(ConfigError, match=rf"budget.{unit}=0 is not valid; expected an integer >= 1"):
            check({unit: 0})
        with pytest.raises(ConfigError, match=rf"family '{family}' has no budget 'trials'; its budget is {{{unit}: N}}"):
            check({"trials": 3})
    assert reporter.history == []   # refused before a single step was trained
