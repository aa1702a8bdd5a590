import optuna
import pytest

from nasforge.errors import SpaceError, UnknownNameError
from nasforge.spec.space import (ChoiceParam, FixedParam, FloatParam, IntParam, RepeatBlock, SearchSpace,
                            flatten, shipped_space_names)

SPACE = {
    "family": "mlp",
    "objective": {"metric": "val_accuracy", "direction": "maximize"},
    "budget": {"epochs": 7},
    "params": {
        "n_layers": {"int": [1, 3]},
        "layers": {
            "repeat": "n_layers",
            "params": {
                "units": {"int": [16, 512], "log": True},
                "activation": {"choice": ["relu", "tanh"]},
                "dropout": {"float": [0.0, 0.5], "step": 0.25},
            },
        },
        "optimizer": {"choice": ["adam", "sgd"]},
        "lr": {"float": [1e-4, 1e-1], "log": True},
        "momentum": {"float": [0.0, 0.99], "when": {"optimizer": "sgd"}},
        "batch_size": 64,
    },
}


def test_parses_every_kind_of_parameter():
    space = SearchSpace.from_dict(SPACE)
    kinds = {p.name: type(p) for p in space.params}
    assert kinds == {"n_layers": IntParam, "layers": RepeatBlock, "optimizer": ChoiceParam,
                     "lr": FloatParam, "momentum": FloatParam, "batch_size": FixedParam}
    assert space.family == "mlp" and dict(space.budget) == {"epochs": 7}
    assert space.objectives[0].metric == "val_accuracy"
    assert space.params[1].max_count == 3


def test_sampling_follows_repeats_and_conditions():
    space = SearchSpace.from_dict(SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen_sgd = seen_adam = False
    for _ in range(40):
        trial = study.ask()
        config = space.sample(trial)
        assert len(config["layers"]) == config["n_layers"]
        assert config["batch_size"] == 64
        if config["optimizer"] == "sgd":
            seen_sgd = True
            assert 0.0 <= config["momentum"] <= 0.99
        else:
            seen_adam = True
            assert "momentum" not in config and "momentum" not in trial.params
        for i, layer in enumerate(config["layers"]):
            assert 16 <= layer["units"] <= 512 and layer["dropout"] in (0.0, 0.25, 0.5)
            assert trial.params[f"layers.{i}.units"] == layer["units"]
        assert not any(k.startswith(f"layers.{config['n_layers']}.") for k in trial.params)
        # the flat Optuna params rebuild the same nested configuration
        assert space.config_from_flat(trial.params) == config
        study.tell(trial, 0.0)
    assert seen_sgd and seen_adam


def test_to_optuna_and_grid_cover_every_possible_parameter():
    space = SearchSpace.from_dict(SPACE)
    dists = space.to_optuna()
    assert "layers.2.units" in dists and dists["layers.2.units"].log
    assert "batch_size" not in dists  # fixed values are not searched
    with pytest.raises(SpaceError, match="lr"):
        space.grid()
    small = SearchSpace.load("mlp_small")
    grid = small.grid()
    assert all(isinstance(v, list) and v for v in grid.values())


def test_flatten_names_match_optuna_names():
    config = {"n_layers": 2, "layers": [{"units": 8}, {"units": 16}], "lr": 0.1}
    assert flatten(config) == {"n_layers": 2, "layers.0.units": 8, "layers.1.units": 16, "lr": 0.1}


def test_plain_params_mapping_is_accepted():
    space = SearchSpace.from_dict({"lr": {"float": [0.1, 1.0]}})
    assert space.names() == ["lr"] and space.objectives == ()


def test_shipped_spaces_load_by_name_and_unknown_names_list_them():
    assert "mlp" in shipped_space_names()
    assert SearchSpace.load("mlp").family == "mlp"
    with pytest.raises(UnknownNameError, match="mlp"):
        SearchSpace.load("no_such_space")


@pytest.mark.parametrize("params, path, message", [
    ({"lr": {"float": [1.0, 0.1]}}, "params.lr.float", "must not exceed"),
    ({"lr": {"float": [0.0, 1.0], "log": True}}, "params.lr.float", "low > 0"),
    ({"lr": {"float": [0.1, 1.0], "log": True, "step": 0.1}}, "params.lr.step", "cannot be combined"),
    ({"n": {"int": [1.5, 3]}}, "params.n.int", "integer"),
    ({"n": {"int": [1, 3], "step": 0}}, "params.n.step", "positive"),
    ({"n": {"int": [1, 3], "lgo": True}}, "params.n", "unknown key 'lgo'"),
    ({"n": {"int": [1, 3], "choice": [1]}}, "params.n", "exactly one of"),
    ({"act": {"choice": []}}, "params.act.choice", "non-empty"),
    ({"act": {"choice": ["a", "a"]}}, "params.act.choice", "distinct"),
    ({"act": ["relu", "tanh"]}, "params.act", "ambiguous"),
    ({"m": {"float": [0, 1], "when": {"opt": "sgd"}}}, "params.m.when.opt", "not a parameter written before"),
    ({"opt": {"choice": ["adam"]}, "m": {"float": [0, 1], "when": {"opt": "sgd"}}},
     "params.m.when.opt", "'sgd' is not a choice"),
    ({"layers": {"repeat": "n", "params": {"u": {"int": [1, 2]}}}}, "params.layers.repeat", "int parameter"),
    ({"n": {"int": [1, 2]}, "layers": {"repeat": "n"}}, "params.layers", "needs 'params'"),
    ({"n": {"int": [1, 2]}, "layers": {"repeat": "n", "params": {"u": {"int": ["a", 2]}}}},
     "params.layers.params.u.int", "integer"),
    ({"bad-name": 3}, "params.bad-name", "identifier"),
])
def test_bad_spaces_name_the_field(params, path, message):
    with pytest.raises(SpaceError) as info:
        SearchSpace.from_dict({"params": params}, source="my.yaml")
    text = str(info.value)
    assert text.startswith("my.yaml: ") and path in text and message in text


def test_bad_top_level_and_objective():
    with pytest.raises(SpaceError, match="unknown top-level key 'parms'.*valid keys"):
        SearchSpace.from_dict({"parms": {}, "params": {"a": 1}})
    with pytest.raises(SpaceError, match="objective.direction.*maximize, minimize"):
        SearchSpace.from_dict({"objective": {"metric": "x", "direction": "up"}, "params": {"a": 1}})
    with pytest.raises(SpaceError, match="budget.epochs.*positive"):
        SearchSpace.from_dict({"budget": {"epochs": 0}, "params": {"a": 1}})
    with pytest.raises(SpaceError, match="at least one parameter"):
        SearchSpace.from_dict({"params": {}})


def test_yaml_files_load_and_errors_name_the_file_and_line(tmp_path):
    good = tmp_path / "space.yaml"
    good.write_text("params:\n  lr: {float: [1.0e-3, 1.0e-1], log: true}\n  opt: {choice: [adam, sgd]}\n")
    assert SearchSpace.load(good).names() == ["lr", "opt"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("params:\n  lr: {float: [1, 2]\n  opt: x\n")
    with pytest.raises(SpaceError, match=r"bad\.yaml: invalid YAML: line \d+"):
        SearchSpace.load(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("params:\n  lr: {float: [2, 1]}\n")
    with pytest.raises(SpaceError, match=r"wrong\.yaml: params\.lr\.float"):
        SearchSpace.load(wrong)
    with pytest.raises(SpaceError, match="not found"):
        SearchSpace.load(tmp_path / "missing.yaml")


def test_yaml_is_loaded_safely(tmp_path):
    evil, trace = tmp_path / "evil.yaml", tmp_path / "hacked"
    evil.write_text(f"params:\n  a: !!python/object/apply:os.system ['touch {trace}']\n")
    with pytest.raises(SpaceError, match="invalid YAML"):
        SearchSpace.load(evil)
    assert not trace.exists()   # the command never ran
