"""An interrupted search (Ctrl-C or kill -9) resumes to its target: nothing lost, nothing twice."""

import signal

import pytest

import nasforge
from conftest import completed_trials
from kill_and_resume import check_resumed_search, interrupt_search
from toy_family import SLOW_TOY_SPACE

TARGET = 10


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_interrupted_search_resumes_to_its_target(store, toy, sig):
    search = dict(family="toy", space=SLOW_TOY_SPACE, strategy="tpe", trials=TARGET, budget=20, seed=0,
                  study_name="resumable", **store)
    output = interrupt_search(search, completed=3, sig=sig)
    assert 3 <= completed_trials(store["storage"]) < TARGET
    if sig == signal.SIGINT:
        assert "resume=True" in output, output

    result = nasforge.search(resume=True, **search)
    counts = check_resumed_search(result, store, TARGET, experiment="toy-digits")
    assert counts["completed"] == TARGET == len(result.completed_trials)
    # an interrupted trial's run is closed as KILLED, with the reason
    killed = counts["children"][counts["children"]["status"] == "KILLED"]
    assert all("interrupted" in reason for reason in killed["tags.status_reason"])
