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

import pytest

import nasforge
from conftest import local_ray, stores_in
from kill_and_resume import check_resumed_search
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
    return stores_in(tmp_path)


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
    counts = check_resumed_search(result, store, target, experiment=EXPERIMENT)
    report(capsys, "local", outcomes, counts, time.monotonic() - start)


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray (2 CPUs) that every driver joins as a new job, as on a cluster; its address."""
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
    counts = check_resumed_search(result, store, target, experiment=EXPERIMENT)
    report(capsys, "ray", outcomes, counts, time.monotonic() - start)
