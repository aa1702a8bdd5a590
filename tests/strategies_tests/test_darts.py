"""strategy="darts" (Liu et al. 2019, first order): the relaxed supernet, what alpha learns, MLflow, resume, bad input."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch

import nasforge
from conftest import runs_of
from nasforge.cli import main
from nasforge.data.tasks import load_task
from nasforge.errors import NasforgeError
from nasforge.family import NullReporter
from nasforge.spec.space import SearchSpace
from nasforge.stores.mlflow_runs import Tracker
from nasforge.strategies.oneshot.darts_phase import DartsPhase
from nasforge.strategies.oneshot.phase_options import TOP_ATTR, PhaseJob, check_options
from nasforge_mlp import MLPFamily

# A DARTS phase of a few seconds on digits (1257 train rows: 40 alpha steps and 40 weight steps per epoch).
TINY = {"supernet_epochs": 2, "candidates": 12}
CURVES = ("curve/shared_train_loss", "curve/arch_val_loss", "curve/arch_entropy", "curve/mixed_val_accuracy")


def test_darts_trains_a_relaxed_supernet_then_retrains_the_most_likely_architectures(store, tmp_path):
    result = nasforge.search("mlp", task="digits", strategy="darts", trials=3, budget=2, seed=0,
                             strategy_options=TINY, **store)

    top = result.study._storage.get_study_system_attrs(result.study._study_id)[TOP_ATTR]
    assert len(top) == 3 and [p["source"] for p in top] == ["argmax", "sample", "sample"]
    assert top[1]["score"] >= top[2]["score"]   # the picks after the argmax by log-probability under alpha
    trials = sorted(result.trials, key=lambda t: t.number)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    for trial, pick in zip(trials, top):
        assert {k: trial.params[k] for k in pick["params"]} == pick["params"]
    assert result.best_value > 0.5 and result.test_metrics["test_accuracy"] > 0.5   # chance is 0.1

    runs = runs_of(store["tracking_uri"], "mlp-digits")
    children = runs[runs["tags.mlflow.parentRunId"] == result.parent_run_id]
    supernet = children[children["tags.phase"] == "supernet"].iloc[0]
    assert supernet["status"] == "FINISHED" and supernet["tags.strategy"] == "darts"
    assert supernet["params.arch_lr"] == "0.003" and len(children[children["tags.phase"] == "retrain"]) == 3
    client = Tracker(tracking_uri=store["tracking_uri"], experiment_id=result.experiment_id).client
    steps = {key: [m.step for m in client.get_metric_history(supernet["run_id"], key)] for key in CURVES}
    per_epoch = math.ceil(len(load_task("digits", 0).x_train) / 32)
    assert steps["curve/shared_train_loss"] == steps["curve/arch_val_loss"] == list(range(1, 2 * per_epoch + 1))
    assert steps["curve/arch_entropy"] == steps["curve/mixed_val_accuracy"] == [1, 2]
    entropy = [m.value for m in client.get_metric_history(supernet["run_id"], "curve/arch_entropy")]
    assert entropy[-1] < entropy[0]   # alpha moved away from uniform
    with open(client.download_artifacts(supernet["run_id"], "top_architectures.json", str(tmp_path)),
              encoding="utf-8") as f:
        artifact = json.load(f)
    assert artifact["metric"] == "log_prob" and artifact["top"] == top
    argmax = {name: artifact["probabilities"][name] for name in artifact["probabilities"]}
    assert top[0]["params"]["n_layers"] == 1 + int(np.argmax(argmax["n_layers"]))   # the most likely depth


def test_darts_from_the_cli_on_the_rnn_cell(store, capsys):
    argv = ["search", "rnn", "--task", "digits", "--strategy", "darts", "--trials", "1", "--budget", "1", "-q",
            "--tracking-uri", store["tracking_uri"], "--storage", store["storage"], "--study-name", "darts-rnn",
            "--strategy-option", "supernet_epochs=1", "--strategy-option", "candidates=4"]
    assert main(argv) == 0
    assert "1 complete" in capsys.readouterr().out
    runs = runs_of(store["tracking_uri"], "rnn-digits")
    phase = runs[runs["tags.phase"] == "supernet"].iloc[0]
    assert phase["status"] == "FINISHED" and phase["tags.strategy"] == "darts"


# -- bad input: a clear error before anything is trained or written -------------------------------
@pytest.mark.parametrize("kwargs, message", [
    ({"family": "autoencoder"}, "family 'autoencoder' has none (Family.supernet); families with one: cnn, mlp, rnn"),
    ({"family": "cnn", "space": "cnn_enas"}, "cannot search cnn_enas.yaml (shipped): parameter 'blocks.0.pool'"),
    ({"objective": ["val_accuracy", "n_params"]}, "'darts' handles a single objective"),
    ({"strategy_options": {"controller_lr": 0.1}}, "strategy 'darts' has no option 'controller_lr': it learns"),
    ({"strategy_options": {"eval_batch_size": 64}}, "no option 'eval_batch_size'"),
    ({"strategy_options": {"finalists": 3}}, "ranks its picks by those parameters"),
    ({"strategy_options": {"arch_lr": 0}}, "arch_lr must be a positive number"),
    ({"strategy_options": {"warmup_epochs": 40}}, "the architecture parameters needs epochs"),
    ({"strategy": "enas", "strategy_options": {"arch_lr": 0.1}}, "strategy 'enas' has no option 'arch_lr'"),
    ({"strategy": ["darts", "tpe"]}, "'darts' cannot run side by side with 'tpe'"),
])
def test_bad_darts_input_is_refused_up_front(store, kwargs, message):
    family = kwargs.pop("family", "mlp")
    kwargs.setdefault("strategy", "darts")
    with pytest.raises(NasforgeError) as info:
        nasforge.search(family, task="digits", trials=2, **kwargs, **store)
    assert message in str(info.value)
    assert not os.path.exists(store["tracking_uri"][len("sqlite:///"):])   # nothing written
    assert not os.path.exists(store["storage"][len("sqlite:///"):])


def test_a_family_without_a_mixed_forward_names_those_with_one(store):
    class NoMixMLP(MLPFamily):
        name = "mlp_nomix"
        supports_darts = False

    class Plugin:
        @nasforge.hookimpl
        def register_families(self, register):
            register(NoMixMLP())

    plugin = Plugin()
    nasforge.register(plugin)
    try:
        with pytest.raises(NasforgeError, match="family 'mlp_nomix'.s supernet has no mixed forward .*families with "
                                                "one: cnn, mlp, rnn; strategy='enas' or 'rsws' search 'mlp_nomix'"):
            nasforge.search("mlp_nomix", task="digits", strategy="darts", **store)
    finally:
        nasforge.unregister(plugin)


# -- what alpha learns --------------------------------------------------------------------------
TOY = {"params": {  # 6 networks, from hopeless (1 unit) to good (32 units)
    "n_layers": 1,
    "layers": {"repeat": "n_layers",
               "params": {"units": {"choice": [1, 4, 32]}, "activation": {"choice": ["relu", "tanh"]}}},
    "lr": 3e-3,
}}


def _phase(store, space, options, *, seed=0, run_id=None, cls=DartsPhase):
    tracker = Tracker.for_experiment(tracking_uri=store["tracking_uri"], experiment="phase")
    run_id = run_id or tracker.start_run(name="phase", tags={})
    job = PhaseJob(strategy="darts", family="mlp", task="digits", data_digest=None, space=space, seed=seed,
                   options=check_options("darts", options), top=3, tracking_uri=store["tracking_uri"],
                   experiment_id=tracker.experiment_id, run_id=run_id)
    return cls(job=job, tracker=tracker)


def test_alpha_puts_its_weight_on_architectures_that_are_better_stand_alone(store):
    """After the phase, the softmax of alpha puts its probability on networks that train better on their
    own than a uniform draw does (each of the 6 trained stand-alone once to know)."""
    space = SearchSpace.from_dict(TOY)
    phase = _phase(store, space, {"supernet_epochs": 6})
    phase.run()
    family, task = MLPFamily(), load_task("digits", 0)
    grid = [{"layers.0.units": u, "layers.0.activation": a} for u in (1, 4, 32) for a in ("relu", "tanh")]
    alone = []
    for flat in grid:
        config = family.make_config(space.config_from_flat({"n_layers": 1, **flat}))
        torch.manual_seed(0)
        model = family.build(config, task)
        alone.append(family.fit(model, task, config, {"epochs": 5}, NullReporter())["val_accuracy"])
    probs = np.exp([phase.architecture.log_prob(flat) for flat in grid])
    assert probs.sum() == pytest.approx(1.0, abs=1e-4)
    darts, uniform = float(probs @ np.array(alone)), float(np.mean(alone))
    assert darts > uniform + 0.1, (darts, uniform, alone, probs)   # measured 0.72 vs 0.52
    assert phase.architecture.most_likely()["layers.0.units"] == 32


class _StopInSecondEpoch(DartsPhase):
    def train_shared(self):
        if self.epoch == 1:
            raise KeyboardInterrupt
        super().train_shared()


def test_a_darts_phase_continued_from_its_checkpoint_ends_as_an_uninterrupted_one(store):
    space = SearchSpace.load("mlp_enas")
    options = {"supernet_epochs": 3, "candidates": 8}
    whole = _phase(store, space, options, seed=4)
    expected = whole.run()
    cut = _phase(store, space, options, seed=4, cls=_StopInSecondEpoch)
    with pytest.raises(KeyboardInterrupt):
        cut.run()
    resumed = _phase(store, space, options, seed=4, run_id=cut.job.run_id)
    got = resumed.run()
    assert got["top"] == expected["top"] and got["probabilities"] == expected["probabilities"]
    for a, b in zip(resumed.architecture.alpha, whole.architecture.alpha):
        assert torch.equal(a, b)
