"""``max_params`` / ``max_flops``: a network beyond a cap is recorded as a pruned trial, untrained; bad caps are
refused up front."""

import io

import pytest

import nasforge
from conftest import child_runs, local_ray, runs_of
from nasforge.cli import main, print_summary
from nasforge.data.tasks import load_task
from nasforge.errors import SpecError
from nasforge.plugins import get_registry
from nasforge.size_limit import PREFLIGHT_DRAWS, count_flops, count_params

CAP = 5000   # about a third of the mlp space's networks on digits fit it (seed 0 draws both kinds)


def _check_capped_runs(result, store, experiment, n):
    """Every trial within the cap trained and FINISHED; every one beyond it KILLED untrained, with its count."""
    family, task = get_registry().get("family", "mlp"), load_task("digits", 0)
    runs = child_runs(runs_of(store["tracking_uri"], experiment), result.parent_run_id)
    trained, pruned = runs[runs["status"] == "FINISHED"], runs[runs["status"] == "KILLED"]
    assert len(trained) >= 1 and len(pruned) >= 1 and len(trained) + len(pruned) == len(runs) == n
    assert (trained["metrics.n_params"] <= CAP).all() and trained["metrics.val_accuracy"].notna().all()
    assert (pruned["metrics.n_params"] > CAP).all()
    assert pruned["metrics.val_accuracy"].isna().all() and pruned["metrics.epochs_trained"].isna().all()
    for _, run in pruned.iterrows():
        assert run["tags.status_reason"] == f"{int(run['metrics.n_params'])} parameters > max_params={CAP}: not trained"
    by_number = {t.number: t for t in result.trials}
    for _, run in pruned.iterrows():   # the count is the network's own, built again here
        trial = by_number[int(run["tags.trial_number"])]
        config = family.make_config(result.spec.space.config_from_flat(trial.params))
        assert count_params(family.build(config, task)) == run["metrics.n_params"]
    return trained, pruned


def test_networks_beyond_max_params_are_pruned_untrained_and_the_rest_train(store):
    result = nasforge.search("mlp", task="digits", strategy="random", trials=6, budget=1, seed=0, max_params=CAP,
                             experiment="capped", **store)
    trained, pruned = _check_capped_runs(result, store, "capped", 6)
    states = sorted(t.state.name for t in result.trials)
    assert states.count("COMPLETE") == len(trained) and states.count("PRUNED") == len(pruned)
    board = result.leaderboard()
    assert (board[board["state"] == "PRUNED"]["n_params"] > CAP).all()
    assert (board[board["state"] == "COMPLETE"]["n_params"] <= CAP).all()
    assert result.best_value == max(t.values[0] for t in result.trials if t.state.name == "COMPLETE")
    parent = runs_of(store["tracking_uri"], "capped").set_index("run_id").loc[result.parent_run_id]
    assert parent["params.max_params"] == str(CAP)
    reopened = nasforge.load(study_name=result.study.study_name, **store)
    assert (reopened.spec.max_params, reopened.spec.max_flops) == (CAP, None)
    assert reopened.leaderboard()["n_params"].tolist() == board["n_params"].tolist()


def test_without_max_params_the_same_networks_all_train(store):
    result = nasforge.search("mlp", task="digits", strategy="random", trials=6, budget=1, seed=0, **store)
    assert {t.state.name for t in result.trials} == {"COMPLETE"}
    assert any(t.user_attrs["metrics"]["n_params"] > CAP for t in result.trials)   # the cap had work to do


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "5000"])
def test_a_max_params_that_is_not_a_positive_integer_is_refused(store, value):
    with pytest.raises(SpecError, match=r"max_params must be an integer >= 1 .* got "):
        nasforge.search("mlp", task="digits", trials=2, budget=1, max_params=value, **store)


def test_a_cap_no_architecture_fits_is_refused_before_any_run(store, tmp_path):
    with pytest.raises(SpecError) as error:
        nasforge.search("mlp", task="digits", trials=2, budget=1, max_params=50, experiment="too-small", **store)
    message = str(error.value)
    assert f"max_params=50: none of {PREFLIGHT_DRAWS} architectures drawn from space" in message
    smallest = int(message.split("the smallest have ")[1].split()[0])
    assert smallest > 50 and "raise the cap or narrow the space" in message
    assert runs_of(store["tracking_uri"], "too-small").empty


def test_the_cli_passes_max_params(store, capsys):
    base = ["search", "mlp", "--task", "digits", "--strategy", "random", "--trials", "2", "--budget", "1", "-q",
            "--tracking-uri", store["tracking_uri"], "--storage", store["storage"], "--experiment", "cli-cap"]
    assert main(base + ["--max-params", "10"]) == 2
    assert "max_params=10: none of" in capsys.readouterr().err
    assert main(base + ["--max-params", "100000"]) == 0
    assert "2 complete, 0 pruned, 0 failed (max_params=100000: beyond, pruned untrained)" in capsys.readouterr().out
    runs = runs_of(store["tracking_uri"], "cli-cap")
    assert set(runs["params.max_params"].dropna()) == {"100000"}


def test_ray_trials_keep_max_params(store):
    with local_ray():
        result = nasforge.search("mlp", task="digits", strategy="random", trials=3, budget=1, seed=0,
                                 max_params=CAP, backend="ray", experiment="capped-ray", **store)
    trained, pruned = _check_capped_runs(result, store, "capped-ray", 3)   # seed 0: two pruned, one trained
    assert trained["tags.worker"].notna().all() and pruned["tags.worker"].notna().all()


def test_a_resumed_search_keeps_its_cap_and_refuses_another(store):
    kwargs = dict(task="digits", strategy="random", budget=1, seed=0, study_name="capped-resume", **store)
    nasforge.search("mlp", trials=2, max_params=CAP, **kwargs)
    with pytest.raises(SpecError, match=f"searched with max_params={CAP}; resume it with that .* not max_params=9000"):
        nasforge.search("mlp", trials=4, max_params=9000, resume=True, **kwargs)
    result = nasforge.search("mlp", trials=6, resume=True, **kwargs)   # the cap left out: the study's
    assert result.spec.max_params == CAP and len(result.trials) == 6
    for trial in result.trials:
        assert (trial.state.name == "PRUNED") == (trial.user_attrs["metrics"]["n_params"] > CAP)


FLOPS_CAP = 10_000   # forward FLOPs of one digits row: about 2 per parameter for an MLP


def test_count_flops_is_two_per_multiply_add_and_leaves_the_mode():
    import torch

    nn = torch.nn
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))
    assert count_flops(model, torch.zeros(5, 64)) == 2 * (64 * 32 + 32 * 10)   # one row, whatever the batch
    assert model.training
    model.eval()
    count_flops(model, torch.zeros(1, 64))
    assert not model.training


def test_networks_beyond_max_flops_are_pruned_and_every_trial_logs_its_flops(store):
    result = nasforge.search("mlp", task="digits", strategy="random", trials=6, budget=1, seed=0,
                             max_flops=FLOPS_CAP, experiment="flops-capped", **store)
    runs = child_runs(runs_of(store["tracking_uri"], "flops-capped"), result.parent_run_id)
    trained, pruned = runs[runs["status"] == "FINISHED"], runs[runs["status"] == "KILLED"]
    assert len(trained) >= 1 and len(pruned) >= 1 and len(runs) == 6
    assert (trained["metrics.flops"] <= FLOPS_CAP).all() and (pruned["metrics.flops"] > FLOPS_CAP).all()
    family, task = get_registry().get("family", "mlp"), load_task("digits", 0)
    by_number = {t.number: t for t in result.trials}
    for _, run in runs.iterrows():   # the FLOPs are the network's own, counted again here
        trial = by_number[int(run["tags.trial_number"])]
        model = family.build(family.make_config(result.spec.space.config_from_flat(trial.params)), task)
        assert count_flops(model, task.x_test[:1]) == run["metrics.flops"]
    for _, run in pruned.iterrows():
        assert f"{int(run['metrics.flops'])} FLOPs > max_flops={FLOPS_CAP}" in run["tags.status_reason"]
    board = result.leaderboard().set_index("run_id")   # the leaderboard and the summary table show them too
    assert board.loc[runs["run_id"], "flops"].tolist() == runs["metrics.flops"].tolist()
    out = io.StringIO()
    print_summary(result, top=1, file=out)
    lines = out.getvalue().splitlines()
    header, best = lines[lines.index("best 1 trials:") + 1:][:2]
    assert header.split()[-2:] == ["flops", "params"]
    assert int(best.split()[-2]) == board.loc[result.best_trial.user_attrs["mlflow_run_id"], "flops"]


def test_both_caps_are_named_when_nothing_fits(store):
    with pytest.raises(SpecError, match=r"max_params=100000, max_flops=20: none of .* \(the smallest have \d+ "
                                        r"parameters, \d+ FLOPs\)"):
        nasforge.search("mlp", task="digits", trials=2, budget=1, max_params=100_000, max_flops=20, **store)
    with pytest.raises(SpecError, match="max_flops must be an integer >= 1 .* got -1"):
        nasforge.search("mlp", task="digits", trials=2, budget=1, max_flops=-1, **store)
