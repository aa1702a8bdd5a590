"""result.evaluate and `nasforge predict` / `nasforge evaluate`: the best model scored on labelled rows it
never saw, the figures checked against scikit-learn's on the same predictions."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics

import nasforge
from conftest import stores_in
from nasforge.errors import DataError
from results_tests.test_results import SPACE, _wine


@pytest.fixture(scope="module")
def held_out_wine(tmp_path_factory):
    """A 3-trial search on 138 wine rows and the 40 it never saw (string labels, a text column)."""
    root = tmp_path_factory.mktemp("wine-evaluate")
    wine = _wine()
    order = np.random.default_rng(0).permutation(len(wine))
    held, train = wine.iloc[order[:40]].reset_index(drop=True), wine.iloc[order[40:]]
    result = nasforge.search("mlp", data=train, target="label", space=SPACE, trials=3, budget=25, seed=0,
                             plots=False, study_name="wine-eval", **stores_in(root))
    return result, held, root


@pytest.mark.filterwarnings("ignore:The y_prob values do not sum to one")   # float32 softmax: 1 within 1e-7
def test_evaluate_scores_held_out_rows_as_scikit_learn_does_in_every_form(held_out_wine, monkeypatch):
    from nasforge.results import raw_inputs

    result, held, root = held_out_wine
    y = held["label"].to_numpy()
    proba = result.predict_proba(held)
    expected = {"accuracy": metrics.accuracy_score(y, result.predict(held)),
                "balanced_accuracy": metrics.balanced_accuracy_score(y, result.predict(held)),
                "log_loss": metrics.log_loss(y, proba.to_numpy(), labels=list(proba.columns)), "n_rows": 40}
    assert expected["accuracy"] > 1 / 3 + 0.4          # it learnt: three classes, chance is a third
    held.to_csv(root / "held.csv", index=False)
    held.to_parquet(root / "held.parquet")
    monkeypatch.setattr(raw_inputs, "FILE_BLOCK_ROWS", 16)   # the files in three blocks, the counts summed
    forms = {"frame": held, "csv": str(root / "held.csv"), "parquet": root / "held.parquet",
             "pair": (held.drop(columns=["label"]), y)}
    for name, data in forms.items():
        assert result.evaluate(data) == pytest.approx(expected, rel=1e-9), name
    two = held[held["label"] != "barolo"]                  # a class absent: balanced over the classes present
    assert result.evaluate(two)["balanced_accuracy"] == pytest.approx(
        metrics.balanced_accuracy_score(two["label"], result.predict(two)), rel=1e-9)
    renamed = held.rename(columns={"label": "wine"})
    assert result.evaluate(renamed, target="wine") == pytest.approx(expected, rel=1e-9)


def test_evaluate_on_a_registered_task_s_test_split_gives_the_search_s_own_test_metrics(store, tmp_path):
    import torch

    from nasforge.data.tasks import load_task

    result = nasforge.search("mlp", task="digits", space=SPACE, trials=1, budget=3, seed=0, plots=False, **store)
    task = load_task("digits", seed=0)
    scored = result.evaluate((task.x_test, task.y_test))
    np.savez(tmp_path / "test.npz", x=task.x_test, y=task.y_test)
    assert result.evaluate(tmp_path / "test.npz") == scored
    items = torch.utils.data.TensorDataset(torch.as_tensor(task.x_test), torch.as_tensor(task.y_test))
    assert result.evaluate(items) == pytest.approx(scored, rel=1e-9)
    assert scored["n_rows"] == len(task.y_test)
    assert scored["accuracy"] == pytest.approx(result.test_metrics["test_accuracy"], abs=1e-6)
    assert scored["log_loss"] == pytest.approx(result.test_metrics["test_loss"], rel=1e-4)
    assert scored["accuracy"] > 0.1 + 0.4                   # ten classes
    with pytest.raises(DataError, match=r"class 10 is not one of the model's classes 0\.\.9"):
        result.evaluate((task.x_test[:3], np.array([0, 1, 10])))
    with pytest.raises(DataError, match="class targets must be integers"):
        result.evaluate((task.x_test[:2], np.array([0.5, 1.0])))
    with pytest.raises(DataError, match="did not train on a table"):
        result.evaluate(pd.DataFrame(task.x_test[:2]))


def test_regression_is_scored_in_the_target_s_units_over_blocks(tmp_path, monkeypatch):
    from sklearn.datasets import load_diabetes

    from nasforge.results import raw_inputs

    frame = load_diabetes(as_frame=True).frame
    held, train = frame.iloc[:80], frame.iloc[80:]
    result = nasforge.search("mlp", data=train, target="target", space=SPACE, trials=1, budget=30, seed=0,
                             plots=False, **stores_in(tmp_path))
    predicted, y = result.predict(held), held["target"].to_numpy()
    expected = {"rmse": metrics.root_mean_squared_error(y, predicted), "mae": metrics.mean_absolute_error(y, predicted),
                "r2": metrics.r2_score(y, predicted), "n_rows": 80}
    assert expected["r2"] > 0.2                             # better than the held-out rows' own mean
    held.to_csv(tmp_path / "held.csv", index=False)
    monkeypatch.setattr(raw_inputs, "FILE_BLOCK_ROWS", 7)    # 12 blocks: the mean and spread merged block by block
    assert result.evaluate(str(tmp_path / "held.csv")) == pytest.approx(expected, rel=1e-6)   # CSV floats: last digit
    assert result.evaluate(held) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(DataError, match="regression targets must be numbers"):
        result.evaluate(held.assign(target="high"))


def test_every_trial_s_network_is_scored_on_the_leaderboard_and_any_one_predicts(held_out_wine):
    result, held, _ = held_out_wine
    board = result.leaderboard(held).set_index("trial")
    assert set(board["state"]) == {"COMPLETE"} and len(board) == 3
    for number in board.index:
        scored = result.evaluate(held, trial=number)
        row = board.loc[number]
        assert (row["eval_accuracy"], row["eval_balanced_accuracy"], row["eval_log_loss"]) == pytest.approx(
            (scored["accuracy"], scored["balanced_accuracy"], scored["log_loss"]), rel=1e-9)
        predicted = result.predict(held, trial=number)
        assert scored["accuracy"] == pytest.approx((predicted == held["label"].to_numpy()).mean())
    assert board.loc[result.best_trial.number, "eval_accuracy"] == pytest.approx(result.evaluate(held)["accuracy"])
    assert board["eval_log_loss"].nunique() == 3               # three networks, not the best one thrice
    assert "eval_accuracy" not in result.leaderboard().columns
    with pytest.raises(nasforge.SpecError, match=r"trial 99 did not complete.*the completed trials: 0, 1, 2"):
        result.predict(held, trial=99)


def test_bad_labelled_data_is_named(held_out_wine, tmp_path):
    result, held, _ = held_out_wine
    with pytest.raises(DataError, match=r"no target column 'label' in the data \(its columns: alcohol, .*target="):
        result.evaluate(held.drop(columns=["label"]))
    with pytest.raises(DataError, match=r"labels merlot do not occur in the train split \(its classes: barbera, "
                                        r"barolo, grignolino\)"):
        result.evaluate(held.assign(label=["merlot"] + list(held["label"][1:])))
    with pytest.raises(DataError, match=r"2 rows have no target value \(column 'label'\)"):
        result.evaluate(held.assign(label=[None, None] + list(held["label"][2:])))
    with pytest.raises(DataError, match="40 input rows but 39 targets"):
        result.evaluate((held.drop(columns=["label"]), held["label"][1:]))
    with pytest.raises(DataError, match="does not exist"):
        result.evaluate(str(tmp_path / "nowhere.csv"))
    with pytest.raises(DataError, match="did not train on images"):
        result.evaluate(str(tmp_path))
    with pytest.raises(DataError, match="the data have no rows"):
        result.evaluate(held.iloc[:0])


def test_predict_and_evaluate_from_the_cli(held_out_wine, tmp_path, capsys):
    from nasforge import cli

    result, held, root = held_out_wine
    held.to_csv(tmp_path / "held.csv", index=False)
    which = ["--study-name", "wine-eval", "--tracking-uri", result.tracking_uri]
    assert cli.main(["predict", str(tmp_path / "held.csv"), "-o", str(tmp_path / "out.csv"), *which]) == 0
    written = pd.read_csv(tmp_path / "out.csv")
    assert list(written.columns) == ["label"] and list(written["label"]) == list(result.predict(held))
    assert cli.main(["predict", str(tmp_path / "held.csv"), "--proba", "-o", str(tmp_path / "p.parquet"), *which]) == 0
    proba = pd.read_parquet(tmp_path / "p.parquet")
    np.testing.assert_allclose(proba.to_numpy(), result.predict_proba(held).to_numpy())
    capsys.readouterr()
    assert cli.main(["predict", str(tmp_path / "held.csv"), *which]) == 0         # CSV on standard output
    assert capsys.readouterr().out.splitlines()[1:] == [str(v) for v in result.predict(held)]
    assert cli.main(["evaluate", str(tmp_path / "held.csv"), "--json", *which]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(result.evaluate(held), rel=1e-9)
    assert cli.main(["evaluate", str(tmp_path / "held.csv"), *which]) == 0
    assert "balanced_accuracy" in capsys.readouterr().out
    assert cli.main(["evaluate", str(tmp_path / "held.csv"), "--all", "--json", *which]) == 0
    rows = {row["trial"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows[1]["eval_accuracy"] == pytest.approx(result.evaluate(held, trial=1)["accuracy"])
    assert cli.main(["predict", str(tmp_path / "held.csv"), "--trial", "1", *which]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [str(v) for v in result.predict(held, trial=1)]
    assert cli.main(["evaluate", str(tmp_path / "held.csv"), "--trial", "7", *which]) == 2
    assert "trial 7 did not complete" in capsys.readouterr().err
    # bad input: named, before any model is loaded (the store below does not exist)
    nowhere = ["--tracking-uri", f"sqlite:///{tmp_path / 'none' / 'm.db'}"]
    assert cli.main(["predict", "held.csv", "-o", "out.json", *nowhere]) == 2
    assert "--output 'out.json': write a .csv, .tsv, .parquet file" in capsys.readouterr().err
    assert cli.main(["evaluate", "a.npy", "b.npy", "c.npy", *nowhere]) == 2
    assert "one DATA path, or two .npy files" in capsys.readouterr().err
    assert cli.main(["serve", "--port", "70000", *nowhere]) == 2
    assert "--port must be in 1-65535, got 70000" in capsys.readouterr().err


def test_mlflow_s_own_evaluator_scores_the_served_model_as_result_evaluate_does(held_out_wine):
    import mlflow

    result, held, root = held_out_wine
    mlflow.set_tracking_uri(result.tracking_uri)
    try:
        with mlflow.start_run(run_name="held-out") as run:
            scored = mlflow.models.evaluate(result.model_uri, held, targets="label", model_type="classifier",
                                            evaluators=["default"])
        assert scored.metrics["accuracy_score"] == pytest.approx(result.evaluate(held)["accuracy"])
        logged = mlflow.search_runs(experiment_ids=[run.info.experiment_id], filter_string="run_name = 'held-out'")
        assert logged["metrics.accuracy_score"].iloc[0] == pytest.approx(scored.metrics["accuracy_score"])
    finally:
        mlflow.set_tracking_uri(None)
