"""Keeping the controller's state in the Optuna study itself, so a resumed study resumes it too.

Two study *system* attributes hold it:

* ``controller:state`` (+ chunks): the state at the last REINFORCE update -- weights, Adam
  moments, baseline, update count, pending rewards, curves -- ``torch.save``'d and
  base64-encoded, split in chunks of ``CHUNK`` characters (a MySQL ``TEXT`` column holds
  64 KiB), read back with ``torch.load(weights_only=True)``: no pickled code is ever loaded
  from a storage. Written only when the controller updates.
* ``controller:since``: a small JSON list of the rewards received since that update, written
  after every trial. Loading replays them on top of the snapshot.

Chunks are written before the header that names their count, so a reader never follows a
header to missing chunks; a ``since`` list for another update count than the snapshot's is
stale (the process stopped between the two writes) and ignored.
"""

from __future__ import annotations

import base64
import io
from typing import Any

HEADER = "controller:state"
SINCE = "controller:since"
CHUNK = 40_000


def study_key(study) -> tuple[int, int]:
    return id(study._storage), study._study_id


def save_snapshot(study, state: dict[str, Any]) -> None:
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    text = base64.b64encode(buffer.getvalue()).decode("ascii")
    chunks = [text[i:i + CHUNK] for i in range(0, len(text), CHUNK)] or [""]
    storage, study_id = study._storage, study._study_id
    for i, chunk in enumerate(chunks):
        storage.set_study_system_attr(study_id, f"{HEADER}:{i}", chunk)
    storage.set_study_system_attr(study_id, HEADER, {"chunks": len(chunks), "step": state.get("step", 0)})


def save_since(study, step: int, entries: list) -> None:
    study._storage.set_study_system_attr(study._study_id, SINCE, {"step": step, "entries": entries})


def load(study) -> tuple[dict[str, Any] | None, list]:
    """``(snapshot, entries since it)``; ``(None, [])`` when the study has no controller yet."""
    import torch

    attrs = study._storage.get_study_system_attrs(study._study_id)
    header = attrs.get(HEADER)
    if not header:
        return None, []
    text = "".join(attrs[f"{HEADER}:{i}"] for i in range(header["chunks"]))
    snapshot = torch.load(io.BytesIO(base64.b64decode(text)), map_location="cpu", weights_only=True)
    since = attrs.get(SINCE) or {}
    entries = since.get("entries", []) if since.get("step") == snapshot.get("step") else []
    return snapshot, entries


def has_state(study) -> bool:
    return HEADER in study._storage.get_study_system_attrs(study._study_id)
