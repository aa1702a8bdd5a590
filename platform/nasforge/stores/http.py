"""MLflow over HTTP, briefly: requests that give up after a short timeout instead of minutes.

MLflow's HTTP client retries for minutes by default (``MLFLOW_HTTP_REQUEST_MAX_RETRIES=7``
with exponential back-off, ``MLFLOW_HTTP_REQUEST_TIMEOUT=120`` s per request); the preflight
and the store-failure path make one try with a short timeout instead.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from nasforge.environment import environment

HTTP_TIMEOUT_S = 5      # per request, inside quick_http only
HTTP_RETRIES = 0


@contextlib.contextmanager
def quick_http(timeout_s: float = HTTP_TIMEOUT_S, retries: int = HTTP_RETRIES) -> Iterator[None]:
    """MLflow HTTP requests in this block give up after ``retries`` retries of ``timeout_s`` each."""
    with environment({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries),
                      "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout_s)}):
        yield
