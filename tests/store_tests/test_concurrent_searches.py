"""Two searches in two processes write to ONE fresh MLflow store and ONE Optuna storage at the
same moment, into the same experiment, under different study names: both finish, nothing is
mixed up. (Before the preflight's folder lock, one of them died in MLflow's table migrations.)"""

import json
import subprocess
import sys
from pathlib import Path

import optuna
import yaml

from conftest import runs_of
from toy_family import TOY_SPACE

DRIVER = Path(__file__).with_name("search_driver.py")
TRIALS = 3


def test_concurrent_searches_share_the_stores(tmp_path):
    space = tmp_path / "toy.yaml"
    space.write_text(yaml.safe_dump(TOY_SPACE))
    tracking_uri = f"sqlite:///{tmp_path / 'new-folder' / 'mlflow.db'}"  # a folder the searches create
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    searches = {"s1": "shared", "s2": "shared"}  # study -> experiment
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = {
        study: subprocess.Popen(
            [sys.executable, str(DRIVER), json.dumps({
                "tracking_uri": tracking_uri, "storage": storage, "experiment": experiment, "study_name": study,
                "trials": TRIALS, "space": str(space), "barrier": [str(barrier), len(searches)]})],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        for study, experiment in searches.items()
    }
    outputs = {study: proc.communicate(timeout=240) for study, proc in procs.items()}
    for study, proc in procs.items():
        assert proc.returncode == 0, f"{study}: {outputs[study][1][-3000:]}"
        assert f"study {study}: {TRIALS} complete" in outputs[study][0]

    for experiment in set(searches.values()):
        runs = runs_of(tracking_uri, experiment)
        mine = [s for s, e in searches.items() if e == experiment]
        parents = runs[runs["tags.nasforge_role"] == "search"]
        assert sorted(parents["tags.study"]) == mine and set(parents["status"]) == {"FINISHED"}
        for study in mine:
            parent_id = parents[parents["tags.study"] == study]["run_id"].iloc[0]
            children = runs[runs["tags.mlflow.parentRunId"] == parent_id]
            assert sorted(children["tags.trial_number"]) == [str(n) for n in range(TRIALS)]
            assert set(children["tags.study"]) == {study} and set(children["status"]) == {"FINISHED"}
            trials = optuna.load_study(study_name=study, storage=storage).trials
            assert [t.state.name for t in trials] == ["COMPLETE"] * TRIALS
            assert {t.user_attrs["mlflow_run_id"] for t in trials} == set(children["run_id"])
            assert optuna.load_study(study_name=study, storage=storage).user_attrs["mlflow_parent_run_id"] == parent_id
        assert len(runs) == len(mine) * (TRIALS + 1)
