"""The built-in tasks: scikit-learn's bundled data sets and MNIST-1D, made offline.

Nothing is downloaded. This module is a default plugin: it registers the tasks through
``register_tasks``, exactly like a third-party plugin would.
"""

from __future__ import annotations

from nasforge.data.tasks import Task, TaskDef, split_arrays, standardize
from nasforge.hookspecs import hookimpl


def load_digits_task(seed: int) -> Task:
    """8x8 handwritten digits (1797 images, 10 classes), pixels scaled to [0, 1]."""
    import numpy as np

    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    splits = split_arrays(x, data.target.astype(np.int64), seed=seed, stratify=True)
    return Task(name="digits", kind="classification", seed=seed, n_classes=10, input_shape=(64,),
                info={"image_shape": (1, 8, 8), "sequence_shape": (8, 8)}, **splits)


def load_breast_cancer_task(seed: int) -> Task:
    """Wisconsin breast cancer (569 samples, 30 features, 2 classes), standardized."""
    import numpy as np

    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    splits = split_arrays(data.data, data.target.astype(np.int64), seed=seed, stratify=True)
    standardize(splits)
    return Task(name="breast_cancer", kind="classification", seed=seed, n_classes=2, input_shape=(30,), **splits)


def load_diabetes_task(seed: int) -> Task:
    """Diabetes progression (442 samples, 10 features), regression; x and y standardized."""
    import numpy as np

    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    splits = split_arrays(data.data, data.target.astype(np.float64)[:, None], seed=seed)
    standardize(splits)
    y_mean, y_std = splits["y_train"].mean(), splits["y_train"].std()
    for name in ("train", "val", "test"):
        splits[f"y_{name}"] = ((splits[f"y_{name}"] - y_mean) / y_std).astype(np.float32)
    return Task(name="diabetes", kind="regression", seed=seed, input_shape=(10,),
                info={"y_mean": float(y_mean), "y_std": float(y_std)}, **splits)


def load_mnist1d_task(seed: int) -> Task:
    """MNIST-1D (Greydanus 2020): 40-sample 1-D signals of 10 digit templates, made offline.

    The data set is the package's fixed default (``get_dataset_args()``: 4000 train, 1000 test);
    ``seed`` only chooses which 15% of the training set is held out for validation.
    Published test accuracies: logistic regression 32%, MLP 68%, CNN 94%, GRU 91%.
    """
    import numpy as np

    from mnist1d.data import get_dataset_args, make_dataset
    from sklearn.model_selection import train_test_split

    data = make_dataset(get_dataset_args())
    x, y = data["x"].astype(np.float32), np.asarray(data["y"], dtype=np.int64)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.15, random_state=seed, stratify=y)
    return Task(name="mnist1d", kind="classification", seed=seed, n_classes=10, input_shape=(40,),
                x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val,
                x_test=data["x_test"].astype(np.float32), y_test=np.asarray(data["y_test"], dtype=np.int64),
                info={"signal_shape": (1, 40), "sequence_shape": (40, 1)})


@hookimpl
def register_tasks(register):
    register(TaskDef(name="digits", kind="classification", load=load_digits_task,
                     description="scikit-learn 8x8 digits, 10 classes"))
    register(TaskDef(name="breast_cancer", kind="classification", load=load_breast_cancer_task,
                     description="scikit-learn breast cancer, 2 classes"))
    register(TaskDef(name="mnist1d", kind="classification", load=load_mnist1d_task,
                     description="MNIST-1D signals (40 samples), 10 classes, generated offline"))
    register(TaskDef(name="diabetes", kind="regression", load=load_diabetes_task,
                     description="scikit-learn diabetes, regression (standardized target)"))
