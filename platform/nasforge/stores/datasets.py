"""A user's data on the search's parent run: its tags, ``preprocessing.json`` and MLflow dataset inputs.

Each split is an MLflow dataset input (context ``training``, ``validation`` or ``test``) named after
the data, with the split's digest, its source (the file or folder, when there is one) and its
shape, so the MLflow UI's "Datasets used" says what each search saw.
"""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING

from nasforge.stores.mlflow_runs import Tracker

if TYPE_CHECKING:
    from nasforge.data.prepare import UserData

CONTEXTS = {"train": "training", "val": "validation", "test": "test"}
SCHEMA_ROWS = 1000     # rows MLflow infers a split's schema from


def log_data(tracker: Tracker, run_id: str, data: "UserData") -> None:
    """Tag the parent run with the data's identity, store its preprocessing and log its splits as inputs."""
    tracker.log(run_id, tags=data.tags())
    tracker.log_text(run_id, json.dumps(data.preprocessing, indent=1, default=str), "preprocessing.json")
    tracker.log_datasets(run_id, [(split_dataset(data, split), context) for split, context in CONTEXTS.items()])


def split_dataset(data: "UserData", split: str):
    """One split as an ``mlflow.entities.Dataset`` (schema from its first rows, profile of all of them)."""
    import mlflow.data
    import numpy as np
    from mlflow.entities import Dataset

    x, y = data.task.split(split)
    head = np.asarray(x[:SCHEMA_ROWS], dtype=np.float32)
    with warnings.catch_warnings():   # a local path can be read as two kinds of source: MLflow picks one
        warnings.simplefilter("ignore")
        dataset = mlflow.data.from_numpy(head, targets=np.asarray(y[:SCHEMA_ROWS]), source=data.source,
                                         name=data.name, digest=data.split_digests[split])
    entity = dataset.to_dict()
    entity["profile"] = json.dumps({"num_rows": len(x), "features_shape": [len(x), *x.shape[1:]],
                                    "targets_shape": list(np.shape(y)), "streamed": data.streamed})
    return Dataset(**entity)
