"""Chaos: the driver of one search is SIGKILLed many times, at seeded random points, and resumed.

Each round forks a fresh driver (``chaos_driver.py``) that resumes the search and is killed:
after a random delay, or at a chosen point -- while a trial is sampled, in the middle of a
trial, between a trial run's closing tags and its end, between the trial's MLflow run ending
FINISHED and Optuna being told, in ``finish_search`` (best model logging), right after the parent run
is created (see ``chaos_driver.py``). A last resume in this process finishes the search.
Then: the target count of completed trials, no trial counted twice, one FINISHED child run per
completed trial and no run left RUNNING, one parent run with one best model, and the same best
trial in the result, the Optuna storage and the parent run's metrics.
"""

from __future__ import annotations

import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

import nasforge
from conftest import local_ray, runs_of
from toy_family import TOY_SPACE

TESTS = Path(__file__).parents[1]
DRIVER = Path(__file__).with_name("chaos_driver.py")
SEED = 20261125   # the kill points and delays of every round: CI sees the same rounds each time
EXPERIMENT = "chaos"


class Zygote:
    """The driver zygote subprocess (see chaos_driver.py): forks one driver per round."""

    def __init__(self, work_dir: Path, *, timeout: float = 120):
        self.work_dir, self.timeout = work_dir, timeout
        env = {**os.environ, "RAY_AUTH_MODE": "disabled"}   # no token file in $HOME for a test cluster
        config = {"tests_dir": str(TESTS), "work_dir": str(work_dir)}
        self.log = open(work_dir / "zygote.log", "wb")
        # its own process group: close() ends the zygote and any driver it left, and nothing else
        self.proc = subprocess.Popen([sys.executable, str(DRIVER), json.dumps(config)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, env=env,
                                     start_new_session=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self._read("ready")
        self.template = work_dir / "template.db"

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")

    def _read(self, key: str) -> dict:
        try:
            line = self.lines.get(timeout=self.timeout)
        except queue.Empty:
            self.close()
            raise AssertionError(f"the chaos driver zygote said nothing for {self.timeout:.0f} s") from None
        if not line:
            self.proc.wait(timeout=30)
            raise AssertionError(f"the chaos driver zygote exited ({self.proc.returncode}): "
                                 + (self.work_dir / "zygote.log").read_text()[-3000:])
        message = json.loads(line)
        assert key in message, message
        return message

    def round(self, plan: dict) -> dict:
        self.proc.stdin.write(json.dumps(plan) + "\n")
        self.proc.stdin.flush()
        self._read("pid")
        return self._read("signal")

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)   # the zygote's own exit takes seconds
        self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    z = Zygote(tmp_path_factory.mktemp("chaos-zygote"))
    try:
        yield z
    finally:
        z.close()


def plan_rounds(rng: random.Random, points: dict[str, tuple[int, int]], repeats: int,
                delays: tuple[float, float]) -> list[dict]:
    """``repeats`` kills at each point, at its n-th hit (n drawn from its range), shuffled; then as
    many after a random delay (they land anywhere, resume and ``finish_search`` included).

    The parent-run kill comes first (only a fresh search creates that run); the point kills, which
    complete at most a trial or two each, come before the delay kills, which on a fast machine
    may finish the search; the two ``finish_search`` kills come last.
    """
    points_kills = [{"point": p, "nth": rng.randint(*points[p])} for p in points for _ in range(repeats)]
    rng.shuffle(points_kills)
    delay_kills = [{"point": "time", "delay": round(rng.uniform(*delays), 2)} for _ in range(repeats)]
    return [{"point": "open", "nth": 1}, *points_kills, *delay_kills, {"point": "finish_start", "nth": 1},
            {"point": "finish_end", "nth": 1}]


def run_chaos(zygote: Zygote, *, tmp_path: Path, search: dict, plans: list[dict], timeout: float = 60) -> list[dict]:
    """Run every planned round; return what happened in each (killed or not, where)."""
    outcomes = []
    for number, plan in enumerate(plans, start=1):
        started = time.monotonic()
        log = tmp_path / f"round-{number}.log"
        ended = zygote.round({**plan, "search": search, "log": str(log), "timeout": timeout})
        text = log.read_text(errors="replace")
        assert not ended["timed_out"], f"round {number} ({plan}) hung:\n{text[-3000:]}"
        assert ended["signal"] == 9 or ended["code"] == 0, f"round {number} ({plan}) crashed:\n{text[-3000:]}"
        outcomes.append({**plan, "killed": ended["signal"] == 9, "seconds": time.monotonic() - started})
    return outcomes


def fresh_stores(zygote: Zygote, tmp_path: Path) -> dict:
    """An MLflow store (a copy of the zygote's empty one: its tables take seconds to make) and an Optuna one."""
    shutil.copyfile(zygote.template, tmp_path / "mlflow.db")
    return {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "storage": f"sqlite:///{tmp_path / 'optuna.db'}"}


def check_search(result, store: dict, target: int) -> dict:
    """The invariants of a search that was killed and resumed; returns the counts for the report."""
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

    runs = runs_of(store["tracking_uri"], EXPERIMENT)
    parents = runs[runs["tags.mlflow.parentRunId"].isna()]
    assert list(parents["run_id"]) == [result.parent_run_id], parents[["run_id", "status"]]
    parent = parents.iloc[0]
    assert parent["status"] == "FINISHED"
    children = runs[runs["tags.mlflow.parentRunId"] == result.parent_run_id]
    assert len(children) == len(runs) - 1
    assert "RUNNING" not in set(children["status"]), children[["run_id", "status", "tags.trial_number"]]
    finished = children[children["status"] == "FINISHED"]
    # one FINISHED run per completed trial, linked both ways, and none for any other trial
    assert sorted(finished["run_id"]) == sorted(t.user_attrs["mlflow_run_id"] for t in completed)
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
    # one best model on the parent run, however often finish_search was cut off; none left PENDING
    models = MlflowClient(store["tracking_uri"]).search_logged_models(
        [result.experiment_id], filter_string=f"source_run_id = '{result.parent_run_id}'")
    assert [m.model_uri for m in models if m.status.name == "READY"] == [result.model_uri]
    assert {m.status.name for m in models} <= {"READY", "FAILED"}
    return {"completed": len(completed), "lost": target - len(completed), "duplicated_trials": duplicated_params,
            "duplicated_runs": duplicated_runs, "interrupted_trials": len(interrupted),
            "killed_runs": int((children["status"] == "KILLED").sum())}


def report(capsys, backend: str, outcomes: list[dict], counts: dict, seconds: float) -> None:
    kills = Counter(o["point"] for o in outcomes if o["killed"])
    rounds = " ".join(f"{o['point']}:{o['seconds']:.1f}" for o in outcomes)
    with capsys.disabled():
        print(f"\nchaos[{backend}]: {sum(kills.values())} of {len(outcomes)} rounds SIGKILLed "
              f"({', '.join(f'{p} {n}' for p, n in sorted(kills.items()))}); "
              f"{counts['completed']} trials completed, {counts['lost']} lost, {counts['duplicated_trials']} "
              f"duplicated trials, {counts['duplicated_runs']} duplicated runs; {counts['interrupted_trials']} "
              f"trials interrupted ({counts['killed_runs']} runs KILLED); {seconds:.1f} s "
              f"(rounds, s: {rounds})")


def test_local_driver_survives_repeated_sigkill(zygote, toy, tmp_path, monkeypatch, capsys):
    start = time.monotonic()
    monkeypatch.chdir(tmp_path)
    store = fresh_stores(zygote, tmp_path)
    target = 30   # more than the point kills can complete (<= 2 trials a round)
    search = dict(family="toy", space=TOY_SPACE, strategy="tpe", trials=target, budget=3, seed=3,
                  study_name="chaos", experiment=EXPERIMENT, **store)
    rng = random.Random(SEED)
    # hits per trial: 2 suggestions, 4 metric writes, 1 closing tags write, 1 FINISHED run
    plans = plan_rounds(rng, {"sample": (1, 4), "trial": (1, 8), "closing": (1, 2), "told": (1, 2)}, repeats=3,
                        delays=(0.1, 1.5))
    outcomes = run_chaos(zygote, tmp_path=tmp_path, search=search, plans=plans)
    killed = {o["point"] for o in outcomes if o["killed"]}
    assert killed >= {"open", "sample", "trial", "closing", "told", "finish_start", "finish_end"}, outcomes

    result = nasforge.search(resume=True, **search)
    counts = check_search(result, store, target)
    report(capsys, "local", outcomes, counts, time.monotonic() - start)


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray (2 CPUs) that every driver joins as a new job, as on a cluster; its address."""
    pytest.importorskip("ray")
    with local_ray() as address:
        yield address


def test_ray_driver_survives_repeated_sigkill(zygote, ray_address, toy, tmp_path, monkeypatch, capsys):
    start = time.monotonic()
    monkeypatch.chdir(tmp_path)
    store = fresh_stores(zygote, tmp_path)
    target = 10   # more than the point kills can complete (<= 2 trials a round)
    search = dict(family="toy", space=TOY_SPACE, strategy="tpe", trials=target, budget=3, seed=5, backend="ray",
                  address=ray_address, max_concurrent=2, study_name="chaos", experiment=EXPERIMENT, **store)
    rng = random.Random(SEED + 1)
    # driver-side hits per trial: 2 suggestions, 2 results (started, final), 1 outcome
    plans = plan_rounds(rng, {"sample": (1, 4), "trial": (1, 3), "told": (1, 2)}, repeats=1, delays=(1.0, 5.0))
    outcomes = run_chaos(zygote, tmp_path=tmp_path, search=search, plans=plans)
    killed = {o["point"] for o in outcomes if o["killed"]}
    assert killed >= {"open", "sample", "trial", "told", "finish_start", "finish_end"}, outcomes

    result = nasforge.search(resume=True, **search)
    counts = check_search(result, store, target)
    report(capsys, "ray", outcomes, counts, time.monotonic() - start)
