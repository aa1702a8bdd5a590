"""An interrupted search (Ctrl-C or kill -9) resumes to its target: nothing lost, nothing twice."""

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import nasforge
from conftest import CTRL_C_REACHES_PYTHON, completed_trials, runs_of
from toy_family import SLOW_TOY_SPACE

TESTS = Path(__file__).parents[1]
TARGET = 10

SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import nasforge
    from toy_family import ToyPlugin, SLOW_TOY_SPACE
    nasforge.register(ToyPlugin(), name="toy-plugin")
    nasforge.search("toy", space=SLOW_TOY_SPACE, strategy="tpe", trials={target}, budget=20, seed=0,
                    study_name="resumable", tracking_uri={uri!r}, storage={storage!r})
""")



@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_interrupted_search_resumes_to_its_target(store, toy, sig):
    script = CTRL_C_REACHES_PYTHON + SCRIPT.format(tests=str(TESTS), target=TARGET, **{"uri": store["tracking_uri"], "storage": store["storage"]})
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while completed_trials(store["storage"]) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stdout.read().decode()
    proc.send_signal(sig)
    output = proc.communicate(timeout=60)[0].decode()
    before = completed_trials(store["storage"])
    assert 3 <= before < TARGET
    if sig == signal.SIGINT:
        assert "resume=True" in output

    result = nasforge.search("toy", space=SLOW_TOY_SPACE, strategy="tpe", trials=TARGET, budget=20, seed=0,
                             study_name="resumable", resume=True, **store)
    trials = result.trials
    counted = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED", "FAIL") and not t.user_attrs.get("interrupted")]
    assert len(counted) == TARGET == len(result.completed_trials)
    assert all(t.state.name != "RUNNING" for t in trials)

    runs = runs_of(store["tracking_uri"], "toy-digits")
    parents = runs[runs["tags.mlflow.parentRunId"].isna()]
    assert list(parents["run_id"]) == [result.parent_run_id] and parents.iloc[0]["status"] == "FINISHED"
    children = runs[runs["tags.mlflow.parentRunId"] == result.parent_run_id]
    finished = children[children["status"] == "FINISHED"]
    # every completed trial has exactly one finished run, and no finished run lacks a completed trial
    completed_ids = sorted(t.user_attrs["mlflow_run_id"] for t in result.completed_trials)
    assert sorted(finished["run_id"]) == completed_ids
    assert len(set(finished["tags.trial_number"])) == len(finished)
    # an interrupted trial's run is closed as KILLED, not left RUNNING
    assert "RUNNING" not in set(children["status"])
    for t in trials:
        if t.user_attrs.get("interrupted") and "mlflow_run_id" in t.user_attrs:
            run = children[children["run_id"] == t.user_attrs["mlflow_run_id"]].iloc[0]
            assert run["status"] == "KILLED" and "interrupted" in run["tags.status_reason"]
