"""Ctrl-C never lands in the middle of a store write.

A ``KeyboardInterrupt`` raised inside a sqlite commit can leave the connection holding the
database's write lock; the clean-up that follows (ending the runs as KILLED) then fails with
"database is locked" and the search cannot say how to resume. Writes to MLflow and Optuna
therefore run under :func:`deferred_interrupt`: a first Ctrl-C is held until the write is
done and raised right after it; a second one is raised at once, so a hung store can still
be left.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
from typing import Callable, Iterator, TypeVar

F = TypeVar("F", bound=Callable)

_depth = 0
_pending = False


def _hold(signum, frame) -> None:
    global _pending
    if _pending:  # the second Ctrl-C: the user means it
        raise KeyboardInterrupt
    _pending = True


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold SIGINT for the duration of the block (main thread only; elsewhere a no-op)."""
    global _depth, _pending
    if _depth or threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        # nested, in a worker thread, or the program handles SIGINT itself: change nothing
        yield
        return
    _depth, _pending = 1, False
    signal.signal(signal.SIGINT, _hold)
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:  # noqa: BLE001 - re-raised below, after the handler is back
        error = exc
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _depth, interrupted, _pending = 0, _pending, False
    if interrupted and not isinstance(error, KeyboardInterrupt):
        raise KeyboardInterrupt from error  # a held Ctrl-C is never lost, even if the write failed
    if error is not None:
        raise error


def store_write(function: F) -> F:
    """Decorator: run ``function`` under :func:`deferred_interrupt`."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with deferred_interrupt():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def release_storage_session(study) -> None:
    """Roll back and hand back this thread's Optuna storage session (best effort).

    Called first thing after a Ctrl-C: if the interrupt landed inside one of the session's
    transactions (the shield above is off while a library such as Ray Tune owns SIGINT), the
    clean-up that follows starts from a fresh session instead of a half-done transaction.
    """
    backend = getattr(study._storage, "_backend", study._storage)   # optuna's cache wraps the RDB storage
    scoped = getattr(backend, "scoped_session", None)
    if scoped is not None:
        with contextlib.suppress(Exception):
            scoped.remove()
