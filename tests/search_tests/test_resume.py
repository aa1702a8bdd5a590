"""An interrupted search (Ctrl-C or kill -9) resumes to its target: nothing lost, nothing twice."""

import signal

import pytest

import nasforge
from conftest import completed_trials
from kill_and_resume import check_resumed_search, interrupt_search
from toy_family import SLOW_TOY_SPACE

TARGET = 10
# lr is a float so that two completed trials share their params only if a resumed sampler replayed
# the first process's draws (the check in check_resumed_search): with units alone, an honestly
# reseeded sampler redrew trial 0's configuration one time in 25.
SPACE = {"family": "mlp", "params": {"n_layers": 1, "layers": {"repeat": "n_layers", "params": {"units": {"int": [8, 32]}}},
                                     "lr": {"float": [3e-3, 3e-2], "log": True}, "batch_size": 64, "patience": None}}


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


def test_a_run_finished_after_its_trial_was_settled_as_interrupted_is_killed_again(store):
    """A worker of a killed search can finish its trial's run after the resume settled the trial as
    interrupted (it does not count): the resumed search ends that run KILLED again, metrics kept."""
    import optuna

    from nasforge.stores.mlflow_runs import Tracker

    search = dict(task="digits", space=SPACE, trials=1, budget=1, seed=0, plots=False, study_name="late", **store)
    first = nasforge.search("mlp", **search)
    study = optuna.load_study(study_name="late", storage=store["storage"])
    tracker = Tracker(tracking_uri=store["tracking_uri"], experiment_id=first.experiment_id)
    late = study.ask(study.trials[0].distributions)
    run_id = tracker.start_run(name="late", tags={"trial_number": late.number}, parent_run_id=first.parent_run_id)
    study._storage.set_trial_user_attr(late._trial_id, "mlflow_run_id", run_id)
    study._storage.set_trial_user_attr(late._trial_id, "interrupted", True)
    study.tell(late, state=optuna.trial.TrialState.FAIL)            # settled by a resume, then ...
    tracker.log(run_id, metrics={"val_accuracy": 0.5})
    tracker.end_run(run_id, "FINISHED", tags={"status_reason": "finished"})   # ... finished by the old worker

    result = nasforge.search("mlp", **{**search, "trials": 2}, resume=True)
    run = tracker.get_run(run_id)
    assert run.info.status == "KILLED" and run.data.tags["status_reason"] == "interrupted (process killed)"
    assert "late_finish" in run.data.tags and run.data.metrics["val_accuracy"] == 0.5
    check_resumed_search(result, store, 2, experiment="mlp-digits", model=False)   # the first part finished too
