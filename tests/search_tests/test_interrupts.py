"""Ctrl-C is held during a store write and raised right after it; a second one is not held."""

import os
import signal
import threading

import pytest

from nasforge.interrupts import deferred_interrupt, store_write


@pytest.fixture(autouse=True)
def python_handles_ctrl_c():
    """As in a terminal: started in the background by a shell, pytest would ignore SIGINT."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)


def test_a_ctrl_c_during_a_write_is_raised_after_the_write_finishes():
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupt():
            _ctrl_c()
            finished.append("write")
    assert finished == ["write"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_is_raised_at_once():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupt():
            _ctrl_c()
            _ctrl_c()
            reached.append("after the second")
    assert reached == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_held_ctrl_c_is_not_lost_when_the_write_fails():
    with pytest.raises(KeyboardInterrupt) as info:
        with deferred_interrupt():
            _ctrl_c()
            raise OSError("database is locked")
    assert isinstance(info.value.__cause__, OSError)


def test_without_ctrl_c_results_and_errors_pass_through():
    @store_write
    def write(x):
        if x < 0:
            raise ValueError("negative")
        return 2 * x

    assert write(3) == 6
    with pytest.raises(ValueError, match="negative"):
        write(-1)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_worker_threads_and_custom_handlers_are_left_alone():
    seen = []

    def worker():
        with deferred_interrupt():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [signal.default_int_handler]

    calls = []
    previous = signal.signal(signal.SIGINT, lambda *a: calls.append("custom"))
    try:
        with deferred_interrupt():
            _ctrl_c()
        assert calls == ["custom"]
    finally:
        signal.signal(signal.SIGINT, previous)
