"""Strategies side by side: one study and one MLflow parent run, trials dealt fairly, a summary, resume."""

import math
import signal
from pathlib import Path

import pytest
from mlflow import MlflowClient

import nasforge
from conftest import child_runs, completed_trials, replay_strategy, runs_of, stores_in
from kill_and_resume import check_resumed_search, interrupt_search
from nasforge.errors import SpecError, UnknownNameError
from nasforge.strategies.build import make_sampler
from nasforge.strategies.shares import split_trials, strategy_seed
from toy_family import SLOW_TOY_SPACE, TOY_SPACE

THREE = ["controller", "tpe", "random"]


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """controller, tpe and random on 11 trials (4/4/3)."""
    from toy_family import ToyPlugin

    root = tmp_path_factory.mktemp("side_by_side")
    store = stores_in(root)
    plugin = ToyPlugin()
    nasforge.register(plugin, name="toy-plugin")
    try:
        result = nasforge.search("toy", space=TOY_SPACE, strategy=THREE, trials=11, budget=2, seed=0,
                                 strategy_options={"controller": {"lr": 0.05}, "tpe.n_startup_trials": 2},
                                 save_models=False, **store)
    finally:
        nasforge.unregister(plugin)   # the tests below register the toy family themselves
    return result, store


def test_the_budget_is_split_evenly_and_the_first_strategies_get_the_remainder():
    assert split_trials(11, THREE) == {"controller": 4, "tpe": 4, "random": 3}
    assert split_trials(9, THREE) == {"controller": 3, "tpe": 3, "random": 3}
    assert len({strategy_seed(0, name) for name in THREE}) == 3   # tpe does not start like random


def test_one_parent_run_and_each_trial_a_child_tagged_with_its_strategy(three):
    result, store = three
    runs = runs_of(store["tracking_uri"], "toy-digits")
    parents = runs[runs["tags.mlflow.parentRunId"].isna()]
    assert list(parents["run_id"]) == [result.parent_run_id]
    parent = parents.iloc[0]
    assert parent["status"] == "FINISHED" and parent["tags.strategies"] == "controller,tpe,random"
    assert parent["params.strategy"] == "controller,tpe,random" and parent["params.trials.random"] == "3"
    assert parent["params.strategy.controller.lr"] == "0.05" and parent["params.strategy.tpe.n_startup_trials"] == "2"

    children = child_runs(runs, result.parent_run_id)
    assert len(children) == 11 and set(children["status"]) == {"FINISHED"}
    assert children["tags.strategy"].value_counts().to_dict() == {"controller": 4, "tpe": 4, "random": 3}
    assert sorted(children["tags.trial_number"].astype(int)) == list(range(11))   # one numbering, no clashes
    for _, child in children.iterrows():
        trial = result.study.trials[int(child["tags.trial_number"])]
        assert trial.user_attrs["strategy"] == child["tags.strategy"]
        assert trial.user_attrs["mlflow_run_id"] == child["run_id"]
    # dealt round-robin: at any time no strategy is more than one trial ahead of another
    order = [t.user_attrs["strategy"] for t in sorted(result.trials, key=lambda t: t.number)]
    assert order == ["controller", "tpe", "random"] * 3 + ["controller", "tpe"]


def test_each_strategy_samples_from_its_own_trials_only(three):
    result, _ = three
    mine = {name: [t for t in result.trials if t.user_attrs["strategy"] == name] for name in THREE}
    # TPE (2 startup trials, then the model): a fresh TPE with the search's seed, told tpe's trials
    # one by one, suggests exactly the configurations tpe proposed in the search ...
    fresh = make_sampler(result.spec).samplers["tpe"]
    alone = replay_strategy(fresh, result.spec.space, mine["tpe"], directions=result.spec.directions)
    assert alone == [t.params for t in mine["tpe"]]
    # ... while one that also saw the controller's and random's trials would have proposed others
    fresh = make_sampler(result.spec).samplers["tpe"]
    seeing_all = replay_strategy(fresh, result.spec.space, mine["tpe"], directions=result.spec.directions,
                                 others=mine["controller"] + mine["random"])
    assert seeing_all[0] == alone[0] and seeing_all != alone   # (the first trial is random in both)
    # the controller learned from its 4 rewards only (one REINFORCE update per reward, batch_size=1)
    from nasforge.strategies.controller.state import load

    snapshot, since = load(result.study)
    assert snapshot["step"] + len(since) == len(mine["controller"]) == 4


def test_best_over_all_strategies_and_the_summary(three):
    result, store = three
    best = max(result.completed_trials, key=lambda t: t.values[0])
    assert result.best_value == best.values[0] and result.best_trial.number == best.number
    assert result.best_params == result.spec.space.config_from_flat(best.params)

    parts = result.by_strategy
    assert list(parts) == THREE
    for name, part in parts.items():
        mine = [t for t in result.completed_trials if t.user_attrs["strategy"] == name]
        assert part.best_value == max(t.values[0] for t in mine)
        assert part.summary["best_at"] == 1 + [t.number for t in mine].index(part.best_trial.number)
        assert 0 < part.summary["time_to_best_s"] < 600
    table = result.strategy_summary()
    assert list(table["strategy"]) == THREE and list(table["trials"]) == [4, 4, 3]
    assert list(table["share"]) == [4, 4, 3] and table["best_val_accuracy"].max() == result.best_value

    parent = MlflowClient(store["tracking_uri"]).get_run(result.parent_run_id)
    metrics, tags = parent.data.metrics, parent.data.tags
    for name in THREE:
        assert metrics[f"best_val_accuracy.{name}"] == pytest.approx(parts[name].best_value)
        assert metrics[f"n_trials.{name}"] == parts[name].summary["trials"]
    assert tags["best_strategy"] == result.best_trial.user_attrs["strategy"]
    curve = MlflowClient(store["tracking_uri"]).get_metric_history(result.parent_run_id, "best_so_far.tpe")
    assert [m.step for m in curve] == [1, 2, 3, 4] and curve[-1].value == pytest.approx(parts["tpe"].best_value)
    csv = open(MlflowClient(store["tracking_uri"]).download_artifacts(result.parent_run_id, "strategies.csv")).read()
    assert csv.splitlines()[0].startswith("strategy,share,trials") and len(csv.splitlines()) == 4


def test_the_cli_takes_several_strategies_and_prints_the_comparison(store, toy, capsys, tmp_path):
    import yaml

    from nasforge.cli import main

    space = tmp_path / "toy.yaml"
    space.write_text(yaml.safe_dump(TOY_SPACE))
    code = main(["search", "toy", "--space", str(space), "--strategy", "random", "tpe", "--trials", "3",
                 "--budget", "1", "-q", "--tracking-uri", store["tracking_uri"], "--storage", store["storage"]])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "strategies side by side" in out
    lines = out.splitlines()
    table = lines[[i for i, line in enumerate(lines) if "strategies side by side" in line][0] + 1:]
    assert table[0].split()[:2] == ["strategy", "trials"]
    assert table[1].split()[0] == "random" and table[1].split()[1 + ("*" in table[1])] == "2"
    assert table[2].split()[0] == "tpe"


def test_threads_share_the_budget_and_a_grid_stops_alone(store, toy):
    space = {"params": {"lr": {"choice": [0.1, 0.5]}, "width": {"choice": [4, 8]}, "mode": "ok"}}
    result = nasforge.search("toy", space=space, strategy=["grid", "random"], trials=10, budget=1, seed=0,
                             n_jobs=2, save_models=False, **store)
    per = {name: [t for t in result.trials if t.user_attrs["strategy"] == name] for name in ("grid", "random")}
    grid = sorted((t.params["lr"], t.params["width"]) for t in per["grid"])
    assert len(set(grid)) == 4 and len(per["grid"]) <= 5   # the 4 combinations (a thread may re-ask once)
    assert len(per["random"]) == 5                          # random still had its share of 5
    assert all(t.state.name == "COMPLETE" for t in result.trials)


def test_pruners_judge_each_strategy_on_its_own_trials(store, toy):
    result = nasforge.search("toy", space=TOY_SPACE, strategy=["random", "tpe"], trials=12, budget=5, seed=0,
                             pruner="median", pruner_options={"n_startup_trials": 2, "n_warmup_steps": 1},
                             save_models=False, **store)
    for name in ("random", "tpe"):
        mine = sorted((t for t in result.trials if t.user_attrs["strategy"] == name), key=lambda t: t.number)
        # the median pruner waits for 2 completed trials OF THIS STRATEGY before it prunes any of them
        assert [t.state.name for t in mine[:2]] == ["COMPLETE", "COMPLETE"]
    assert result.strategy_summary()["pruned"].sum() == sum(t.state.name == "PRUNED" for t in result.trials)


def test_multi_objective_side_by_side_counts_each_strategy_on_the_front(store, toy):
    result = nasforge.search("toy", space=TOY_SPACE, strategy=["nsga2", "random"], trials=6, budget=1, seed=0,
                             objective=["val_accuracy", "n_params"], save_models=False, **store)
    table = result.strategy_summary()
    assert table["pareto"].sum() == len(result.best_trials) > 0
    assert math.isfinite(result.best_value)


# -- resume ------------------------------------------------------------------------------------
TARGET = 9


def test_a_killed_side_by_side_search_resumes_every_strategy_to_its_share(store, toy):
    # The paced space, 1 s a trial (as test_resume's): at 0.2 s a trial (budget 4) a loaded CI box once
    # finished all 9 before the kill landed.
    search = dict(family="toy", space=SLOW_TOY_SPACE, strategy=["tpe", "random"], trials=TARGET, budget=20, seed=0,
                  save_models=False, study_name="both", **store)
    interrupt_search(search, completed=3, sig=signal.SIGKILL)
    assert 3 <= completed_trials(store["storage"], "both") < TARGET

    with pytest.raises(SpecError, match="same strategy list"):
        nasforge.search(**{**search, "strategy": "tpe"}, resume=True)
    result = nasforge.search(**{k: v for k, v in search.items() if k != "study_name"}, resume=True)  # found without its name
    assert result.study.study_name == "both"
    counts = check_resumed_search(result, store, TARGET, experiment="toy-digits", model=False)
    counted = [t for t in result.trials if not t.user_attrs.get("interrupted")]
    per = {n: sum(t.user_attrs["strategy"] == n for t in counted) for n in ("tpe", "random")}
    assert per == {"tpe": 5, "random": 4}
    assert set(counts["children"]["tags.strategy"]) == {"tpe", "random"}


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, error, match", [
    (dict(strategy=["tpe", "nope"]), UnknownNameError, r"nope.*random"),
    (dict(strategy=["tpe", "tpe"]), SpecError, r"'tpe' more than once"),
    (dict(strategy=[]), SpecError, r"empty list.*random"),
    (dict(strategy=THREE, trials=2), SpecError, r"trials=2 cannot be shared by 3 strategies"),
    (dict(strategy=["tpe", 3]), SpecError, r"strings"),
    (dict(strategy=["tpe", "random"], pruner="hyperband"), SpecError, r"hyperband.*median, percentile, sha"),
    (dict(strategy=["tpe", "random"], strategy_options={"n_startup_trials": 3}), SpecError,
     r"maps a strategy to its options.*'n_startup_trials' names none of: tpe, random"),
    (dict(strategy=["tpe", "random"], strategy_options={"tpe.bogus": 3}), SpecError, r"strategy 'tpe' rejected"),
    (dict(strategy=["cmaes", "random"], objective=["val_accuracy", "n_params"]), SpecError,
     r"strategy 'cmaes' handles a single objective"),
])
def test_bad_strategy_lists_stop_before_anything_runs(store, toy, kwargs, error, match):
    kwargs = {"trials": 4, **kwargs}
    with pytest.raises(error, match=match):
        nasforge.search("toy", space=TOY_SPACE, budget=1, **kwargs, **store)
    assert not Path(store["tracking_uri"][len("sqlite:///"):]).exists()


def test_single_strategy_searches_are_unchanged(store, toy):
    result = nasforge.search("toy", space=TOY_SPACE, strategy="random", trials=2, budget=1, seed=0,
                             save_models=False, **store)
    assert result.spec.strategies == ("random",) and not result.spec.side_by_side
    assert "strategies" not in result.study.user_attrs
    assert all("strategy" not in t.user_attrs for t in result.trials)
    assert list(result.by_strategy) == ["random"] and list(result.strategy_summary()["trials"]) == [2]
