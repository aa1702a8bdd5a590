"""Weight-sharing searches (enas, rsws): the supernet phase, its picks retrained, MLflow, resume, bad input."""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import optuna
import pytest
import torch

import nasforge
from conftest import runs_of
from nasforge.cli import main, print_summary
from nasforge.data.tasks import load_task
from nasforge.errors import ConfigError, NasforgeError, SpecError
from nasforge.family import NullReporter
from nasforge.spec.space import SearchSpace
from nasforge.stores.mlflow_runs import Tracker
from nasforge.strategies.oneshot.phase import SupernetPhase
from nasforge.strategies.oneshot.phase_options import RANK_ATTR, TOP_ATTR, PhaseJob, check_options
from nasforge.strategies.oneshot.retrain_sampler import TopArchitecturesSampler
from nasforge_mlp import MLPFamily

# A supernet phase of a few seconds on digits (1257 train rows: 40 shared steps per epoch).
TINY = {"supernet_epochs": 2, "controller_steps": 2, "controller_batch": 4, "candidates": 12, "finalists": 3,
        "finetune_epochs": 1}
CURVES = ("curve/shared_train_loss", "curve/controller_reward", "curve/baseline", "curve/entropy",
          "curve/sampled_val_accuracy")


def _children(store, experiment, parent):
    runs = runs_of(store["tracking_uri"], experiment)
    return runs[runs["tags.mlflow.parentRunId"] == parent]


def test_enas_trains_a_supernet_then_retrains_its_picks_as_ordinary_trials(store):
    with warnings.catch_warnings():
        warnings.simplefilter("error", nasforge.SupernetWarning)   # this supernet learns: no warning
        # Adam: two epochs of SGD leave the best shared score anywhere in 0.2-0.76 across seeds
        result = nasforge.search("mlp", task="digits", strategy="enas", trials=3, budget=2, seed=0,
                                 strategy_options={**TINY, "warmup_epochs": 0, "shared_optimizer": "adam",
                                                   "shared_lr": 3e-3}, **store)

    top = result.study._storage.get_study_system_attrs(result.study._study_id)[TOP_ATTR]
    assert len(top) == 3 and sum(p["source"] == "argmax" for p in top) == 1
    finetuned = [p["finetuned_score"] for p in top if "finetuned_score" in p]   # the 3 finalists, the argmax may not be
    assert len(finetuned) >= 2 and finetuned == sorted(finetuned, reverse=True)
    trials = sorted(result.trials, key=lambda t: t.number)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert [t.user_attrs["shared_rank"] for t in trials] == [0, 1, 2]
    assert [t.user_attrs.get("finetuned_score") for t in trials] == [p.get("finetuned_score") for p in top]
    for trial, pick in zip(trials, top):   # each trial retrains its pick, with the space's fixed settings
        assert {k: trial.params[k] for k in pick["params"]} == pick["params"]
        assert result.spec.space.config_from_flat(trial.params)["lr"] == 3e-3
    assert result.best_value == max(t.values[0] for t in trials) > 0.5   # chance is 0.1
    assert isinstance(result.best_model(), torch.nn.Module) and result.test_metrics["test_accuracy"] > 0.5
    # the leaderboard and the summary table say which pick each trial retrained and its shared score
    board = result.leaderboard().set_index("trial")
    assert [board.loc[t.number, "shared_score"] for t in trials] == [p["score"] for p in top]
    assert [board.loc[t.number, "shared_rank"] for t in trials] == [0, 1, 2]
    summary = io.StringIO()
    print_summary(result, file=summary)
    lines = summary.getvalue().splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["trial"])
    assert lines[header].split()[:3] == ["trial", "val_accuracy", "shared"]
    shown = {int(line.split()[0]): line.split()[2] for line in lines[header + 1:header + 4]}
    assert shown == {t.number: f"{t.user_attrs['shared_score']:.4f}" for t in trials}
    assert "(shared: the pick's score with the supernet's shared weights" in summary.getvalue()
    assert "no better than ignoring the inputs" not in summary.getvalue()

    children = _children(store, "mlp-digits", result.parent_run_id)
    supernet = children[children["tags.phase"] == "supernet"]
    retrain = children[children["tags.phase"] == "retrain"]
    assert len(supernet) == 1 and len(retrain) == 3 and len(children) == 4
    run = supernet.iloc[0]
    assert run["status"] == "FINISHED" and run["tags.strategy"] == "enas" and run["params.supernet_epochs"] == "2"
    assert set(retrain["status"]) == {"FINISHED"} and set(retrain["tags.strategy"]) == {"enas"}
    client = Tracker(tracking_uri=store["tracking_uri"], experiment_id=result.experiment_id).client
    steps = {key: [m.step for m in client.get_metric_history(run["run_id"], key)] for key in CURVES}
    shared_steps = 2 * math.ceil(len(load_task("digits", 0).x_train) / 32)
    assert steps["curve/shared_train_loss"] == list(range(1, shared_steps + 1))
    for key in CURVES[1:]:   # one point per controller update: 2 epochs x 2 steps
        assert steps[key] == [1, 2, 3, 4], key
    assert run["metrics.phase_epochs_equivalent"] == pytest.approx(2.0 + 3 * 1)   # + 3 finalists' fine-tuning
    # the best path against predicting the most frequent class (10 classes: ~0.1)
    assert run["tags.beats_chance"] == "true" and run["metrics.best_vs_chance_z"] > 3
    assert 0.05 < run["metrics.chance_score"] < 0.15 < 0.4 < run["metrics.best_shared_val_accuracy"]
    with open(client.download_artifacts(run["run_id"], "top_architectures.json", str(store_dir(store))),
              encoding="utf-8") as f:
        artifact = json.load(f)
    assert artifact["top"] == top and len(artifact["candidates"]) >= 3

    loaded = nasforge.load(result.study.study_name, tracking_uri=store["tracking_uri"])
    assert loaded.best_value == result.best_value and loaded.spec.strategy == "enas"


def store_dir(store):
    return os.path.dirname(store["storage"][len("sqlite:///"):])


def test_rsws_from_the_cli_samples_uniformly_and_logs_no_controller(store, capsys):
    argv = ["search", "mlp", "--task", "digits", "--strategy", "rsws", "--trials", "2", "--budget", "1",
            "--tracking-uri", store["tracking_uri"], "--storage", store["storage"], "--study-name", "rsws"]
    for key, value in TINY.items():
        argv += ["--strategy-option", f"{key}={value}"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "2 complete" in out
    # a bar of the phase's epochs (with its curves), then the trials' bar
    epochs = TINY["supernet_epochs"]
    assert "supernet (rsws):   0%|" in err and f"| {epochs}/{epochs} [" in err and "path val acc=" in err
    assert err.index("supernet (rsws): 100%") < err.index("?trial/s]")
    runs = runs_of(store["tracking_uri"], "mlp-digits")
    run = runs[runs["tags.phase"] == "supernet"].iloc[0]
    client = Tracker(tracking_uri=store["tracking_uri"], experiment_id=run["experiment_id"]).client
    metrics = set(client.get_run(run["run_id"]).data.metrics)
    assert {"curve/shared_train_loss", "curve/sampled_val_accuracy"} <= metrics
    assert not metrics & {"curve/controller_reward", "curve/baseline", "curve/entropy"}
    study = optuna.load_study(study_name="rsws", storage=store["storage"])
    assert {p["source"] for p in study._storage.get_study_system_attrs(study._study_id)[TOP_ATTR]} == {"sample"}


def test_weight_sharing_searches_your_own_data(store):
    from sklearn.datasets import load_wine

    x, y = load_wine(return_X_y=True)
    result = nasforge.search("mlp", data=(x, y), strategy="rsws", trials=1, budget=2, seed=0, save_models=False,
                             plots=False, strategy_options=TINY, **store)
    assert result.spec.data is not None and result.best_value > 0.5   # 3 classes
    runs = runs_of(store["tracking_uri"], result.spec.experiment)
    assert runs[runs["tags.phase"] == "supernet"].iloc[0]["status"] == "FINISHED"


def test_a_supernet_that_learns_nothing_says_so_and_the_search_goes_on(store):
    """Labels independent of the inputs: no path can beat predicting the most frequent class, so the
    phase warns that its picks are as good as random draws, and the picks are still retrained."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(600, 8)), rng.integers(0, 2, 600)
    with pytest.warns(nasforge.SupernetWarning, match=r"the supernet's best path scores accuracy 0\.\d+ on \d+ "
                                                      r"validation rows, no better than predicting the train "
                                                      r"split's most frequent class \(0\.\d+; paired z = "):
        result = nasforge.search("mlp", data=(x, y), strategy="rsws", trials=2, budget=1, seed=0, plots=False,
                                 strategy_options=TINY, **store)
    assert [t.state.name for t in result.trials] == ["COMPLETE"] * 2
    run = runs_of(store["tracking_uri"], result.spec.experiment).query("`tags.phase` == 'supernet'").iloc[0]
    assert run["status"] == "FINISHED" and run["tags.beats_chance"] == "false"
    assert run["metrics.best_vs_chance_z"] < 3 and 0.4 < run["metrics.chance_score"] < 0.6
    summary = io.StringIO()   # the summary of the search reopened later says it too
    print_summary(nasforge.load(result.study.study_name, tracking_uri=store["tracking_uri"]), file=summary)
    assert "warning: the supernet's best path was no better than ignoring the inputs" in summary.getvalue()


def test_the_cli_prints_the_warning_as_its_other_messages(store, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "noise.npz", x=rng.normal(size=(600, 8)), y=rng.integers(0, 2, 600))
    argv = [sys.executable, "-m", "nasforge.cli", "search", "mlp", "--data", str(tmp_path / "noise.npz"),
            "--strategy", "rsws", "--trials", "1", "--budget", "1", "--tracking-uri", store["tracking_uri"],
            "--storage", store["storage"], "--no-plots"]
    for key, value in TINY.items():
        argv += ["--strategy-option", f"{key}={value}"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=tmp_path)   # writes nothing here
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "nasforge: warning (SupernetWarning): the supernet's best path scores accuracy" in proc.stderr
    assert "warn_at_chance(" not in proc.stderr   # no source line


# -- bad input: a clear error before anything is trained or written -------------------------------
MLP_LR_VARIES = {"params": {"n_layers": 1, "layers": {"repeat": "n_layers", "params": {"units": {"choice": [8, 16]}}},
                            "lr": {"float": [1e-4, 1e-2], "log": True}}}


@pytest.mark.parametrize("kwargs, message", [
    ({"family": "autoencoder", "strategy": "enas"},
     "family 'autoencoder' has none (Family.supernet); families with one: cnn, mlp, rnn"),
    ({"strategy": "enas", "objective": ["val_accuracy", "n_params"]}, "'enas' handles a single objective"),
    ({"strategy": "rsws", "space": MLP_LR_VARIES}, "cannot hold parameter 'lr'"),
    ({"strategy": "enas", "space": "mlp"}, "cannot hold parameter 'optimizer'"),
    ({"strategy": ["enas", "tpe"]}, "cannot run side by side with 'tpe'"),
    ({"strategy": ["random", "rsws"]}, "'rsws' cannot run side by side with 'random'"),
    ({"strategy": "enas", "strategy_options": {"epochs": 3}}, "no option 'epochs'"),
    ({"strategy": "rsws", "strategy_options": {"controller_lr": 0.1}}, "trains no controller"),
    ({"strategy": "enas", "strategy_options": {"supernet_epochs": 0}}, "supernet_epochs must be an integer >= 1"),
    ({"strategy": "rsws", "strategy_options": {"finetune_lr": 0}}, "finetune_lr must be a positive number"),
    ({"strategy": "enas", "strategy_options": {"finalists": 0}}, "finalists must be an integer >= 1"),
])
def test_bad_weight_sharing_input_is_refused_up_front(store, kwargs, message):
    family = kwargs.pop("family", "mlp")
    with pytest.raises(NasforgeError) as info:
        nasforge.search(family, task="digits", trials=2, **kwargs, **store)
    assert message in str(info.value)
    assert not os.path.exists(store["tracking_uri"][len("sqlite:///"):])   # nothing written
    assert not os.path.exists(store["storage"][len("sqlite:///"):])


# -- what the phase learns ---------------------------------------------------------------------
def _phase(store, strategy, space, options, *, seed=0, top=3, family="mlp"):
    tracker = Tracker.for_experiment(tracking_uri=store["tracking_uri"], experiment="phase")
    run_id = tracker.start_run(name="phase", tags={})
    job = PhaseJob(strategy=strategy, family=family, task="digits", data_digest=None, space=space, seed=seed,
                   options=check_options(strategy, options), top=top, tracking_uri=store["tracking_uri"],
                   experiment_id=tracker.experiment_id, run_id=run_id)
    phase = SupernetPhase(job=job, tracker=tracker)
    return phase, phase.run()


def test_supernet_paths_train_well_above_chance(store):
    _, result = _phase(store, "rsws", SearchSpace.load("mlp_enas"), {"supernet_epochs": 20, "controller_steps": 1})
    scores = [c["shared_val_accuracy"] for c in result["candidates"]]
    assert len(scores) > 50 and np.median(scores) > 0.6   # chance is 0.1; measured 0.87


def test_draws_that_build_the_same_network_are_one_candidate(store):
    """In ``rnn_enas`` a node's ``input`` wraps onto the earlier nodes: the second node reads the
    first whatever its value (0-3), so a one-node cell has 4 spellings. Each network is scored once,
    and the picks retrained are distinct networks, not one cell under several names."""
    options = {"supernet_epochs": 1, "controller_steps": 1, "candidates": 100}
    phase, result = _phase(store, "rsws", SearchSpace.load("rnn_enas"), options, top=5, family="rnn")
    ranked = result["candidates"]
    cells = [(c["params"]["enas_activation"], tuple(n.input for n in phase.config(c["params"]).nodes),
              tuple(n.activation for n in phase.config(c["params"]).nodes)) for c in ranked]
    assert len(set(cells)) == len(cells)   # no network twice
    one_node = [c for c in ranked if c["params"]["n_nodes"] == 1]
    # ~25 of 100 uniform draws have one node, 16 one-node cells exist: several were drawn twice or more
    assert len(one_node) <= 16 and sum(c["draws"] for c in one_node) > len(one_node)
    assert sum(c["draws"] for c in ranked) == 100
    assert result["top"] == ranked[:5]   # so five different cells are retrained


def test_the_best_scored_candidates_are_fine_tuned_and_ranked_by_their_new_score(store):
    """The ``finalists`` best shared-weight scores train on their own path from a copy of the shared
    weights, come first ordered by their new score, and leave the shared weights as they were."""
    options = {"supernet_epochs": 2, "controller_steps": 1, "finalists": 6, "finetune_epochs": 2}
    phase, result = _phase(store, "rsws", SearchSpace.load("mlp_enas"), options)
    ranked = result["candidates"]
    finalists = [e for e in ranked if "finetuned_val_accuracy" in e]
    assert ranked[:6] == finalists and len(ranked) > 6
    assert [e["finetuned_reward"] for e in finalists] == sorted((e["finetuned_reward"] for e in finalists),
                                                                reverse=True)
    assert sorted(e["shared_val_accuracy"] for e in finalists) == sorted(
        e["shared_val_accuracy"] for e in ranked)[-6:]   # the best 6 by the shared score
    # two more epochs on its own path lift a path of a 2-epoch supernet (measured: mean 0.63 -> 0.87)
    shared, tuned = (np.mean([e[k] for e in finalists]) for k in ("shared_val_accuracy", "finetuned_val_accuracy"))
    assert tuned > shared + 0.1, (shared, tuned)
    assert result["top"] == ranked[:3]
    rows = len(phase.train_split)
    assert result["compute"]["samples_trained"] == (2 + 6 * 2) * rows
    x, y = phase._rating_rows()   # the supernet itself is untouched: scoring again gives the shared scores
    config = phase.config(finalists[0]["params"])
    phase.supernet.eval()
    with torch.no_grad():
        again = float((phase.supernet(x, config).argmax(1) == y).float().mean())
    assert again == finalists[0]["shared_val_accuracy"]

    _, plain = _phase(store, "rsws", SearchSpace.load("mlp_enas"), {**options, "finetune_epochs": 0})
    assert not any("finetuned_reward" in e for e in plain["candidates"])
    assert [e["reward"] for e in plain["candidates"]] == sorted((e["reward"] for e in plain["candidates"]),
                                                                reverse=True)


TOY = {"params": {  # 6 networks, from hopeless (1 unit) to good (32 units)
    "n_layers": 1,
    "layers": {"repeat": "n_layers",
               "params": {"units": {"choice": [1, 4, 32]}, "activation": {"choice": ["relu", "tanh"]}}},
    "lr": 3e-3,
}}


def test_the_trained_controller_prefers_architectures_that_are_better_stand_alone(store):
    """ENAS's controller (120 updates, no warm-up), after the phase, puts its probability on networks
    that train better on their own than a uniform draw does (each of the 6 trained stand-alone once to know)."""
    space = SearchSpace.from_dict(TOY)
    phase, _ = _phase(store, "enas", space, {"supernet_epochs": 8, "warmup_epochs": 0, "controller_steps": 15,
                                             "controller_batch": 5})
    family, task = MLPFamily(), load_task("digits", 0)
    grid = [{"n_layers": 1, "layers.0.units": u, "layers.0.activation": a}
            for u in (1, 4, 32) for a in ("relu", "tanh")]
    alone = []
    for flat in grid:
        config = family.make_config(space.config_from_flat(flat))
        torch.manual_seed(0)
        model = family.build(config, task)
        alone.append(family.fit(model, task, config, {"epochs": 5}, NullReporter())["val_accuracy"])
    probs = np.exp([phase.paths.log_prob({k: v for k, v in flat.items() if k != "n_layers"}) for flat in grid])
    assert probs.sum() == pytest.approx(1.0, abs=1e-4)
    controller, uniform = float(probs @ np.array(alone)), float(np.mean(alone))
    assert controller > uniform + 0.1, (controller, uniform, alone, probs)   # measured 0.90 vs 0.52


def test_a_timeout_ends_the_phase_early_and_still_retrains_a_pick(store, capsys):
    """``timeout`` counts the phase: 500 epochs cannot fit in 3 s, so the phase stops after some epochs,
    rates with those weights, and the first pick is still retrained (as Optuna lets a started trial end)."""
    result = nasforge.search("mlp", task="digits", strategy="rsws", trials=3, budget=1, seed=0, timeout=3,
                             strategy_options={**TINY, "supernet_epochs": 500}, save_models=False, plots=False,
                             **store)
    assert [t.state.name for t in result.trials][:1] == ["COMPLETE"] and result.best_value > 0.3
    run = _children(store, "mlp-digits", result.parent_run_id).query("`tags.phase` == 'supernet'").iloc[0]
    epochs = int(run["metrics.phase_epochs"])
    assert 1 <= epochs < 500 and run["status"] == "FINISHED"
    assert run["tags.status_reason"].startswith(f"timeout: stopped after epoch {epochs} of 500")
    assert f"stopped after epoch {epochs} of 500" in capsys.readouterr().err
    top = result.study._storage.get_study_system_attrs(result.study._study_id)[TOP_ATTR]
    assert top and not any("finetuned_score" in p for p in top)   # past the timeout: no fine-tuning (TINY asks for it)


def test_enas_warms_up_for_half_its_epochs_unless_told():
    """Uniform paths (no controller) for the first half by default: the controller then learns from
    shared weights that every path trained alike; DARTS and RS-WS start at once."""
    assert check_options("enas", {}).warmup_epochs == 20 and check_options("enas", {}).supernet_epochs == 40
    assert check_options("enas", {"supernet_epochs": 9}).warmup_epochs == 4
    assert check_options("enas", {"supernet_epochs": 9, "warmup_epochs": 0}).warmup_epochs == 0
    assert check_options("darts", {}).warmup_epochs == 0 and check_options("rsws", {}).warmup_epochs == 0
    with pytest.raises(ConfigError, match="warmup_epochs must be an integer >= 0, got 1.5"):
        check_options("enas", {"warmup_epochs": 1.5})


# -- the retraining sampler --------------------------------------------------------------------
def test_an_interrupted_retraining_trial_gives_its_pick_back():
    space = SearchSpace.from_dict(TOY)
    sampler = TopArchitecturesSampler(space=space, strategy="enas", options=check_options("enas", {}), seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    picks = [{"params": {"layers.0.units": u, "layers.0.activation": "relu"}, "score": s, "source": "sample"}
             for u, s in ((32, 0.9), (4, 0.5))]
    study._storage.set_study_system_attr(study._study_id, TOP_ATTR, picks)
    first = study.ask()
    assert space.sample(first)["layers"][0]["units"] == 32 and not sampler.is_exhausted(study)
    second = study.ask()
    assert space.sample(second)["layers"][0]["units"] == 4 and sampler.is_exhausted(study)
    study.tell(second, 0.5)
    first.set_user_attr("interrupted", True)
    study.tell(first, state=optuna.trial.TrialState.FAIL)
    assert not sampler.is_exhausted(study)
    again = study.ask()
    assert space.sample(again)["layers"][0]["units"] == 32
    stored = study._storage.get_trial(again._trial_id)
    assert stored.system_attrs[RANK_ATTR] == 0 and stored.user_attrs["shared_score"] == 0.9


# -- resume ------------------------------------------------------------------------------------
INTERRUPT = {"at": 0, "calls": 0}


class InterruptingMLP(MLPFamily):
    """The mlp family, whose supernet raises KeyboardInterrupt (a Ctrl-C) at forward call ``INTERRUPT['at']``."""

    name = "mlp_ctrl_c"
    supernet_space = None

    def supernet(self, space, task):
        return _Interrupting(super().supernet(space, task))


class _Interrupting(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x, config):
        INTERRUPT["calls"] += 1
        if INTERRUPT["calls"] == INTERRUPT["at"]:
            raise KeyboardInterrupt
        return self.inner(x, config)


class InterruptingPlugin:
    @nasforge.hookimpl
    def register_families(self, register):
        register(InterruptingMLP())


def test_a_supernet_phase_resumed_after_ctrl_c_ends_as_an_uninterrupted_one(store):
    plugin = InterruptingPlugin()
    nasforge.register(plugin)
    try:
        raw = {k: v for k, v in SearchSpace.load("mlp_enas").raw.items() if k != "family"}
        options = {"supernet_epochs": 3, "warmup_epochs": 0, "controller_steps": 2, "controller_batch": 3,
                   "candidates": 8}
        run = dict(task="digits", strategy="enas", trials=2, budget=2, seed=3, space=raw, strategy_options=options,
                   **store)
        INTERRUPT.update(at=0, calls=0)
        whole = nasforge.search("mlp_ctrl_c", study_name="whole", **run)
        per_epoch = math.ceil(len(load_task("digits", 3).x_train) / 32) + 2 * 3
        INTERRUPT.update(at=int(1.5 * per_epoch), calls=0)   # in the second epoch
        with pytest.raises(KeyboardInterrupt):
            nasforge.search("mlp_ctrl_c", study_name="cut", **run)
        runs = runs_of(store["tracking_uri"], "mlp_ctrl_c-digits")
        cut = runs[(runs["tags.phase"] == "supernet") & (runs["tags.study"] == "cut")].iloc[0]
        assert cut["status"] == "KILLED" and json.loads(cut["tags.supernet_checkpoint"])["epoch"] == 1
        INTERRUPT.update(at=0)
        with pytest.raises(SpecError, match="other strategy_options \\(supernet_epochs=3\\)"):
            nasforge.search("mlp_ctrl_c", study_name="cut", resume=True,
                            **{**run, "strategy_options": {**options, "supernet_epochs": 4}})
        runs = runs_of(store["tracking_uri"], "mlp_ctrl_c-digits")
        parent = runs[(runs["tags.study"] == "cut") & runs["tags.mlflow.parentRunId"].isna()]
        assert list(parent["status"]) == ["KILLED"]   # refused before the parent run was reopened
        # resumed as a user would: strategy and its options left out, the study's are taken
        resumed = nasforge.search("mlp_ctrl_c", study_name="cut", resume=True, task="digits", trials=2, budget=2,
                                  seed=3, space=raw, **store)
    finally:
        nasforge.unregister(plugin)

    def top(result):
        return result.study._storage.get_study_system_attrs(result.study._study_id)[TOP_ATTR]

    assert top(resumed) == top(whole)
    assert [t.values for t in resumed.trials] == [t.values for t in whole.trials]
    runs = runs_of(store["tracking_uri"], "mlp_ctrl_c-digits")
    phases = runs[runs["tags.phase"] == "supernet"].set_index("tags.study")
    assert phases.loc["cut", "status"] == "FINISHED" and len(phases) == 2   # the same run, continued
    client = Tracker(tracking_uri=store["tracking_uri"], experiment_id=resumed.experiment_id).client
    curves = {study: [(m.step, m.value) for m in client.get_metric_history(phases.loc[study, "run_id"],
                                                                           "curve/shared_train_loss")]
              for study in ("whole", "cut")}
    assert sorted(curves["cut"]) == sorted(curves["whole"])   # every step once, the same values


KILLED = textwrap.dedent("""
    import nasforge
    nasforge.search("mlp", task="digits", strategy="enas", trials=1, budget=1, seed=0, study_name="killed",
                    strategy_options={options!r}, tracking_uri={uri!r}, storage={storage!r})
""")


class _Checkpoints:
    """The killed search's last supernet checkpoint epoch (0 before there is one). The study and the
    MLflow client are opened once, when they exist: a look then costs ~10 ms, so no epoch of a phase
    that runs ~10 per second goes unseen (opening both for each look took up to 2.5 s)."""

    def __init__(self, store):
        self.store, self.study, self.tracker = store, None, None

    def epoch(self) -> int:
        try:
            if self.study is None:
                self.study = optuna.load_study(study_name="killed", storage=self.store["storage"])
            run_id = self.study._storage.get_study_system_attrs(self.study._study_id).get("oneshot:run_id")
            if run_id is None:
                return 0
            if self.tracker is None:
                self.tracker = Tracker(tracking_uri=self.store["tracking_uri"], experiment_id="0")
            tag = self.tracker.get_run(run_id).data.tags
            return json.loads(tag.get("supernet_checkpoint", '{"epoch": 0}'))["epoch"]
        except Exception:   # not created yet, or the writer holds the lock: look again
            return 0


def test_a_supernet_phase_killed_with_sigkill_continues_from_its_checkpoint(store):
    epochs = 60   # ~6 s: the window in which the kill must land
    options = {"supernet_epochs": epochs, "controller_steps": 1, "controller_batch": 2, "candidates": 4}
    script = KILLED.format(options=options, uri=store["tracking_uri"], storage=store["storage"])
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    checkpoints = _Checkpoints(store)
    deadline = time.time() + 180
    while checkpoints.epoch() < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    killed_at = checkpoints.epoch()
    assert 2 <= killed_at < epochs

    result = nasforge.search("mlp", task="digits", strategy="enas", trials=1, budget=1, seed=0, study_name="killed",
                             strategy_options=options, resume=True, **store)
    assert [t.state.name for t in result.trials] == ["COMPLETE"]
    runs = runs_of(store["tracking_uri"], "mlp-digits")
    phase = runs[runs["tags.phase"] == "supernet"]
    assert len(phase) == 1 and phase.iloc[0]["status"] == "FINISHED"
    assert json.loads(phase.iloc[0]["tags.supernet_checkpoint"])["epoch"] == epochs
    client = Tracker(tracking_uri=store["tracking_uri"], experiment_id=result.experiment_id).client
    steps = sorted(m.step for m in client.get_metric_history(phase.iloc[0]["run_id"], "curve/shared_train_loss"))
    per_epoch = math.ceil(len(load_task("digits", 0).x_train) / 32)
    assert steps[-1] == epochs * per_epoch and len(steps) >= epochs * per_epoch   # no epoch lost (a half-done one is redone)
