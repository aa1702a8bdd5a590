"""Every form of ``data=`` end to end on real files: one search each, read back from MLflow."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
import torch
from mlflow import MlflowClient

import nasforge
from data_tests.conftest import QUICK, SMALL_MLP, data_runs


def _wine_arrays(wine):
    x = wine.drop(columns=["label"]).to_numpy()
    return x, wine["label"].to_numpy()


class RowsOnDisk(torch.utils.data.Dataset):
    """A map-style Dataset that reads each item from .npy files on disk (nothing kept in memory)."""

    def __init__(self, x_path, y_path):
        self.x_path, self.y_path = str(x_path), str(y_path)
        self.n = len(np.load(self.y_path, mmap_mode="r"))

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        x = np.load(self.x_path, mmap_mode="r")[i]
        y = np.load(self.y_path, mmap_mode="r")[i]
        return torch.from_numpy(np.array(x, dtype=np.float32)), int(y)


FORMS = {
    "(X, y) arrays": lambda wine, files: dict(data=_wine_arrays(wine)),
    "DataFrame + target": lambda wine, files: dict(data=wine, target="label"),
    "CSV file": lambda wine, files: dict(data=str(files / "wine.csv"), target="label"),
    "Parquet file": lambda wine, files: dict(data=files / "wine.parquet", target="label"),
    "NPZ file": lambda wine, files: dict(data=str(files / "wine.npz")),
    ".npy pair": lambda wine, files: dict(data=(str(files / "x.npy"), str(files / "y.npy"))),
    "explicit splits": lambda wine, files: dict(
        data={"train": wine.iloc[::2], "val": wine.iloc[1::4], "test": wine.iloc[3::4]}, target="label"),
    "train + test, val split off": lambda wine, files: dict(
        data={"train": str(files / "wine.csv"), "test": wine.iloc[:40]}, target="label"),
    "torch Dataset from disk": lambda wine, files: dict(data=RowsOnDisk(files / "x.npy", files / "y.npy")),
    "polars DataFrame + target": lambda wine, files: dict(data=pl.from_pandas(wine), target="label"),
    "pyarrow Table + target": lambda wine, files: dict(data=pa.Table.from_pandas(wine), target="label"),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_each_form_searches_and_mlflow_shows_the_data(form, wine, wine_files, store, capsys, tmp_path):
    result = nasforge.search("mlp", space=SMALL_MLP, tracking_uri=store["tracking_uri"], storage=store["storage"],
                             **FORMS[form](wine, wine_files), **QUICK)
    assert [t.state.name for t in result.trials] == ["COMPLETE"]
    data = result.spec.data
    assert data.kind == "classification" and data.task.n_classes == 3
    assert sum(data.rows.values()) == 178 if form != "train + test, val split off" else 178 + 40
    said = capsys.readouterr().err
    assert f"data {data.name!r}" in said and "classification, 3 classes" in said

    run, inputs = data_runs(store["tracking_uri"], result.parent_run_id)
    assert run.data.tags["data_digest"] == data.digest and run.data.tags["data_kind"] == "classification"
    assert set(inputs) == {"training", "validation", "test"}
    for context, split in (("training", "train"), ("validation", "val"), ("test", "test")):
        assert inputs[context].name == data.name
        assert inputs[context].digest == data.split_digests[split]
        assert json.loads(inputs[context].profile)["num_rows"] == data.rows[split]
    if data.source:   # read from a file: the UI names it
        assert data.source in inputs["training"].source
    local = MlflowClient(store["tracking_uri"]).download_artifacts(result.parent_run_id, "preprocessing.json",
                                                                   str(tmp_path))
    stored = json.loads(open(local).read())
    assert stored["kind"] == "classification" and stored["task"]["n_classes"] == 3


def test_an_arrow_table_is_the_same_data_as_its_pandas_frame_and_predicts_alike(wine, store):
    """A table given through the Arrow stream interface (a polars DataFrame, a pyarrow Table) is read
    as the pandas DataFrame it converts to: the same digest, the same predictions."""
    kwargs = dict(target="label", space=SMALL_MLP, tracking_uri=store["tracking_uri"], storage=store["storage"],
                  **QUICK)
    from_pandas = nasforge.search("mlp", data=wine, **kwargs)
    from_arrow = nasforge.search("mlp", data=pl.from_pandas(wine), **kwargs)
    assert from_arrow.spec.data.digest == from_pandas.spec.data.digest
    inputs = wine.drop(columns=["label"]).iloc[:20]
    predictor = from_arrow.predictor()
    assert list(predictor.predict(pl.from_pandas(inputs))) == list(predictor.predict(inputs))
    assert list(predictor.predict(pa.Table.from_pandas(inputs))) == list(predictor.predict(inputs))
    assert set(predictor.predict(inputs)) <= {"barbera", "barolo", "grignolino"}


def test_string_labels_are_encoded_and_kept(wine, store):
    result = nasforge.search("mlp", data=wine, target="label", space=SMALL_MLP, tracking_uri=store["tracking_uri"],
                             storage=store["storage"], **QUICK)
    target = result.spec.data.preprocessing["target"]
    assert target == {"type": "labels", "classes": ["barbera", "barolo", "grignolino"]}
    assert set(np.unique(result.spec.data.task.y_train)) == {0, 1, 2}


def test_the_kind_is_inferred_from_the_target_and_can_be_overridden(store, capsys):
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    kwargs = dict(space=SMALL_MLP, tracking_uri=store["tracking_uri"], storage=store["storage"], **QUICK)
    floats = nasforge.search("mlp", data=(x, y), **kwargs)
    assert floats.spec.data.kind == "regression" and floats.spec.objectives[0].metric == "val_rmse"
    assert "regression" in capsys.readouterr().err
    classes = (y > np.median(y)).astype(int)
    assert nasforge.search("mlp", data=(x, classes), **kwargs).spec.data.kind == "classification"
    forced = nasforge.search("mlp", data=(x, classes.astype(float)), kind="classification", **kwargs)
    assert forced.spec.data.kind == "classification" and forced.spec.data.task.n_classes == 2


def test_a_csv_search_learns_wine_well_above_chance(wine_files, store):
    """Standardized by nasforge, a small MLP separates the wines: test accuracy far above the 0.40 majority."""
    space = {**SMALL_MLP, "params": {**SMALL_MLP["params"], "patience": 10}}
    result = nasforge.search("mlp", data=str(wine_files / "wine.csv"), target="label", space=space, trials=1,
                             budget=40, seed=0, plots=False, tracking_uri=store["tracking_uri"],
                             storage=store["storage"])
    majority = pd.Series(result.spec.data.task.y_test).value_counts(normalize=True).max()
    assert majority < 0.45
    assert result.test_metrics["test_accuracy"] >= majority + 0.4


def test_a_1d_regression_target_learns(store):
    """diabetes with y of shape (N,): R^2 well above 0 (a (N,) target broadcast against (N, 1) gave -0.05)."""
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    assert y.ndim == 1
    result = nasforge.search("mlp", data=(x, y), space=SMALL_MLP, trials=1, budget=30, seed=0, plots=False,
                             tracking_uri=store["tracking_uri"], storage=store["storage"])
    assert result.test_metrics["test_r2"] > 0.3


def test_image_folder_sequences_and_tokens_reach_their_families(digit_images, store):
    from sklearn.datasets import load_digits

    digits = load_digits()
    kwargs = dict(tracking_uri=store["tracking_uri"], storage=store["storage"], **QUICK)
    images = nasforge.search("cnn", data=str(digit_images), **kwargs)
    assert images.spec.data.layout == "image" and images.spec.data.task.info["image_shape"] == (1, 8, 8)
    assert images.spec.data.task.n_classes == 10 and images.completed_trials
    sequences = nasforge.search("rnn", data=(digits.images[:300], digits.target[:300]), **kwargs)
    assert sequences.spec.data.layout == "sequence" and sequences.spec.data.task.info["sequence_shape"] == (8, 8)
    tokens = np.random.default_rng(0).integers(0, 12, size=(300, 10))
    counted = nasforge.search("rnn", data=(tokens, (tokens == 3).sum(axis=1) > 1), **kwargs)
    assert counted.spec.data.layout == "tokens" and counted.spec.data.task.info["vocab_size"] == 12
    assert counted.completed_trials


def test_an_image_folder_is_evaluated_by_its_class_subfolders(digit_images, store):
    result = nasforge.search("cnn", data=str(digit_images), tracking_uri=store["tracking_uri"],
                             storage=store["storage"], **{**QUICK, "budget": 4})
    scored = result.evaluate(str(digit_images))
    folders = sorted(p for p in digit_images.iterdir() if p.is_dir())
    hits = sum(int((result.predict(str(folder)) == folder.name).sum()) for folder in folders)   # one class at a time
    assert scored["n_rows"] == 400 and scored["accuracy"] == pytest.approx(hits / 400)
    assert scored["accuracy"] > 0.1 + 0.3                  # ten classes
    files = sorted(str(p) for p in folders[0].iterdir())    # predict takes a list of image files too
    assert list(result.predict(files)) == list(result.predict(str(folders[0])))
    from nasforge import cli                                # the CLI says which file each prediction is for

    assert cli.main(["predict", str(digit_images), "-o", "out.csv", "--tracking-uri", store["tracking_uri"]]) == 0
    written = pd.read_csv("out.csv")
    assert list(written.columns) == ["file", "prediction"] and len(written) == 400
    by_folder = written["file"].map(lambda f: Path(f).parts[0])
    assert (written["prediction"] == by_folder).mean() == pytest.approx(scored["accuracy"])


def test_the_cli_searches_a_csv(wine_files, store, capsys):
    from nasforge import cli

    status = cli.main(["search", "mlp", "--data", str(wine_files / "wine.csv"), "--target", "label", "--trials", "1",
                       "--budget", "2", "--no-plots", "-q", "--tracking-uri", store["tracking_uri"],
                       "--storage", store["storage"], "--test-data", str(wine_files / "wine.csv")])
    out = capsys.readouterr()
    assert status == 0, out.err
    assert "data 'wine' from wine.csv" in out.err and "rows: train" in out.err
    assert "best trial 0 on the test split" in out.out


def test_resuming_on_other_data_is_refused_naming_both_digests(wine, store):
    kwargs = dict(target="label", space=SMALL_MLP, tracking_uri=store["tracking_uri"], storage=store["storage"],
                  study_name="own-data", **QUICK)
    first = nasforge.search("mlp", data=wine, **kwargs)
    changed = wine.copy()
    changed.loc[0, "alcohol"] += 1.0
    with pytest.raises(nasforge.SpecError) as error:
        nasforge.search("mlp", data=changed, resume=True, **{**kwargs, "trials": 2})
    message = str(error.value)
    assert first.spec.data.digest in message
    assert len([w for w in message.split() if len(w.strip(".;")) == 16]) >= 2   # both digests are named
    again = nasforge.search("mlp", data=wine, resume=True, **{**kwargs, "trials": 2})
    assert len(again.completed_trials) == 2
