"""Generated sequence tasks of the RNN plugin: the adding problem and majority-token counting.

Both are made with numpy from the task's seed (nothing is downloaded) and registered through
the plugin's ``register_tasks`` hook, like any third-party task.
"""

from __future__ import annotations

import numpy as np

from nasforge.data.tasks import Task, TaskDef

# (name, T): `adding_short` keeps the tests fast; `adding` is where a vanilla tanh RNN fails
# within a short CPU budget while LSTM and GRU solve it; `adding_long` is harder for everyone.
ADDING_VARIANTS = (("adding", 50), ("adding_short", 10), ("adding_long", 100))
ADDING_SIZES = {"train": 5000, "val": 1000, "test": 1000}

MAJORITY_LENGTH, MAJORITY_VOCAB = 15, 4
MAJORITY_SIZES = {"train": 3000, "val": 600, "test": 600}


def adding_problem(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` sequences of the adding problem: ``x`` (n, length, 2) float32, ``y`` (n, 1) float32.

    Hochreiter & Schmidhuber (1997), Experiment 4, in the form of Le, Jaitly & Hinton (2015,
    "A simple way to initialize recurrent networks of rectified linear units"): each step is a
    pair (value ~ U[0, 1], marker); exactly two markers are 1 and the target is the sum of the
    two marked values. As in Arjovsky, Shah & Bengio (2016), one marker lies in the first half
    of the sequence and the other in the second half, so the first marked value must be kept
    for at least ``length / 2`` steps on average. Predicting the mean (1.0) gives
    MSE = Var(U1 + U2) = 1/6 ~ 0.167.
    """
    if length < 2:
        raise ValueError(f"the adding problem needs length >= 2, got {length}")
    values = rng.uniform(0.0, 1.0, size=(n, length))
    half = length // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, length, size=n)
    markers = np.zeros((n, length))
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1).astype(np.float32)
    y = (values[rows, first] + values[rows, second])[:, None].astype(np.float32)
    return x, y


def majority_tokens(n: int, length: int, vocab: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` token sequences (n, length) int64 whose label is the token that occurs most often.

    Tokens are drawn uniformly from ``range(vocab)``; sequences whose most frequent token is
    not unique are redrawn, so every label is well defined and, by symmetry, the classes are
    balanced (chance accuracy ``1 / vocab``). Solving it means counting over the whole
    sequence, and the inputs are symbols, so a model needs an embedding.
    """
    xs, filled = [], 0
    while filled < n:
        x = rng.integers(0, vocab, size=(2 * (n - filled) + 16, length))
        counts = np.stack([(x == v).sum(axis=1) for v in range(vocab)], axis=1)
        top = np.sort(counts, axis=1)
        x = x[top[:, -1] > top[:, -2]][: n - filled]
        xs.append(x)
        filled += len(x)
    x = np.concatenate(xs).astype(np.int64)
    y = np.stack([(x == v).sum(axis=1) for v in range(vocab)], axis=1).argmax(axis=1).astype(np.int64)
    return x, y


def _splits(make, sizes: dict[str, int], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for name in ("train", "val", "test"):
        out[f"x_{name}"], out[f"y_{name}"] = make(sizes[name], rng)
    return out


def load_adding_task(seed: int, *, name: str = "adding", length: int = 50) -> Task:
    """The adding problem of length ``length`` (see :func:`adding_problem`), regression."""
    splits = _splits(lambda n, rng: adding_problem(n, length, rng), ADDING_SIZES, seed)
    return Task(name=name, kind="regression", seed=seed, input_shape=(length, 2),
                info={"sequence_shape": (length, 2), "baseline_mse": 1.0 / 6.0}, **splits)


def load_majority_task(seed: int) -> Task:
    """Majority token (see :func:`majority_tokens`): classification over integer tokens."""
    splits = _splits(lambda n, rng: majority_tokens(n, MAJORITY_LENGTH, MAJORITY_VOCAB, rng),
                     MAJORITY_SIZES, seed)
    return Task(name="majority_tokens", kind="classification", seed=seed, n_classes=MAJORITY_VOCAB,
                input_shape=(MAJORITY_LENGTH,),
                info={"sequence_shape": (MAJORITY_LENGTH,), "vocab_size": MAJORITY_VOCAB}, **splits)


def task_defs() -> list[TaskDef]:
    """The plugin's tasks, as registered by ``register_tasks``."""
    defs = [
        TaskDef(name=name, kind="regression",
                load=_AddingLoader(name, length),
                description=f"adding problem, T={length} (generated); predicting 1 gives MSE 0.167")
        for name, length in ADDING_VARIANTS
    ]
    defs.append(TaskDef(name="majority_tokens", kind="classification", load=load_majority_task,
                        description=f"most frequent of {MAJORITY_VOCAB} tokens in a sequence of "
                                    f"{MAJORITY_LENGTH} (generated), {MAJORITY_VOCAB} classes"))
    return defs


class _AddingLoader:
    """A picklable ``load(seed)`` for one adding variant (a lambda would not pickle for Ray)."""

    def __init__(self, name: str, length: int):
        self.name, self.length = name, length

    def __call__(self, seed: int) -> Task:
        return load_adding_task(seed, name=self.name, length=self.length)

    def __repr__(self) -> str:
        return f"load_adding_task(name={self.name!r}, length={self.length})"
