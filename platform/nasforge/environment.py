"""Environment variables set for the length of a ``with`` block, then restored as they were."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Mapping


@contextlib.contextmanager
def environment(values: Mapping[str, str], *, override: bool = True) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` inside the block (``override=False``: a variable the user set
    wins) and put every one of them back -- or remove it -- afterwards."""
    saved = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        if override:
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
