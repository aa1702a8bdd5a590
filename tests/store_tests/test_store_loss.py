"""The MLflow store is lost in the middle of a search: results stay in Optuna, the search stops
with a clear StoreError, and ``resume=True`` back-fills the runs MLflow missed."""

import shutil
from pathlib import Path

import optuna
import pytest

import nasforge
from conftest import runs_of
from nasforge.errors import StoreError
from toy_family import TOY_SPACE


class BreakStoreAfterFirstTrial:
    """After trial 0 is logged, keep a copy of mlflow.db and overwrite its header: every
    MLflow write after that fails at once ("file is not a database")."""

    def __init__(self, db: Path):
        self.db, self.backup = db, db.with_suffix(".backup")

    @nasforge.hookimpl
    def trial_finished(self, record):
        if record.number == 0:
            shutil.copy(self.db, self.backup)
            with open(self.db, "r+b") as f:
                f.write(b"this is no longer a sqlite database" * 4)

    def restore(self):
        shutil.copy(self.backup, self.db)


def test_lost_store_keeps_optuna_results_and_resume_backfills(store, toy, tmp_path):
    breaker = BreakStoreAfterFirstTrial(tmp_path / "mlflow.db")
    kwargs = dict(task="digits", space=TOY_SPACE, budget=2, save_models=True, study_name="lost", **store)
    nasforge.register(breaker, name="store-breaker")
    try:
        with pytest.warns(RuntimeWarning, match="failed"), pytest.raises(StoreError) as info:
            nasforge.search("toy", trials=4, **kwargs)
    finally:
        nasforge.unregister(breaker)
    message = str(info.value)
    assert f"the MLflow store {store['tracking_uri']} failed during the search" in message
    assert "2 of 4 trials are done and kept in the Optuna storage" in message and "resume=True" in message

    # trial 1 ran while the store was down: its result is in Optuna all the same
    study = optuna.load_study(study_name="lost", storage=store["storage"])
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    lost = study.trials[1]
    assert lost.values and lost.user_attrs["metrics"]["val_accuracy"] == pytest.approx(lost.values[0])
    assert lost.user_attrs["mlflow_run_id"] is None

    breaker.restore()
    result = nasforge.search("toy", trials=3, resume=True, **kwargs)
    assert [t.state.name for t in result.study.trials] == ["COMPLETE"] * 3
    runs = runs_of(store["tracking_uri"], "toy-digits")
    children = runs[runs["tags.mlflow.parentRunId"].notna()].sort_values("tags.trial_number")
    assert list(children["tags.trial_number"]) == ["0", "1", "2"]  # one run per trial, none twice
    assert set(children["status"]) == {"FINISHED"}
    filled = children[children["tags.trial_number"] == "1"].iloc[0]
    assert filled["tags.nasforge_backfilled"] == "true" and filled["tags.nasforge_weights"] == "missing"
    assert filled["metrics.val_accuracy"] == pytest.approx(lost.values[0])
    assert filled["params.lr"] == str(lost.params["lr"])
    parent = runs[runs["run_id"] == result.parent_run_id].iloc[0]
    assert parent["status"] == "FINISHED"
    # a second resume writes nothing twice
    nasforge.search("toy", trials=3, resume=True, **kwargs)
    assert len(runs_of(store["tracking_uri"], "toy-digits")) == len(runs)
