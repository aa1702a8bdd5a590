"""Tasks with out-of-distribution (OOD) inputs, registered by the evidential plugin (numpy only).

A task may carry OOD inputs per split in ``task.info["ood"]`` (``{"val": x, "test": x}``);
the evidential family scores how well its uncertainty separates them from the split's own
inputs. Tasks without them get uniform noise over the training inputs' range
(:func:`ood_inputs`).
"""

from __future__ import annotations

import numpy as np

from nasforge.data.tasks import Task, split_arrays

CUBIC_RANGE = (-4.0, 4.0)   # training inputs (Amini et al., 2020, section 5.1)
CUBIC_TEST_RANGE = (-7.0, 7.0)
CUBIC_NOISE = 3.0           # y = x^3 + N(0, 3^2)
DIGITS_OOD_CLASSES = (7, 8, 9)


def load_cubic_task(seed: int) -> Task:
    """The cubic toy of Deep Evidential Regression (Amini et al., 2020), as in the official code.

    Train: ``x = linspace(-4, 4, 1000)``, ``y = x^3 + N(0, 3^2)``. Val: 200 fresh draws
    ``x ~ U(-4, 4)`` with the same noise. Test: ``linspace(-7, 7, 1000)`` without noise,
    split at ``|x| = 4``: the points inside are ``x_test`` / ``y_test``, those outside are
    the OOD test inputs (``info["ood"]["test"]``, true targets in ``info["ood_targets"]``).
    Val OOD inputs: 200 draws with ``|x| ~ U(4, 7)``.

    Targets are NOT rescaled, as in the official code: with the family's defaults (the
    official 4 x 100 network, lr 5e-3, batch 128, lambda 0.01) 100 epochs fit them (test
    RMSE ~1 against a noise std of 3). Rescaling would change lambda's meaning: the NLL is
    invariant to the scale of y but the regularizer ``|y - gamma| (2 nu + alpha)`` is
    linear in it. Measured (test ``mean Var[mu]`` outside / inside [-4, 4], 100 epochs):
    raw y, lambda 0.01: 12 to 18,000 (8 seeds); y / 100, lambda 0.01: 0.2-0.3, no OOD rise
    (8 seeds); y / 100, lambda 1 (the same objective as raw y with 0.01): 0.6-3.3 (6 runs).
    """
    rng = np.random.default_rng(seed)
    x_train = np.linspace(*CUBIC_RANGE, 1000)
    y_train = x_train ** 3 + rng.normal(0.0, CUBIC_NOISE, x_train.shape)
    x_val = rng.uniform(*CUBIC_RANGE, 200)
    y_val = x_val ** 3 + rng.normal(0.0, CUBIC_NOISE, x_val.shape)
    grid = np.linspace(*CUBIC_TEST_RANGE, 1000)
    inside = np.abs(grid) <= CUBIC_RANGE[1]
    ood_val = rng.choice([-1.0, 1.0], 200) * rng.uniform(CUBIC_RANGE[1], CUBIC_TEST_RANGE[1], 200)

    def col(a):
        return np.asarray(a, dtype=np.float32).reshape(-1, 1)

    return Task(
        name="cubic", kind="regression", seed=seed, input_shape=(1,),
        x_train=col(x_train), y_train=col(y_train), x_val=col(x_val), y_val=col(y_val),
        x_test=col(grid[inside]), y_test=col(grid[inside] ** 3),
        info={"train_range": CUBIC_RANGE,
              "ood": {"val": col(ood_val), "test": col(grid[~inside])},
              "ood_targets": {"val": col(ood_val ** 3), "test": col(grid[~inside] ** 3)}},
    )


def load_digits_ood_task(seed: int) -> Task:
    """scikit-learn digits, trained on classes 0-6; images of 7, 8 and 9 are the OOD inputs.

    Pixels are scaled to [0, 1]. The in-distribution images are split 70/15/15 (stratified,
    seeded); the held-out classes are shuffled and halved into val and test OOD sets
    (``info["ood"]``, their true labels in ``info["ood_labels"]``).
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    held_out = np.isin(y, DIGITS_OOD_CLASSES)
    splits = split_arrays(x[~held_out], y[~held_out], seed=seed, stratify=True)
    order = np.random.default_rng(seed).permutation(int(held_out.sum()))
    x_ood, y_ood = x[held_out][order], y[held_out][order]
    half = len(order) // 2
    return Task(name="digits_ood", kind="classification", seed=seed, n_classes=7, input_shape=(64,),
                info={"image_shape": (1, 8, 8), "sequence_shape": (8, 8),
                      "ood": {"val": x_ood[:half], "test": x_ood[half:]},
                      "ood_labels": {"val": y_ood[:half], "test": y_ood[half:]}},
                **splits)


def ood_inputs(task: Task, split: str) -> np.ndarray:
    """OOD inputs for ``split``: the task's own, else seeded uniform noise over the training range.

    The noise has as many rows as the split and, per feature, is uniform between the
    training set's minimum and maximum (for digits: noise images in [0, 1]).
    """
    own = task.info.get("ood")
    if own:   # a split without its own set (train) borrows the val set
        return np.asarray(own.get(split, own.get("val")), dtype=np.float32)
    x_train, x_split = np.asarray(task.x_train), np.asarray(task.split(split)[0])
    low, high = x_train.min(axis=0), x_train.max(axis=0)
    rng = np.random.default_rng([task.seed, ("train", "val", "test").index(split)])
    return rng.uniform(low, high, size=(len(x_split),) + low.shape).astype(np.float32)
