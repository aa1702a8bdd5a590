"""Ray backend options are checked up front (no Ray is started here), and the CLI passes them on."""

import pytest

from nasforge.cli import main
from nasforge.errors import SpecError
from nasforge.executors.ray_schedulers import hyperband_brackets
from nasforge.spec.arguments import build_spec
from toy_family import TOY_SPACE



def _spec(**kwargs):
    return build_spec("toy", space=TOY_SPACE, budget=9, **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"scheduler": "pbt"}, "family 'toy' does not save or restore checkpoints; families that do: cnn, mlp, rnn"),
    ({"scheduler": "fifo"}, "unknown scheduler 'fifo'; valid schedulers: none, asha, hyperband, median"),
    ({"scheduler": "asha", "scheduler_options": {"eta": 3}},
     "scheduler 'asha' has no option 'eta'; valid options: grace_period, reduction_factor, brackets"),
    ({"scheduler": "asha", "scheduler_options": {"reduction_factor": 1}}, "scheduler_options.reduction_factor"),
    ({"scheduler": "median", "scheduler_options": {"grace_period": 10}}, "grace_period=10 exceeds the budget (9)"),
    ({"gpus_per_trial": 1.5}, "gpus_per_trial must be a fraction of one GPU"),
    ({"gpus_per_trial": -1}, "gpus_per_trial must be a number >= 0"),
    ({"cpus_per_trial": 0}, "cpus_per_trial must be a number > 0"),
    ({"max_concurrent": 0}, "max_concurrent must be an integer >= 1"),
    ({"max_failures": -1}, "max_failures must be an integer >= 0"),
    ({"pruner": "median"}, "pruner='median' is an Optuna pruner for backend='local'; with backend='ray' use sched"),
    ({"n_jobs": 2}, "n_jobs=2 is for backend='local'; with backend='ray' use max_concurrent"),
    ({"address": "ray://head:10001"}, "Ray Client (ray://)"),
    ({"runtime_env": ["pip"]}, "runtime_env must be a mapping of Ray runtime_env fields"),
    ({"runtime_env": {"py_modules": ["/no/such/plugin_dir"]}},
     "runtime_env py_modules: '/no/such/plugin_dir' does not exist (Ray uploads local py_modules paths"),
    ({"runtime_env": {"working_dir": "/no/such/dir"}}, "runtime_env working_dir: '/no/such/dir' does not exist"),
])
def test_bad_ray_options_name_the_field(toy, kwargs, message):
    with pytest.raises(SpecError) as info:
        _spec(backend="ray", **kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize("option", [{"gpus_per_trial": 0.25}, {"scheduler": "asha"}, {"address": "auto"},
                                    {"max_concurrent": 2}, {"runtime_env": {"env_vars": {"A": "1"}}}])
def test_ray_options_are_refused_by_the_local_backend(toy, option):
    (key, value), = option.items()
    with pytest.raises(SpecError, match=f"{key}={value!r} applies only to backend='ray'"):
        _spec(**option)


def test_schedulers_refuse_several_objectives(toy):
    with pytest.raises(SpecError, match="multi-objective search needs scheduler='none'"):
        _spec(backend="ray", scheduler="asha", strategy="nsga2", objective=["val_accuracy", "n_params"])


def test_good_options_land_in_the_spec_and_the_parent_run_params(toy):
    spec = _spec(backend="ray", address="auto", gpus_per_trial=0.25, cpus_per_trial=0.5, max_concurrent=4,
                 scheduler="hyperband", scheduler_options={"reduction_factor": 2}, max_failures=0,
                 runtime_env={"env_vars": {"A": "1"}})
    assert (spec.address, spec.gpus_per_trial, spec.cpus_per_trial, spec.max_concurrent, spec.scheduler,
            spec.scheduler_options, spec.max_failures) == ("auto", 0.25, 0.5, 4, "hyperband",
                                                           {"reduction_factor": 2}, 0)
    summary = spec.summary()
    assert summary["ray.gpus_per_trial"] == 0.25 and summary["ray.scheduler.reduction_factor"] == 2
    assert summary["ray.runtime_env"] == '{"env_vars": {"A": "1"}}'
    assert not any(k.startswith("ray.") for k in _spec().summary())


def test_hyperband_uses_every_early_stopping_rate():
    # max_t=9, eta=3: rungs 1, 3, 9 -> brackets s = 0, 1, 2 (Li et al. 2020, asynchronous Hyperband)
    assert hyperband_brackets(9, 1, 3) == 3
    assert hyperband_brackets(8, 1, 2) == 4
    assert hyperband_brackets(10, 1, 3) == 3
    assert hyperband_brackets(1, 1, 3) == 1


def test_the_cli_passes_ray_options_through(capsys):
    base = ["search", "mlp", "--task", "digits", "--space", "mlp_small", "--trials", "1", "--budget", "3", "-q"]
    assert main(base + ["--backend", "ray", "--scheduler", "pbt"]) == 2
    assert "strategy 'tpe' cannot run with pbt, use one of: random" in capsys.readouterr().err
    assert main(base + ["--gpus-per-trial", "0.25"]) == 2
    assert "gpus_per_trial=0.25 applies only to backend='ray'" in capsys.readouterr().err
    assert main(base + ["--backend", "ray", "--scheduler", "asha", "--scheduler-option", "eta=2"]) == 2
    assert "has no option 'eta'" in capsys.readouterr().err


def test_the_cli_reads_runtime_env_inline_or_from_a_file(capsys, tmp_path):
    base = ["search", "mlp", "--task", "digits", "--space", "mlp_small", "--trials", "1", "--budget", "3", "-q"]
    # parsed, then refused by the local backend: the value reached the spec
    assert main(base + ["--runtime-env", '{"env_vars": {"A": "1"}}']) == 2
    assert "runtime_env={'env_vars': {'A': '1'}} applies only to backend='ray'" in capsys.readouterr().err
    (tmp_path / "env.yaml").write_text("env_vars:\n  A: '1'\n")
    assert main(base + ["--runtime-env", str(tmp_path / "env.yaml")]) == 2
    assert "runtime_env={'env_vars': {'A': '1'}} applies only to backend='ray'" in capsys.readouterr().err
    assert main(base + ["--backend", "ray", "--runtime-env", "{bad"]) == 2
    assert "--runtime-env: not valid JSON/YAML" in capsys.readouterr().err
    assert main(base + ["--backend", "ray", "--runtime-env", str(tmp_path / "missing.json")]) == 2
    assert "not inline JSON and not a readable file" in capsys.readouterr().err
