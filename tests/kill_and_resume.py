"""Interrupt a search running in another process, then check a resumed search's invariants.

``interrupt_search`` runs ``nasforge.search(**kwargs)`` (the toy family registered) in a child
process and sends it a signal once enough trials are COMPLETE; ``check_resumed_search`` asserts
what any search that was cut off and resumed must hold, in the Optuna storage and the MLflow run
tree (used by the resume, side-by-side, Ray and chaos tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from conftest import CTRL_C_REACHES_PYTHON, child_runs, completed_trials, runs_of

TESTS = Path(__file__).parent

SEARCH_SCRIPT = CTRL_C_REACHES_PYTHON + textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests!r})
    import nasforge
    from toy_family import ToyPlugin
    nasforge.register(ToyPlugin(), name="toy-plugin")
    nasforge.search(**json.loads({kwargs!r}))
""")


def interrupt_search(kwargs: dict, *, completed: int, sig: int, timeout: float = 150) -> str:
    """Run ``nasforge.search(**kwargs)`` in a child process, send it ``sig`` once ``completed``
    trials of its study (``kwargs["study_name"]`` in ``kwargs["storage"]``) are COMPLETE, wait
    for it to end, and return what it printed."""
    script = SEARCH_SCRIPT.format(tests=str(TESTS), kwargs=json.dumps(kwargs))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}   # a Ray the child starts: no token file in $HOME
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + timeout
    done = 0
    while proc.poll() is None and time.monotonic() < deadline:
        done = completed_trials(kwargs["storage"], kwargs["study_name"])
        if done >= completed:
            break
        time.sleep(0.05)
    if done < completed:
        ended = proc.poll() is not None
        proc.kill()
        output = proc.communicate(timeout=60)[0].decode()
        raise AssertionError(f"the search {'ended' if ended else 'was still running'} with {done} of the "
                             f"{completed} completed trials awaited:\n{output[-3000:]}")
    proc.send_signal(sig)
    return proc.communicate(timeout=90)[0].decode()


def check_resumed_search(result, store: dict, target: int, *, experiment: str, model: bool = True) -> dict:
    """The invariants of a search that was cut off and resumed to ``target`` completed trials;
    returns the counts (for a report).

    In the study: no trial left RUNNING, ``target`` COMPLETE trials, no others counted toward the
    target, no configuration completed twice. In MLflow: one FINISHED parent run (the result's),
    one FINISHED child run per completed trial linked both ways and none for any other trial,
    no run left RUNNING, an interrupted trial's run KILLED; the same best trial in the result, the
    storage and the parent run; with ``model``, one best model on the parent run.
    """
    study = optuna.load_study(study_name=result.study.study_name, storage=store["storage"])
    trials = study.get_trials(deepcopy=False)
    assert not [t.number for t in trials if t.state.name in ("RUNNING", "WAITING")]
    completed = [t for t in trials if t.state.name == "COMPLETE"]
    counted = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED", "FAIL") and not t.user_attrs.get("interrupted")]
    interrupted = [t for t in trials if t.user_attrs.get("interrupted")]
    assert len(completed) == len(counted) == target, (len(completed), len(counted))
    params = Counter(json.dumps(t.params, sort_keys=True) for t in completed)
    duplicated_params = sum(n - 1 for n in params.values())
    assert duplicated_params == 0, params.most_common(3)

    runs = runs_of(store["tracking_uri"], experiment)
    parents = runs[runs["tags.mlflow.parentRunId"].isna()]
    assert list(parents["run_id"]) == [result.parent_run_id], parents[["run_id", "status"]]
    parent = parents.iloc[0]
    assert parent["status"] == "FINISHED"
    children = child_runs(runs, result.parent_run_id)
    assert len(children) == len(runs) - 1
    assert "RUNNING" not in set(children["status"]), children[["run_id", "status", "tags.trial_number"]]
    finished = children[children["status"] == "FINISHED"]
    # one FINISHED run per completed trial, linked both ways, and none for any other trial
    assert sorted(finished["run_id"]) == sorted(t.user_attrs["mlflow_run_id"] for t in completed), (
        finished[["run_id", "tags.trial_number", "tags.status_reason"]].to_dict("records"),
        [(t.number, t.state.name, t.user_attrs.get("mlflow_run_id"), t.user_attrs.get("interrupted")) for t in trials])
    numbers = Counter(finished["tags.trial_number"])
    duplicated_runs = sum(n - 1 for n in numbers.values())
    assert duplicated_runs == 0, numbers.most_common(3)
    assert sorted(int(n) for n in numbers) == sorted(t.number for t in completed)
    by_run = finished.set_index("run_id")
    for t in completed:
        assert by_run.loc[t.user_attrs["mlflow_run_id"], "metrics.val_accuracy"] == pytest.approx(t.value)
    # every interrupted trial's run (if it got one) is KILLED, not FINISHED
    for t in interrupted:
        run_id = t.user_attrs.get("mlflow_run_id")
        if run_id:
            assert children.set_index("run_id").loc[run_id, "status"] == "KILLED"

    # the best: the same trial in the result, the storage and the parent run
    assert result.best_trial.number == study.best_trial.number
    assert result.best_value == study.best_value == parent["metrics.best_val_accuracy"]
    assert parent["tags.best_trial"] == str(study.best_trial.number)
    assert json.loads(parent["tags.best_params"]) == result.best_params
    assert parent["tags.best_run_id"] == study.best_trial.user_attrs["mlflow_run_id"]
    assert parent["metrics.n_complete"] == target
    if model:
        # one best model on the parent run, however often finish_search was cut off; none left PENDING
        models = MlflowClient(store["tracking_uri"]).search_logged_models(
            [result.experiment_id], filter_string=f"source_run_id = '{result.parent_run_id}'")
        assert [m.model_uri for m in models if m.status.name == "READY"] == [result.model_uri]
        assert {m.status.name for m in models} <= {"READY", "FAILED"}
    return {"completed": len(completed), "lost": target - len(completed), "duplicated_trials": duplicated_params,
            "duplicated_runs": duplicated_runs, "interrupted_trials": len(interrupted),
            "killed_runs": int((children["status"] == "KILLED").sum()), "children": children}
