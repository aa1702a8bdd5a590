"""Real data on real files for the own-data tests: scikit-learn's wine and digits written out in a temp dir."""

import numpy as np
import pytest

# One short, fixed architecture: the data path is under test, not the search.
SMALL_MLP = {"family": "mlp", "params": {"n_layers": 1, "layers": {"repeat": "n_layers", "params": {"units": 32}},
                                         "lr": 1.0e-2, "batch_size": 32, "patience": None}}
QUICK = {"trials": 1, "budget": 2, "plots": False, "seed": 0}


@pytest.fixture(scope="session")
def wine():
    """scikit-learn's wine as a DataFrame with string labels in column ``label`` (178 rows, 3 classes)."""
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame.rename(columns={"target": "label"})
    frame["label"] = frame["label"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    return frame


@pytest.fixture(scope="session")
def wine_files(tmp_path_factory, wine):
    """wine.csv, wine.parquet, wine.npz (x, y) and x.npy / y.npy, in one temp folder."""
    folder = tmp_path_factory.mktemp("wine")
    wine.to_csv(folder / "wine.csv", index=False)
    wine.to_parquet(folder / "wine.parquet")
    x = wine.drop(columns=["label"]).to_numpy(dtype=np.float32)
    y = wine["label"].map({"barolo": 0, "grignolino": 1, "barbera": 2}).to_numpy()
    np.savez(folder / "wine.npz", x=x, y=y)
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", y)
    return folder


@pytest.fixture(scope="session")
def digit_images(tmp_path_factory):
    """The first 400 of scikit-learn's 8x8 digits as PNG files in one subfolder per class."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = tmp_path_factory.mktemp("digit-images")
    for i in range(400):
        folder = root / f"digit{digits.target[i]}"
        folder.mkdir(exist_ok=True)
        Image.fromarray((digits.images[i] * 255 / 16).astype(np.uint8)).save(folder / f"{i}.png")
    return root


def data_runs(tracking_uri, parent_run_id):
    """The parent run and its dataset inputs, read back with MlflowClient."""
    from mlflow import MlflowClient

    run = MlflowClient(tracking_uri).get_run(parent_run_id)
    inputs = {next(t.value for t in i.tags if t.key == "mlflow.data.context"): i.dataset
              for i in run.inputs.dataset_inputs}
    return run, inputs
