"""The supernet phase's checkpoint: a file in its MLflow run, and a tag naming the last complete one.

After each epoch the whole state (shared weights, their optimizer, the controller, every random
generator, counters) is ``torch.save``'d to ``supernet/checkpoint-<0|1>.pt`` -- the two slots
alternate, so the previous checkpoint is intact while the next is written -- and only then the
run's tag ``supernet_checkpoint`` is set to name it. A process killed at any moment leaves a tag
that names a complete file. It is read back with ``torch.load(weights_only=True)``: no pickled
code is ever loaded from a store.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

TAG = "supernet_checkpoint"
FOLDER = "supernet"


def save(tracker, run_id: str, state: dict[str, Any], *, epoch: int) -> None:
    import torch

    name = f"checkpoint-{epoch % 2}.pt"
    with tempfile.TemporaryDirectory(prefix="nasforge-supernet-") as tmp:
        path = os.path.join(tmp, name)
        torch.save(state, path)
        tracker.log_artifact(run_id, path, FOLDER)
    tracker.log(run_id, tags={TAG: json.dumps({"file": f"{FOLDER}/{name}", "epoch": epoch})})


def load(tracker, run_id: str) -> dict[str, Any] | None:
    """The last complete checkpoint of the run, or None when it has none yet."""
    import torch

    pointer = tracker.get_run(run_id).data.tags.get(TAG)
    if not pointer:
        return None
    where = json.loads(pointer)
    with tempfile.TemporaryDirectory(prefix="nasforge-supernet-") as tmp:
        path = tracker.download(run_id, where["file"], tmp)
        return torch.load(path, map_location="cpu", weights_only=True)
