"""Bad data gets one clear error before any trial, and nothing is written: no store, no run."""

import subprocess
import sys

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch
from PIL import Image

import nasforge
from data_tests.conftest import QUICK
from nasforge.errors import DataError


def _search(store, family="mlp", **kwargs):
    return nasforge.search(family, tracking_uri=store["tracking_uri"], storage=store["storage"], **QUICK, **kwargs)


def _nothing_written(tmp_path):
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "optuna.db").exists()


class NotPairs(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.zeros(3)


def test_each_bad_input_is_one_clear_error_before_anything_runs(wine, wine_files, store, tmp_path):
    x, y = wine.drop(columns=["label"]).to_numpy(), wine["label"].to_numpy()
    mixed = wine.copy()
    mixed["alcohol"] = mixed["alcohol"].astype(object)
    mixed.loc[5, "alcohol"] = "n/a"
    cases = [
        (dict(data=str(tmp_path / "missing.csv"), target="label"), r"missing\.csv.* does not exist"),
        (dict(data=str(wine_files / "wine.csv"), target="class"), r"no column 'class'; its columns: alcohol, .*label"),
        (dict(data=str(wine_files / "wine.csv")), r"needs target= naming the column to predict; its columns:"),
        (dict(data=(x, np.zeros(len(x), dtype=int))), r"one class \(0\); classification needs at least two"),
        (dict(data=mixed, target="label"), r"column 'alcohol' mixes types \(float, str\)"),
        (dict(data=NotPairs()), r"items of a Dataset must be \(x, y\) pairs; item 0 of the NotPairs is a Tensor"),
        (dict(data=(x[:0], y[:0])), r"X has no rows"),
        (dict(data=(x, y[:10])), r"X has 178 rows but y has 10"),
        (dict(data=(x, np.where(np.arange(len(x)) == 7, np.nan, 1.5 * np.arange(len(x))))),
         r"1 targets are NaN or infinite \(first at row 7\)"),
        (dict(data=x), r"an array alone has no targets; pass data=\(X, y\)"),
        (dict(data=pl.from_pandas(wine).lazy(), target="label"),
         r"cannot read a polars LazyFrame; .*; a polars LazyFrame: call \.collect\(\) first"),
        (dict(data=pl.from_pandas(wine), target="class"), r"a polars DataFrame has no column 'class'; its columns:"),
        (dict(data=(x, y), target="label"), r"target='label' names a column of a table"),
        (dict(data=(x, y), task="digits"), r"give task='digits' or data=, not both"),
        (dict(task="digits", target="label"), r"target applies to data="),
        (dict(data=(x, y), kind="ranking"), r"kind must be one of classification, regression"),
        (dict(data=(x, y), data_options={"val": 0.7}), r"data_options.val must be a fraction in \(0, 0.5\)"),
        (dict(data=(x, y), data_options={"shuffle": True}), r"unknown option 'shuffle'; valid: val, test, stream"),
        (dict(data={"train": (x, y), "holdout": (x, y)}), r"unknown split 'holdout'"),
        (dict(data={"train": wine, "test": wine.drop(columns=["hue"])}, target="label"),
         r"data\['test'\]: its columns differ from the train split's \(missing: hue"),
    ]
    for kwargs, message in cases:
        with pytest.raises(nasforge.NasforgeError, match=message) as error:
            _search(store, **kwargs)
        assert "\n" not in str(error.value), str(error.value)
    _nothing_written(tmp_path)


def test_a_family_that_cannot_take_the_data_names_those_that_can(digit_images, wine, store, tmp_path):
    with pytest.raises(DataError, match=r"family 'mlp' cannot take a folder of images .*families that can: "
                                        r"autoencoder, cnn, gan"):
        _search(store, data=str(digit_images))
    with pytest.raises(DataError, match=r"family 'cnn' cannot take a table .*families that can: .*mlp"):
        _search(store, family="cnn", data=wine, target="label")
    with pytest.raises(DataError, match=r"family 'rl' takes no data of the user's"):
        _search(store, family="rl", data=wine, target="label")
    _nothing_written(tmp_path)


def test_image_folders_without_images_or_with_a_broken_one_are_named(tmp_path, store):
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    with pytest.raises(DataError, match=r"has no images \(.png, .jpg, .jpeg\) in its class folders cats"):
        _search(store, family="cnn", data=str(tmp_path / "empty"))
    root = tmp_path / "shapes"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(np.full((6, 6), 25 * i, dtype=np.uint8)).save(root / label / f"{i}.png")
    (root / "b" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"cannot read image .*b/broken\.png"):
        _search(store, family="cnn", data=str(root))


def test_a_streamed_data_set_refuses_a_family_that_loads_whole_splits(wine_files, store):
    with pytest.raises(DataError, match=r"family 'autoencoder' loads whole splits into memory; families that "
                                        r"stream: cnn, mlp, rnn"):
        _search(store, family="autoencoder", data=(str(wine_files / "x.npy"), str(wine_files / "y.npy")),
                data_options={"stream": True})


def test_a_csv_read_through_parquet_names_the_column_whose_type_changes(wine, tmp_path):
    """Column types come from the first block: text further down a number column stops the conversion with
    the column named, and no half-written copy stays in the cache."""
    from nasforge.data.csv_to_parquet import csv_as_parquet

    rows = pd.concat([wine] * 40, ignore_index=True)   # 7120 rows, ~0.9 MB: several 100 kB blocks
    rows["alcohol"] = rows["alcohol"].astype(object)
    rows.loc[len(rows) - 3, "alcohol"] = "n/a?"
    rows.to_csv(tmp_path / "wines.csv", index=False)
    with pytest.raises(DataError, match=r"data: wines\.csv, read in blocks of 0\.0954 MB with the column types of the "
                                        r"first block: column 'alcohol': .*invalid value 'n/a\?'; give the column one"):
        csv_as_parquet(tmp_path / "wines.csv", target="label", cache_dir=tmp_path / "cache", what="data",
                       block_bytes=100_000)
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_streamed_split_file_without_a_train_column_is_named(wine, wine_files, store, tmp_path):
    wine.drop(columns=["hue"]).to_parquet(tmp_path / "no-hue.parquet")
    with pytest.raises(DataError, match=r"data\['test'\] \(no-hue\.parquet\): its columns differ from the train "
                                        r"split's \(missing: hue; extra: -\)"):
        _search(store, data={"train": str(wine_files / "wine.parquet"), "test": str(tmp_path / "no-hue.parquet")},
                target="label", data_options={"stream": True, "cache_dir": str(tmp_path / "cache")})
    _nothing_written(tmp_path)
    assert not (tmp_path / "cache").exists()


def test_a_csv_read_through_parquet_names_the_csv_in_its_errors(wine_files, store, tmp_path):
    with pytest.raises(DataError, match=r"data: wine\.csv has no column 'class'; its columns: alcohol, .*label"):
        _search(store, data=str(wine_files / "wine.csv"), target="class",
                data_options={"stream": True, "cache_dir": str(tmp_path / "cache")})
    _nothing_written(tmp_path)


def test_the_cli_says_data_and_task_do_not_mix_in_one_line(wine_files, tmp_path):
    done = subprocess.run([sys.executable, "-m", "nasforge.cli", "search", "mlp", "--data",
                           str(wine_files / "wine.csv"), "--target", "label", "--task", "digits"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "nasforge: error: give task='digits' or data=, not both: task names a registered task, data= is your own "
        "data (CLI: --task or --data)"]
    assert not (tmp_path / "mlflow.db").exists()


# -- a plugin's own task gets the same checks -----------------------------------------------------------
def _broken_task(**changes):
    from nasforge.data.builtin_tasks import load_digits_task

    def load(seed):
        task = load_digits_task(seed)
        task.name = "broken"
        for key, value in changes.items():
            setattr(task, key, value(task) if callable(value) else value)
        return task

    return load


BROKEN_TASKS = {
    "no n_classes": (dict(n_classes=None), r"n_classes=None; a classification task needs the number of classes"),
    "input_shape off": (dict(input_shape=(63,)), r"x_train has shape \(\d+, 64\); .*prod\(input_shape\) = 63"),
    "labels out of range": (dict(n_classes=5), r"y_train holds labels 0..9, but n_classes=5"),
    "string labels": (dict(y_train=lambda t: t.y_train.astype(str)), r"class labels must be integers"),
    "empty val split": (dict(x_val=lambda t: t.x_val[:0], y_val=lambda t: t.y_val[:0]), r"the val split has no rows"),
    "NaN inputs": (dict(x_train=lambda t: np.where(np.arange(t.x_train.size).reshape(t.x_train.shape) == 5, np.nan,
                                                   t.x_train)), r"x_train holds 1 NaN or infinite values"),
}


@pytest.mark.parametrize("case", list(BROKEN_TASKS))
def test_a_broken_plugin_task_stops_before_the_first_trial(case, store, tmp_path):
    changes, message = BROKEN_TASKS[case]

    class Plugin:
        @nasforge.hookimpl
        def register_tasks(self, register):
            register(nasforge.TaskDef(name="broken", kind="classification", load=_broken_task(**changes)))

    plugin = Plugin()
    nasforge.register(plugin)
    try:
        with pytest.raises(DataError, match=message):
            _search(store, task="broken")
    finally:
        nasforge.unregister(plugin)
    _nothing_written(tmp_path)
