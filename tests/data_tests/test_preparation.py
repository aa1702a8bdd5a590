"""What preparation does to the data: preprocessing as scikit-learn fits it, train-only statistics,
streaming that trains exactly as in memory, every family on 1-D and 2-D regression targets, Ray."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import nasforge
from conftest import local_ray
from data_tests.conftest import QUICK, SMALL_MLP, data_runs
from data_tests.test_forms import RowsOnDisk
from nasforge.data.preprocessing import MAX_CATEGORIES, TabularPreprocessor
from nasforge.errors import RegistrationError


def _mixed_frame(n, seed):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "size": rng.normal(50, 10, n),
        "count": rng.integers(0, 5, n).astype(float),
        "city": rng.choice([f"c{i}" for i in range(MAX_CATEGORIES + 8)], n, p=None),
        "color": rng.choice(["red", "green", "blue"], n),
    })
    frame.loc[rng.random(n) < 0.1, "size"] = np.nan
    frame.loc[rng.random(n) < 0.1, "color"] = None
    return frame


def test_the_preprocessing_is_what_scikit_learn_fits_and_survives_json():
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train, new = _mixed_frame(600, 0), _mixed_frame(200, 1)
    new.loc[0, "city"], new.loc[1, "color"] = "atlantis", "purple"   # unseen categories
    mine = TabularPreprocessor.fit(train)
    onehot = lambda: OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=MAX_CATEGORIES,  # noqa: E731
                                   sparse_output=False)
    reference = ColumnTransformer([
        ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["size", "count"]),
        ("city", make_pipeline(SimpleImputer(strategy="most_frequent"), onehot()), ["city"]),
        ("color", make_pipeline(SimpleImputer(strategy="most_frequent"), onehot()), ["color"]),
    ]).fit(train.astype({"city": object, "color": object}))
    for frame in (train, new):
        expected = reference.transform(frame.astype({"city": object, "color": object}))
        np.testing.assert_allclose(mine.transform(frame), expected, atol=1e-5)
    assert any(c.name == "city" and c.other for c in mine.columns)          # rare cities share "other"
    assert mine.missing == {"size": int(train["size"].isna().sum()), "color": int(train["color"].isna().sum())}
    again = TabularPreprocessor.from_dict(json.loads(json.dumps(mine.to_dict())))
    np.testing.assert_array_equal(again.transform(new), mine.transform(new))


def test_statistics_come_from_the_train_split_only(store):
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (300, 3))
    y = (x[:, 0] > 0).astype(int)
    shifted = x[:100] + 100.0                      # a test split far from train: must not move the scaling
    data = {"train": (x[100:220], y[100:220]), "val": (x[220:], y[220:]), "test": (shifted, y[:100])}
    result = nasforge.search("mlp", data=data, space=SMALL_MLP, tracking_uri=store["tracking_uri"],
                             storage=store["storage"], **QUICK)
    columns = result.spec.data.preprocessing["features"]["columns"]
    assert [c["mean"] for c in columns] == pytest.approx(x[100:220].mean(axis=0))
    assert [c["scale"] for c in columns] == pytest.approx(x[100:220].std(axis=0))
    assert result.spec.data.task.x_test.mean() > 50          # test rows scaled with train's statistics


@pytest.fixture(scope="module")
def digits_npy(tmp_path_factory):
    from sklearn.datasets import load_digits

    folder = tmp_path_factory.mktemp("digits-npy")
    digits = load_digits()
    np.save(folder / "x.npy", (digits.data / 16.0).astype(np.float32))
    np.save(folder / "y.npy", digits.target)
    return folder


def test_streaming_from_disk_trains_as_in_memory(digits_npy, store):
    """Same seed, same data: rows read from disk by a DataLoader give the same search as the tensor path."""
    pair = (str(digits_npy / "x.npy"), str(digits_npy / "y.npy"))
    kwargs = dict(space=SMALL_MLP, trials=2, budget=3, seed=0, plots=False, tracking_uri=store["tracking_uri"],
                  storage=store["storage"])
    memory = nasforge.search("mlp", data=pair, data_options={"stream": False}, **kwargs)
    streamed = nasforge.search("mlp", data=pair, data_options={"stream": True, "num_workers": 1}, **kwargs)
    assert not memory.spec.data.streamed and streamed.spec.data.streamed
    assert streamed.spec.data.task.x_train.__class__.__name__ == "NpyRows"
    assert [t.value for t in streamed.trials] == pytest.approx([t.value for t in memory.trials], abs=2e-3)
    assert streamed.test_metrics["test_accuracy"] == pytest.approx(memory.test_metrics["test_accuracy"], abs=5e-3)


def _big_csv(path, rows=50_000, seed=0):
    """A CSV of ~1.4 MB: a float, an integer and a text column, string labels that depend on two of them."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.integers(0, 100, rows), "c": rng.choice(list("xyz"), rows)})
    frame["label"] = np.where(frame["a"] + (frame["c"] == "x") > 0.3, "yes", "no")
    frame.to_csv(path, index=False)
    return frame


def test_a_csv_larger_than_memory_goes_through_parquet_and_trains_as_loaded(tmp_path, store):
    """A CSV over memory_limit_mb is converted block by block to Parquet in the cache and streamed: the same
    search and predictions as pandas loading it whole; the digest is the CSV's, and the copy is reused."""
    frame = _big_csv(tmp_path / "big.csv")
    assert (tmp_path / "big.csv").stat().st_size > 1 << 20
    kwargs = dict(target="label", space=SMALL_MLP, trials=1, budget=2, seed=0, plots=False, **store)
    loaded = nasforge.search("mlp", data=str(tmp_path / "big.csv"), data_options={"stream": False},
                             experiment="loaded", **kwargs)
    cache = tmp_path / "cache"
    options = {"memory_limit_mb": 1, "cache_dir": str(cache)}
    streamed = nasforge.search("mlp", data=str(tmp_path / "big.csv"), data_options=options, experiment="streamed",
                               **kwargs)
    assert not loaded.spec.data.streamed and streamed.spec.data.streamed
    copies = sorted(cache.glob("big-*.parquet"))
    assert len(copies) == 1 and any(f"converted block by block to {copies[0]}" in n for n in streamed.spec.data.notes)
    assert [t.value for t in streamed.trials] == pytest.approx([t.value for t in loaded.trials], abs=1e-6)
    assert streamed.test_metrics == pytest.approx(loaded.test_metrics, abs=1e-6)
    rows = frame.drop(columns=["label"]).head(50)
    assert list(streamed.predict(rows)) == list(loaded.predict(rows))
    run = data_runs(store["tracking_uri"], streamed.parent_run_id)[0]
    assert run.data.tags["data_source"] == str(tmp_path / "big.csv")   # the file the user gave
    written = copies[0].stat().st_mtime_ns
    again = nasforge.search("mlp", data=str(tmp_path / "big.csv"), data_options=options, experiment="again", **kwargs)
    assert again.spec.data.digest == streamed.spec.data.digest and copies[0].stat().st_mtime_ns == written


def test_streamed_splits_from_files_of_their_own_train_as_loaded(tmp_path, store):
    """A train Parquet file, a test Parquet file with its columns in another order, and a test DataFrame:
    each file streamed through a cache of its own (the train rows' preprocessing), a DataFrame split
    preprocessed in memory -- the same search as the DataFrames loaded whole."""
    train, test = _big_csv(tmp_path / "train.csv", rows=6000), _big_csv(tmp_path / "test.csv", rows=1500, seed=1)
    train.to_parquet(tmp_path / "train.parquet", row_group_size=1000)
    test[["label", "c", "a", "b"]].to_parquet(tmp_path / "test.parquet")
    kwargs = dict(target="label", space=SMALL_MLP, trials=1, budget=2, seed=0, plots=False, **store)
    loaded = nasforge.search("mlp", data={"train": train, "test": test}, experiment="loaded", **kwargs)
    cache = tmp_path / "cache"
    options = {"stream": True, "cache_dir": str(cache)}
    for name, test_split in (("files", str(tmp_path / "test.parquet")), ("file-and-frame", test)):
        streamed = nasforge.search("mlp", data={"train": str(tmp_path / "train.parquet"), "test": test_split},
                                   data_options=options, experiment=name, **kwargs)
        task = streamed.spec.data.task
        assert streamed.spec.data.streamed and type(task.x_train).__name__ == "NpyRows"
        assert type(task.x_test).__name__ == ("NpyRows" if name == "files" else "ndarray")
        assert streamed.spec.data.rows == loaded.spec.data.rows and loaded.spec.data.rows["test"] == 1500
        assert [t.value for t in streamed.trials] == pytest.approx([t.value for t in loaded.trials], abs=1e-6)
        assert streamed.test_metrics == pytest.approx(loaded.test_metrics, abs=1e-6)
    assert sorted(p.name.split("-")[0] for p in cache.glob("*.npy")) == ["test", "train"]   # one cache per file


def test_a_dataset_read_from_disk_streams_and_learns(digits_npy, store):
    dataset = RowsOnDisk(digits_npy / "x.npy", digits_npy / "y.npy")
    result = nasforge.search("mlp", data=dataset, data_options={"stream": True, "num_workers": 1}, space=SMALL_MLP,
                             trials=1, budget=8, seed=0, plots=False, tracking_uri=store["tracking_uri"],
                             storage=store["storage"])
    assert result.spec.data.streamed
    assert result.test_metrics["test_accuracy"] > 0.1 + 0.6     # ten classes: chance is 0.1


def test_an_image_folder_streamed_from_disk_trains_as_in_memory(digit_images, store):
    """Images decoded on the fly, batch by batch, give the search the decoded-up-front one gives."""
    kwargs = dict(trials=1, budget=4, seed=0, plots=False, tracking_uri=store["tracking_uri"], storage=store["storage"])
    memory = nasforge.search("cnn", data=str(digit_images), data_options={"stream": False}, **kwargs)
    streamed = nasforge.search("cnn", data=str(digit_images), data_options={"stream": True}, **kwargs)
    assert not memory.spec.data.streamed and streamed.spec.data.streamed
    assert streamed.spec.data.task.x_train.__class__.__name__ == "ImageRows"
    assert [t.value for t in streamed.trials] == pytest.approx([t.value for t in memory.trials], abs=2e-3)
    assert streamed.test_metrics["test_accuracy"] > 0.1 + 0.3   # ten classes, 400 images: chance is 0.1


REGRESSION_FAMILIES = ["mlp", "rnn", "autoencoder", "evidential"]


@pytest.mark.parametrize("target_shape", ["(N,)", "(N, 1)"])
@pytest.mark.parametrize("family_name", REGRESSION_FAMILIES)
def test_every_family_takes_1d_and_2d_regression_targets_without_broadcasting(family_name, target_shape):
    from nasforge.data.tasks import Task

    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8)).astype(np.float32)
    y = (x[:, :2].sum(axis=1) + 0.1 * rng.normal(size=96)).astype(np.float32)
    y = y if target_shape == "(N,)" else y[:, None]
    splits = dict(x_train=x[:64], y_train=y[:64], x_val=x[64:80], y_val=y[64:80], x_test=x[80:], y_test=y[80:])
    task = Task(name="toy-regression", kind="regression", seed=0, input_shape=(8,),
                info={"sequence_shape": (4, 2)}, **splits)
    family = nasforge.get_registry().get("family", family_name)
    assert "regression" in family.task_kinds
    config = family.make_config({})
    torch.manual_seed(0)
    model = family.build(config, task)
    with warnings.catch_warnings():
        warnings.simplefilter("error")        # torch's "target size ... different to the input size" included
        family.fit(model, task, config, {family.budget_unit: 2}, nasforge.NullReporter())
        metrics = family.evaluate(model, task, "test")
    assert all(np.isfinite(v) for v in metrics.values())


def test_every_registered_regression_family_is_in_the_broadcast_test():
    registry = nasforge.get_registry()
    regression = [n for n in registry.names("family") if "regression" in registry.get("family", n).task_kinds]
    assert sorted(regression) == sorted(REGRESSION_FAMILIES)


# -- notebooks: registering again -----------------------------------------------------------------------
class WinePlugin:
    def __init__(self, task_def):
        self.task_def = task_def

    @nasforge.hookimpl
    def register_tasks(self, register):
        register(self.task_def)


def test_registering_the_same_object_again_is_a_no_op_and_a_clash_names_plugins():
    from nasforge.data.builtin_tasks import load_breast_cancer_task

    task_def = nasforge.TaskDef(name="notebook-wine", kind="classification", load=load_breast_cancer_task)
    first = WinePlugin(task_def)
    name = nasforge.register(first)
    try:
        assert nasforge.register(first) == name                       # a cell run twice: nothing changes
        assert name == f"{__name__}.WinePlugin"
        clash = WinePlugin(nasforge.TaskDef(name="notebook-wine", kind="classification",
                                            load=load_breast_cancer_task, description="another"))
        with pytest.raises(RegistrationError) as error:
            nasforge.register(clash)
        message = str(error.value)
        assert f"by plugin '{name}' and by plugin '{name}-2'" in message
        assert str(id(clash)) not in message and str(id(first)) not in message
        same_task = WinePlugin(task_def)                              # the same task object, another plugin
        nasforge.register(same_task)
        nasforge.unregister(same_task)
    finally:
        nasforge.unregister(first)


# -- Ray ----------------------------------------------------------------------------------------------
def test_own_data_on_ray_in_memory_and_streamed_from_disk(digits_npy, store):
    pair = (str(digits_npy / "x.npy"), str(digits_npy / "y.npy"))
    kwargs = dict(space=SMALL_MLP, trials=2, budget=2, seed=0, plots=False, backend="ray",
                  tracking_uri=store["tracking_uri"], storage=store["storage"])
    with local_ray():
        memory = nasforge.search("mlp", data=pair, data_options={"stream": False}, **kwargs)
        streamed = nasforge.search("mlp", data=pair, data_options={"stream": True}, experiment="streamed", **kwargs)
    for result in (memory, streamed):
        assert [t.state.name for t in result.trials] == ["COMPLETE", "COMPLETE"]
        assert result.test_metrics["test_accuracy"] > 0.5
