"""Hypothesis strategies for malformed (and some well-formed) search spaces, specs and argv.

Names come from a small pool so that ``when`` and ``repeat`` often refer to real, earlier,
later or inactive parameters; numbers include huge integers, NaN and infinities. Most
examples start valid and have a few fields go wrong, so that parsing goes deep.

Runs are bounded and derandomized (the same examples every time);
``NASFORGE_FUZZ_SCALE=20`` runs twenty times as many examples for a deeper local hunt.
"""

from __future__ import annotations

import os

import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SCALE = float(os.environ.get("NASFORGE_FUZZ_SCALE", "1"))
TRIED: dict[str, int] = {}   # examples each fuzz test ran (shown in pytest's terminal summary)


def fuzz_settings(examples: int):
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])


def tried(name: str) -> None:
    TRIED[name] = TRIED.get(name, 0) + 1

NAMES = ["a", "b", "n", "lr", "width", "mode", "layers", "units", "ñame", "α", "class", "_x"]
BAD_NAMES = ["", " ", "1bad", "a.b", "a-b", "lr ", "名前!", "\u200b"]

# Mostly valid names (so parsing goes deep), sometimes a bad one.
name = st.one_of(st.sampled_from(NAMES * 6 + BAD_NAMES), st.text(max_size=6))
key = st.one_of(name, name, name, name, name, st.integers(-3, 3), st.none(), st.booleans())

huge = st.sampled_from([10**18, 2**63, -(2**63) - 1, 10**30, 10**400, -(10**400), 2**31, 2**32])
number = st.one_of(
    st.integers(-5, 40), huge, st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 0.0, -0.0, 1e-320, 1e308, -1e308, 5e-324, float("nan"), float("inf")]),
    st.booleans(),
)
scalar = st.one_of(st.none(), st.booleans(), number, st.text(max_size=6))
junk = st.one_of(scalar, st.lists(scalar, max_size=3), st.dictionaries(st.text(max_size=3), scalar, max_size=2))

# [low, high]: often a sensible range, sometimes not.
int_range = st.one_of(
    st.tuples(st.integers(-5, 20), st.integers(0, 60)).map(list),
    st.tuples(st.integers(1, 20), st.integers(20, 60)).map(list),
    st.tuples(st.integers(0, 3), huge).map(list),
    st.tuples(number, number).map(list),
    st.lists(number, max_size=3),
    junk,
)
float_range = st.one_of(
    st.tuples(st.floats(0, 1), st.floats(1, 100)).map(list),
    st.tuples(st.floats(1e-6, 1), st.floats(1, 100)).map(list),
    st.tuples(st.sampled_from([-1e308, 0, 1e-300]), st.one_of(huge, st.sampled_from([1e308, 1.0]))).map(list),
    st.tuples(number, number).map(list),
    st.lists(number, max_size=3),
    junk,
)
when = st.one_of(
    st.dictionaries(key, st.one_of(scalar, st.lists(scalar, max_size=3)), max_size=2),
    st.dictionaries(st.sampled_from(NAMES), st.one_of(st.sampled_from(["a", "b", 1, 2, True]),
                                                       st.lists(st.sampled_from(["a", "b", 1, 2]), max_size=3),
                                                       st.dictionaries(st.text(max_size=2), scalar, max_size=1)),
                    min_size=1, max_size=2),
    junk,
)
modifiers = {"log": st.one_of(st.booleans(), st.booleans(), junk),
             "step": st.one_of(st.integers(1, 4), st.floats(0.01, 2), number, junk), "when": when}


def _leaf():
    good = st.one_of(
        st.fixed_dictionaries({"int": st.tuples(st.integers(0, 3), st.integers(3, 9)).map(list)}),
        st.fixed_dictionaries({"float": st.tuples(st.floats(1e-4, 1), st.floats(1, 10)).map(list)},
                              optional={"log": st.booleans()}),
        st.fixed_dictionaries({"choice": st.lists(st.sampled_from(["a", "b", "c", 1, 2, 2.5, None, True]),
                                                  min_size=1, max_size=4, unique_by=repr)}),
    )
    return st.one_of(
        good, good, good,
        scalar,
        st.fixed_dictionaries({"int": int_range}, optional=modifiers),
        st.fixed_dictionaries({"float": float_range}, optional=modifiers),
        st.fixed_dictionaries({"choice": st.one_of(st.lists(scalar, max_size=5), junk)},
                              optional={"when": when}),
        st.fixed_dictionaries({"value": junk}, optional={"when": when}),
        st.dictionaries(st.sampled_from(["int", "float", "choice", "value", "repeat", "log", "step", "when",
                                         "params", "bogus"]), junk, max_size=3),
        st.lists(scalar, max_size=3),
    )


def _params(children):
    return st.dictionaries(key, children, min_size=1, max_size=5) | st.dictionaries(key, children, max_size=2)


param = st.recursive(
    _leaf(),
    lambda children: st.fixed_dictionaries(
        {"repeat": st.one_of(name, junk)},
        optional={"params": st.one_of(_params(children), junk), "when": when},
    ),
    max_leaves=12,
)
params = _params(param)

objective = st.one_of(
    st.none(), st.text(max_size=8), st.sampled_from(["val_accuracy", "val_loss", "n_params"]),
    st.fixed_dictionaries({}, optional={"metric": st.one_of(st.sampled_from(["val_accuracy", "val_loss"]), junk),
                                        "direction": st.one_of(st.sampled_from(["maximize", "minimize"]), junk),
                                        "bogus": junk}),
    st.lists(st.one_of(st.sampled_from(["val_accuracy", "val_loss"]), junk), max_size=3),
    junk,
)

space_dict = st.one_of(
    st.fixed_dictionaries(
        {"params": st.one_of(params, junk)},
        optional={"family": st.one_of(st.sampled_from(["toy", "mlp"]), junk), "objective": objective,
                  "budget": st.one_of(st.dictionaries(st.sampled_from(["epochs", "steps"]), number, max_size=2),
                                      junk),
                  "description": junk, "bogus": junk},
    ),
    params,
    junk,
)



# -- near-valid spaces: built right, then each field goes wrong with some probability --------
def _maybe(draw, good, bad=None, p_bad=15):
    """``good`` most of the time, ``bad`` (default: junk) ``p_bad`` percent of the time."""
    if draw(st.integers(0, 99)) < p_bad:
        return draw(bad if bad is not None else st.one_of(junk, number))
    return draw(good)


@st.composite
def _near_valid_param(draw, earlier: dict, depth: int):
    kind = draw(st.sampled_from(["int", "int", "float", "float", "choice", "choice", "fixed", "value", "repeat",
                                 "junk"]))
    spec: dict = {}
    if kind == "int":
        low = _maybe(draw, st.integers(-3, 10), st.one_of(huge, number))
        high = _maybe(draw, st.integers(10, 64), st.one_of(huge, number))
        spec["int"] = _maybe(draw, st.just([low, high]), st.one_of(st.just([high, low]), int_range), p_bad=8)
        if draw(st.booleans()):
            spec["log"] = _maybe(draw, st.booleans(), p_bad=8)
        if draw(st.integers(0, 3)) == 0:
            spec["step"] = _maybe(draw, st.integers(1, 7), st.one_of(number, huge))
    elif kind == "float":
        low = _maybe(draw, st.floats(1e-5, 1.0), st.one_of(huge, number))
        high = _maybe(draw, st.floats(1.0, 1e3), st.one_of(huge, number))
        spec["float"] = _maybe(draw, st.just([low, high]), st.one_of(st.just([high, low]), float_range), p_bad=8)
        if draw(st.booleans()):
            spec["log"] = _maybe(draw, st.booleans(), p_bad=8)
        if draw(st.integers(0, 3)) == 0:
            spec["step"] = _maybe(draw, st.sampled_from([0.1, 0.25, 0.3, 1e-12, 0.5, 2.0]), number)
    elif kind == "choice":
        values = st.lists(st.one_of(st.sampled_from(["a", "b", "c", 1, 2, 2.5, None, True, 1.0, 0, False]),
                                    scalar), max_size=5)
        spec["choice"] = _maybe(draw, values, st.one_of(junk, st.lists(junk, max_size=3)))
    elif kind == "fixed":
        return draw(scalar)
    elif kind == "value":
        spec["value"] = draw(junk)
    elif kind == "repeat":
        ints = [n for n, p in earlier.items() if isinstance(p, dict) and "int" in p] or list(earlier) or ["n"]
        spec["repeat"] = _maybe(draw, st.sampled_from(ints), st.one_of(name, junk))
        if depth < 2:
            spec["params"] = _maybe(draw, _near_valid_params(depth + 1, dict(earlier)), p_bad=10)
        elif draw(st.booleans()):
            spec["params"] = draw(st.one_of(junk, params))
    else:
        return draw(st.one_of(junk, st.dictionaries(st.sampled_from(["int", "float", "choice", "value", "repeat",
                                                                      "log", "step", "when", "params", "bogus"]),
                                                    junk, max_size=3)))
    if earlier and draw(st.integers(0, 3)) == 0:
        ref = _maybe(draw, st.sampled_from(list(earlier)), key)
        target = earlier.get(ref)
        good_values = (st.sampled_from(target["choice"]) if isinstance(target, dict)
                       and isinstance(target.get("choice"), list) and target["choice"] else scalar)
        spec["when"] = _maybe(draw, st.fixed_dictionaries({ref: st.one_of(good_values, st.lists(good_values,
                                                                                                max_size=3))}),
                              when)
    if draw(st.integers(0, 12)) == 0:
        spec[draw(st.sampled_from(["bogus", "log", "step", "when", "params", "choice"]))] = draw(junk)
    return spec


@st.composite
def _near_valid_params(draw, depth: int = 0, earlier: dict | None = None):
    earlier = dict(earlier or {})
    out: dict = {}
    for _ in range(draw(st.integers(0 if depth else 1, 5))):
        nm = _maybe(draw, st.sampled_from(NAMES), key, p_bad=8)
        out[nm] = draw(_near_valid_param(earlier, depth))
        earlier[nm] = out[nm]
    return out


@st.composite
def _near_valid_space(draw):
    if draw(st.integers(0, 4)) == 0:
        return draw(wild_space)
    data: dict = {"params": draw(_near_valid_params())}
    if draw(st.integers(0, 3)) == 0:
        data["family"] = _maybe(draw, st.sampled_from(["toy", "mlp"]))
    if draw(st.integers(0, 3)) == 0:
        data["objective"] = _maybe(draw, st.sampled_from(["val_accuracy", {"metric": "val_loss"}, ["val_accuracy",
                                                          "n_params"]]), objective, p_bad=40)
    if draw(st.integers(0, 3)) == 0:
        data["budget"] = _maybe(draw, st.dictionaries(st.sampled_from(["epochs", "steps"]),
                                                      st.one_of(st.integers(1, 50), number), max_size=2))
    if draw(st.integers(0, 15)) == 0:
        data[draw(key)] = draw(junk)
    if draw(st.integers(0, 4)) == 0:
        return data["params"]  # the params mapping alone is a space too
    return data


wild_space = space_dict
space_dict = _near_valid_space()


def _dump(data) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


EVIL_YAML = [
    "!!python/object/apply:os.system ['echo pwned']",
    "params:\n  lr: !!python/object/apply:os.system ['echo pwned']\n",
    "params:\n  x: !!python/name:os.system\n",
    "params: !!binary aGVsbG8=\n",
    "params:\n  x: {choice: [a, b]\n",
    "params:\n\tx: 1\n",
    "a: &a [*a]\n",
    "params: {x: {int: [1, 2]}, x: {int: [3, 4]}}\n",
    "params:\n  d: 2020-01-01\n  s: !!set {a, b}\n",
    "%YAML 9.9\n---\nparams: {x: 1}\n",
    "[" * 2000,
    "\x00\x01\x02",
    "\ufeffparams: {x: 1}\n",
    "",
    "---\n...\n",
]

space_yaml = st.one_of(
    space_dict.map(_dump),
    st.tuples(space_dict.map(_dump), st.integers(0, 200)).map(lambda t: t[0][: t[1]]),  # truncated
    st.sampled_from(EVIL_YAML),
    st.text(max_size=80),
)


# -- specs -----------------------------------------------------------------------------------
STRATEGIES = ["tpe", "random", "grid", "nsga2", "cmaes", "qmc", "evolution", "controller", "bogus"]
PRUNERS = ["none", "median", "percentile", "sha", "hyperband", "bogus"]
text_or_junk = st.one_of(st.text(max_size=10), junk, st.lists(st.text(max_size=3), max_size=2))
option_map = st.one_of(st.none(), st.dictionaries(st.text(max_size=12), junk, max_size=2), junk)

spec_fields = {
    "task": st.one_of(st.sampled_from(["digits", "breast_cancer", "diabetes", "imagenet"]), text_or_junk),
    "space": st.one_of(st.none(), space_dict, st.sampled_from(["mlp", "mlp_small", "no_such_space", "../etc/passwd",
                                                               "a/b", "x.yaml", ""]), junk),
    "strategy": st.one_of(st.sampled_from(STRATEGIES), text_or_junk),
    "pruner": st.one_of(st.none(), st.sampled_from(PRUNERS), text_or_junk),
    "objective": objective,
    "budget": st.one_of(st.none(), number, st.dictionaries(st.sampled_from(["epochs", "steps"]), number, max_size=2),
                        junk),
    "trials": st.one_of(st.integers(-2, 50), number, junk),
    "seed": st.one_of(st.integers(-2, 2**40), number, junk),
    "timeout": st.one_of(st.none(), number, junk),
    "n_jobs": st.one_of(st.integers(-2, 8), number, junk),
    "backend": st.one_of(st.sampled_from(["local", "ray", "dask"]), text_or_junk),
    "tracking_uri": st.one_of(st.none(), st.sampled_from(["sqlite:///m.db", "sqlite:///", "http://127.0.0.1:1",
                                                          "file:///tmp/x", "mlflow.db", "", "::", "sqlite:///a\x00b"]),
                              text_or_junk),
    "experiment": st.one_of(st.none(), text_or_junk),
    "storage": st.one_of(st.none(), st.sampled_from(["sqlite:///o.db", "sqlite://", "postgresql://x", "nope",
                                                     "journal.log", "sqlite:///\x00"]), text_or_junk),
    "study_name": st.one_of(st.none(), st.sampled_from(["s1", "a b", "../x"]), text_or_junk),
    "resume": junk,
    "run_dir": st.one_of(st.sampled_from(["runs", "", "a\x00b"]), junk),
    "save_models": junk,
    "strategy_options": option_map,
    "pruner_options": option_map,
    "tags": option_map,
    "address": st.one_of(st.none(), st.sampled_from(["auto", "ray://h:1", "127.0.0.1:6379"]), text_or_junk),
    "cpus_per_trial": st.one_of(number, junk),
    "gpus_per_trial": st.one_of(number, junk),
    "max_concurrent": st.one_of(st.none(), number, junk),
    "scheduler": st.one_of(st.sampled_from(["none", "asha", "hyperband", "median", "pbt"]), text_or_junk),
    "scheduler_options": option_map,
    "max_failures": st.one_of(st.integers(-1, 5), number, junk),
    "max_params": st.one_of(st.none(), st.integers(-2, 10**6), number, junk),
    "max_flops": st.one_of(st.none(), st.integers(-2, 10**7), number, junk),
}
spec_kwargs_fields = set(spec_fields)
spec_kwargs = st.fixed_dictionaries({k: v for k, v in spec_fields.items()})
family = st.one_of(st.sampled_from(["toy", "toy", "toy", "mlp", "transformer"]), text_or_junk)


# -- CLI argv ------------------------------------------------------------------------------------
FLAGS = ["--task", "--space", "--strategy", "--strategy-option", "--pruner", "--pruner-option", "--objective",
         "--direction", "--trials", "--budget", "--seed", "--timeout", "--n-jobs", "--tracking-uri", "--experiment",
         "--storage", "--study-name", "--resume", "--run-dir", "--backend", "--address", "--cpus-per-trial",
         "--gpus-per-trial", "--max-concurrent", "--scheduler", "--scheduler-option", "--max-failures", "--max-params", "--max-flops", "--top",
         "-q", "--bogus", "--json", "--host", "--port"]
VALUES = ["digits", "toy", "mlp", "0", "-1", "2", "1e400", "nan", "inf", "x", "", "a=b", "a=[", "k=!!python/object:x",
          "=", "maximize", "val_accuracy", "ray", "asha", "sqlite:///m.db", "http://127.0.0.1:1", "mlp_small",
          "grace_period=0", "9" * 30, "ñ", "--"]
token = st.one_of(st.sampled_from(FLAGS), st.sampled_from(VALUES), st.text(max_size=8))
argv = st.one_of(
    st.tuples(st.sampled_from(["search", "spaces", "plugins", "ui", "bogus", "--help"]),
              st.lists(token, max_size=8)).map(lambda t: [t[0], *t[1]]),
    st.tuples(st.sampled_from(["toy", "mlp", "x"]), st.lists(st.tuples(st.sampled_from(FLAGS),
                                                                      st.sampled_from(VALUES)), max_size=5))
    .map(lambda t: ["search", t[0], *[x for pair in t[1] for x in pair]]),
    st.lists(token, max_size=6),
)


@st.composite
def spec_call(draw):
    """``(family, kwargs)`` for ``build_spec``: a valid toy search with one to three fields gone wrong.

    The toy family's default space is not shipped, so a valid call names a space dict.
    """
    from toy_family import TOY_SPACE

    kwargs = {"task": "digits", "space": TOY_SPACE, "trials": 2, "storage": "sqlite:///optuna.db",
              "tracking_uri": "sqlite:///mlflow.db"}
    family_name = "toy"
    wild = draw(spec_kwargs)
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from(sorted(spec_kwargs_fields) + ["family"]))
        if field == "family":
            family_name = draw(family)
        elif field in wild:
            kwargs[field] = wild[field]
    return family_name, kwargs
