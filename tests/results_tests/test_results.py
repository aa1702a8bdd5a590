"""Results a user can use: reopen a past search, its leaderboard, predictions on raw data, resume without traps."""

import hashlib
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest

import nasforge
from nasforge.errors import DataError, SpecError, UnknownSearchError

SPACE = {"family": "mlp", "params": {"n_layers": 1, "layers": {"repeat": "n_layers", "params": {"units": {"int": [16, 48]}}},
                                     "lr": {"float": [3e-3, 3e-2], "log": True}, "batch_size": 32, "patience": None}}


def _wine():
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame.rename(columns={"target": "label"})
    frame["label"] = frame["label"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    frame["colour"] = np.where(frame["alcohol"] > 13, "deep", "pale")     # a text column, one-hot encoded
    return frame


@pytest.fixture(scope="module")
def wine_search(tmp_path_factory):
    root = tmp_path_factory.mktemp("wine-search")
    store = {"tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "storage": f"sqlite:///{root / 'optuna.db'}"}
    result = nasforge.search("mlp", data=_wine(), target="label", space=SPACE, strategy=["tpe", "random"], trials=4,
                             budget=25, seed=0, plots=False, study_name="wine", **store)
    return result, store, root


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_load_gives_back_the_same_result_and_writes_nothing(wine_search):
    result, store, root = wine_search
    before = _digest(root)
    for loaded in (nasforge.load("wine", tracking_uri=store["tracking_uri"]),
                   nasforge.load(run_id=result.parent_run_id, tracking_uri=store["tracking_uri"]),
                   nasforge.load(experiment="mlp-data", tracking_uri=store["tracking_uri"]),
                   nasforge.load(tracking_uri=store["tracking_uri"])):
        assert loaded.parent_run_id == result.parent_run_id
        assert loaded.best_params == result.best_params and loaded.best_value == result.best_value
        assert loaded.test_metrics == pytest.approx(result.test_metrics)
        assert loaded.model_uri == result.model_uri and loaded.network_uri == result.network_uri
        assert loaded.strategy_summary().to_dict() == result.strategy_summary().to_dict()
        assert [t.number for t in loaded.pareto_front] == [t.number for t in result.pareto_front]
        rows = _wine().drop(columns=["label"]).iloc[:20]
        np.testing.assert_array_equal(loaded.predict(rows), result.predict(rows))
    assert _digest(root) == before          # nothing written to either store, or to the artifacts


def test_a_missing_search_says_which_exist(wine_search, tmp_path):
    _, store, _ = wine_search
    with pytest.raises(UnknownSearchError, match=r"no nasforge search of study 'nope' .*latest searches: wine"):
        nasforge.load("nope", tracking_uri=store["tracking_uri"])
    with pytest.raises(UnknownSearchError, match=r"no MLflow run '0123456789abcdef' .*latest searches: wine"):
        nasforge.load(run_id="0123456789abcdef", tracking_uri=store["tracking_uri"])
    with pytest.raises(UnknownSearchError, match=r"no experiment 'nope' .*known: .*mlp-data"):
        nasforge.load(experiment="nope", tracking_uri=store["tracking_uri"])
    mlflow.MlflowClient(f"sqlite:///{tmp_path / 'other.db'}").create_experiment("not-nasforge")
    with pytest.raises(UnknownSearchError, match=r"holds no nasforge search \(is it the right --tracking-uri\?\)"):
        nasforge.load(tracking_uri=f"sqlite:///{tmp_path / 'other.db'}")


def test_the_leaderboard_has_one_row_per_trial_best_first(wine_search):
    result, _, _ = wine_search
    board = result.leaderboard()
    assert len(board) == len(result.trials) == 4
    assert list(board.columns[:4]) == ["trial", "strategy", "state", "val_accuracy"]
    assert {"layers.0.units", "lr", "n_params", "train_time_s", "run_id"} <= set(board.columns)
    done = board[board["state"] == "COMPLETE"]
    assert list(done["val_accuracy"]) == sorted(done["val_accuracy"], reverse=True)
    assert board.iloc[0]["trial"] == result.best_trial.number
    assert set(board["strategy"]) == {"tpe", "random"}
    by_number = {t.number: t for t in result.trials}
    for _, row in board.iterrows():
        assert row["run_id"] == by_number[row["trial"]].user_attrs["mlflow_run_id"]


def test_the_leaderboard_shows_a_trial_cut_off_while_its_parameters_were_drawn(tmp_path):
    """Ctrl-C can land between two draws of a trial's parameters (Optuna stores each as it is drawn): the
    leaderboard shows the ones it has, not an error about the others."""
    import optuna

    store = {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "storage": f"sqlite:///{tmp_path / 'optuna.db'}"}
    nasforge.search("mlp", task="digits", space=SPACE, trials=1, budget=1, seed=0, plots=False, study_name="cut",
                    **store)
    study = optuna.load_study(study_name="cut", storage=store["storage"])
    name, distribution = sorted(study.trials[0].distributions.items())[0]
    cut = study.ask({name: distribution})          # the state a killed search leaves (then settled on resume)
    study._storage.set_trial_user_attr(cut._trial_id, "interrupted", True)
    study.tell(cut, state=optuna.trial.TrialState.FAIL)
    board = nasforge.load("cut", tracking_uri=store["tracking_uri"]).leaderboard().set_index("trial")
    assert list(board["state"]) == ["COMPLETE", "INTERRUPTED"]
    assert board.loc[cut.number, name] == cut.params[name]
    others = [c for c in ("layers.0.units", "lr") if c != name]
    assert board.loc[cut.number, others].isna().all() and not board.loc[0, others].isna().any()


def test_predict_takes_raw_data_in_every_form_and_decodes_labels(wine_search, tmp_path):
    result, _, _ = wine_search
    wine = _wine()
    rows, labels = wine.drop(columns=["label"]), wine["label"]
    predicted = result.predict(rows)
    assert set(predicted) <= {"barolo", "grignolino", "barbera"}
    assert (predicted == labels.to_numpy()).mean() > 0.8                     # it learned (3 classes)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    wine.to_parquet(tmp_path / "with-target.parquet")                        # the target column is ignored
    np.testing.assert_array_equal(result.predict(str(tmp_path / "rows.csv")), predicted)
    np.testing.assert_array_equal(result.predict(tmp_path / "with-target.parquet"), predicted)
    np.testing.assert_array_equal(result.predict(rows.to_numpy(dtype=object)), predicted)
    proba = result.predict_proba(rows.iloc[:5])
    assert list(proba.columns) == ["barbera", "barolo", "grignolino"]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert list(proba.idxmax(axis=1)) == list(predicted[:5])


def test_predict_reads_a_table_file_larger_than_one_block_a_block_at_a_time(wine_search, tmp_path):
    """A CSV / Parquet file of more rows than FILE_BLOCK_ROWS is predicted block by block (each read
    lazily), with the same predictions, in the same order, as the whole table at once."""
    from nasforge.results.raw_inputs import FILE_BLOCK_ROWS, table_blocks

    result, _, _ = wine_search
    rows = _wine().drop(columns=["label"]).sample(frac=1.0, random_state=0)
    rows = pd.concat([rows] * (FILE_BLOCK_ROWS // len(rows) + 2), ignore_index=True)
    assert len(rows) > FILE_BLOCK_ROWS
    whole = result.predict(rows)
    rows.to_csv(tmp_path / "many.csv", index=False)
    rows.to_parquet(tmp_path / "many.parquet", row_group_size=50_000)
    np.testing.assert_array_equal(result.predict(tmp_path / "many.csv"), whole)
    np.testing.assert_array_equal(result.predict(str(tmp_path / "many.parquet")), whole)
    for name in ("many.csv", "many.parquet"):
        assert [len(block) for block in table_blocks(tmp_path / name)] == [FILE_BLOCK_ROWS, len(rows) - FILE_BLOCK_ROWS]
    proba = result.predict_proba(tmp_path / "many.csv")
    assert len(proba) == len(rows) and list(proba.idxmax(axis=1)) == list(whole)
    with pytest.raises(DataError, match="predict: .*nowhere.csv' does not exist"):
        result.predict(tmp_path / "nowhere.csv")


def test_predict_names_what_does_not_match_training(wine_search):
    result, _, _ = wine_search
    rows = _wine().drop(columns=["label"]).iloc[:5]
    with pytest.raises(DataError, match=r"columns do not match training's \(missing: hue; extra: -\)"):
        result.predict(rows.drop(columns=["hue"]))
    with pytest.raises(DataError, match=r"missing: -; extra: vintage"):
        result.predict(rows.assign(vintage=1990))
    with pytest.raises(DataError, match=r"arrays of shape \(5, 3\); the model takes 14 columns: alcohol"):
        result.predict(rows.to_numpy()[:, :3])
    gap = rows.copy()
    gap.loc[gap.index[0], "hue"] = np.nan                                    # training had no missing hue
    with pytest.warns(UserWarning, match=r"missing values in hue, which had none in training; they are filled"):
        filled = result.predict(gap)
    assert len(filled) == 5


def test_regression_predictions_come_back_in_the_targets_units(tmp_path):
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    result = nasforge.search("mlp", data=(x, y), space=SPACE, trials=1, budget=30, seed=0, plots=False,
                             tracking_uri=f"sqlite:///{tmp_path / 'm.db'}", storage=f"sqlite:///{tmp_path / 'o.db'}")
    predicted = result.predict(x)
    assert 50 < predicted.mean() < 250 and predicted.std() > 20              # the target's units, not z-scores
    r2 = 1 - ((predicted - y) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert r2 > 0.3
    with pytest.raises(DataError, match="predict_proba is for classification"):
        result.predict_proba(x)


def test_the_served_model_predicts_what_the_result_predicts(wine_search):
    result, store, _ = wine_search
    mlflow.set_tracking_uri(store["tracking_uri"])
    served = mlflow.pyfunc.load_model(result.model_uri)
    rows = _wine().drop(columns=["label"]).iloc[::7]
    np.testing.assert_array_equal(np.asarray(served.predict(rows)), result.predict(rows))
    inputs = served.metadata.get_input_schema().input_names()
    assert inputs == list(rows.columns)                                      # the original columns
    assert served.metadata.load_input_example() is not None
    network = mlflow.pytorch.load_model(result.network_uri)                  # the bare network as well
    assert sum(p.numel() for p in network.parameters()) == result.best_trial.user_attrs["metrics"]["n_params"]


def test_resume_without_trials_or_strategy_continues_the_study(tmp_path):
    store = {"tracking_uri": f"sqlite:///{tmp_path / 'm.db'}", "storage": f"sqlite:///{tmp_path / 'o.db'}"}
    kwargs = dict(task="digits", space="mlp_small", budget=2, plots=False, **store)
    first = nasforge.search("mlp", strategy=["tpe", "random"], trials=4, **kwargs)
    again = nasforge.search("mlp", resume=True, **kwargs)                    # no trials, no strategy
    assert again.study.study_name == first.study.study_name
    assert again.spec.strategies == ("tpe", "random") and again.spec.trials == 4 and len(again.trials) == 4
    more = nasforge.search("mlp", resume=True, trials=6, **kwargs)
    assert len(more.trials) == 6
    assert nasforge.search("mlp", resume=True, **kwargs).spec.trials == 6   # the target moved to 6
    with pytest.raises(SpecError, match=r"ran strategy tpe, random; resume it with the same strategy list "
                                        r"\(or leave strategy out\), not controller"):
        nasforge.search("mlp", resume=True, strategy="controller", **kwargs)
    with pytest.raises(SpecError, match=r"no mlp/breast_cancer study .* it holds: mlp-digits-"):
        nasforge.search("mlp", resume=True, **{**kwargs, "task": "breast_cancer"})
    with pytest.raises(SpecError, match=r"study '.*' is a mlp/digits search; cannot resume it as cnn/digits"):
        nasforge.search("cnn", resume=True, study_name=first.study.study_name, **{**kwargs, "space": None})


def test_show_and_list_from_the_cli(wine_search):
    _, store, _ = wine_search
    show = subprocess.run([sys.executable, "-m", "nasforge.cli", "show", "--study-name", "wine", "--tracking-uri",
                           store["tracking_uri"]], capture_output=True, text=True)
    assert show.returncode == 0, show.stderr
    assert "study wine: 4 complete" in show.stdout and "strategies side by side" in show.stdout
    assert "best trial" in show.stdout and "test_accuracy=" in show.stdout
    listed = subprocess.run([sys.executable, "-m", "nasforge.cli", "list", "--tracking-uri", store["tracking_uri"]],
                            capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()[:2]
    assert header.split()[:3] == ["study", "family", "task"]
    assert row.split()[:4] == ["wine", "mlp", "data", nasforge.load("wine", tracking_uri=store["tracking_uri"])
                               .spec.data.digest]
    missing = subprocess.run([sys.executable, "-m", "nasforge.cli", "show", "--run-id", "nope", "--tracking-uri",
                              store["tracking_uri"]], capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.startswith("nasforge: error: no MLflow run 'nope'")
    assert len(missing.stderr.strip().splitlines()) == 1


def test_the_ui_command_links_the_latest_search_at_its_own_port(wine_search):
    from nasforge import cli

    result, store, _ = wine_search
    link = cli.latest_search_link(store["tracking_uri"], "http://127.0.0.1:8123")
    assert link == result.ui_url("http://127.0.0.1:8123")
    assert link.startswith("http://127.0.0.1:8123/#/experiments/") and "workflowType=machine_learning" in link
