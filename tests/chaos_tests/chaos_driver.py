"""A search driver that is killed with SIGKILL, again and again (run as a subprocess).

Starting Python with torch, MLflow, Optuna (and Ray) costs seconds, so this process is a
*zygote*: it imports everything once, then forks one fresh driver process per round. Each
driver runs ``nasforge.search(..., resume=True)`` on the same study and stores, and dies by
SIGKILL, either from the test (a random delay) or from itself at a chosen point of the code
(``KillPoint``): the real functions run, and right before or after the n-th call of one of
them the process kills itself -- nothing is mocked, the stores are real sqlite files.

Protocol (one JSON object per line): once ready, this process says ``{"ready": true}``; for
each round the test writes ``{"search": {nasforge.search kwargs}, "point": ..., "nth": ...,
"log": path, "timeout": s}`` (or ``"point": "time", "delay": s``: this process SIGKILLs the
driver after that delay) on stdin; this process answers ``{"pid": N}`` when the driver is
forked, then ``{"pid": N, "signal": S, "code": C, "timed_out": bool}`` when it has ended.
An empty line ends the zygote.
"""

from __future__ import annotations

import json
import os
import signal
import sys

KILL_POINTS = ("open", "sample", "trial", "closing", "told", "finish_start", "finish_end")


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class KillPoint:
    """SIGKILL this process at the ``nth`` hit of ``point``."""

    def __init__(self, point: str, nth: int):
        assert point in KILL_POINTS or point == "time", point
        self.point, self.nth, self.hits = point, nth, 0

    def hit(self, point: str) -> None:
        if point == self.point:
            self.hits += 1
            if self.hits == self.nth:
                print(f"chaos: SIGKILL at {point} #{self.nth}", flush=True)
                _die()


def _after(owner, name: str, kill: KillPoint, point: str, when=lambda *a, **k: True) -> None:
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        value = original(*args, **kwargs)
        if when(*args, **kwargs):
            kill.hit(point)
        return value

    setattr(owner, name, wrapper)


def _before(owner, name: str, kill: KillPoint, point: str) -> None:
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        kill.hit(point)
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def arm(kill: KillPoint, backend: str) -> None:
    """Put the kill point into the driver's own code path (driver-side functions only)."""
    from nasforge.results import finish
    from nasforge.spec.space import OptunaSuggester
    from nasforge.stores.mlflow_runs import Tracker

    # the parent run exists, the study does not know it yet
    _after(Tracker, "start_run", kill, "open", when=lambda self, **kw: not kw.get("parent_run_id"))
    # a trial was asked from the study and has some, not all, of its parameters
    _after(OptunaSuggester, "suggest", kill, "sample")
    # best model logging in finish_search: before it starts, and once the model is logged
    _before(finish, "log_model", kill, "finish_start")
    _after(finish, "log_model", kill, "finish_end")
    if backend == "local":
        # a trial's metrics were just written (the trial is in the middle of its epochs)
        _after(Tracker, "log", kill, "trial", when=lambda self, run_id, **kw: kw.get("step", 0) >= 1)
        # the trial's run has its closing tags (nasforge_status=complete) but is still RUNNING
        _after(Tracker, "log", kill, "closing",
               when=lambda self, run_id, **kw: dict(kw.get("tags", {})).get("nasforge_status") == "complete")
        # the trial's MLflow run ended FINISHED; Optuna has not been told yet
        _after(Tracker, "end_run", kill, "told",
               when=lambda self, run_id, status="FINISHED", **kw: dict(kw.get("tags", {})).get("nasforge_status")
               == "complete")
    else:
        from nasforge.executors.ray_searcher import StudySearcher

        # the trial runs in a Ray worker; the driver has just handled one of its results
        _after(StudySearcher, "on_trial_result", kill, "trial")
        # the worker ended the run FINISHED and sent the outcome; Optuna has not been told yet
        _before(StudySearcher, "_finish", kill, "told")


def drive(plan: dict) -> None:
    """One driver process: resume the search until it is killed (or done)."""
    log = os.open(plan["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(log, 1)
    os.dup2(log, 2)
    import nasforge

    arm(KillPoint(plan["point"], plan.get("nth", 0)), plan["search"].get("backend", "local"))
    result = nasforge.search(resume=True, **plan["search"])
    print(f"chaos: finished, {len(result.completed_trials)} completed", flush=True)


def _warm_up(work: str) -> None:
    """Import what a search imports (the Ray executor's modules too), by running a tiny one.

    Also leaves ``work/template.db``: an MLflow store with its tables made (MLflow takes
    seconds to create them); a test copies it instead of making its own.
    """
    import contextlib
    import io
    import shutil

    import nasforge
    from mlflow import MlflowClient

    with contextlib.suppress(ImportError):
        import ray.tune  # noqa: F401
        import ray.tune.search  # noqa: F401

        import nasforge.executors.ray  # noqa: F401
        import nasforge.executors.ray_searcher  # noqa: F401
        import nasforge.executors.ray_trainable  # noqa: F401
    template, warm = os.path.join(work, "template.db"), os.path.join(work, "warm-up.db")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        MlflowClient(f"sqlite:///{warm}").search_experiments()
        shutil.copyfile(warm, template)   # closed: the template is never opened by this process
        from toy_family import TOY_SPACE

        nasforge.search("toy", space=TOY_SPACE, trials=1, budget=1, tracking_uri=f"sqlite:///{warm}",
                        storage=f"sqlite:///{work}/warm-up-optuna.db", study_name="warm-up", experiment="warm-up")


def main() -> None:
    config = json.loads(sys.argv[1])
    sys.path.insert(0, config["tests_dir"])
    import nasforge
    from toy_family import ToyPlugin

    nasforge.register(ToyPlugin(), name="toy-plugin")
    _warm_up(config["work_dir"])
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            break
        plan = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the driver
            code = 0
            try:
                drive(plan)
            except BaseException:  # noqa: BLE001 - reported through the exit code and the log
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(json.dumps({"pid": pid}), flush=True)
        status, timed_out = _wait(pid, plan.get("delay"), plan["timeout"])
        print(json.dumps({"pid": pid, "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0,
                          "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                          "timed_out": timed_out}), flush=True)


def _wait(pid: int, delay: float | None, limit: float) -> tuple[int, bool]:
    """Wait for the driver; SIGKILL it after ``delay`` seconds (a "time" kill) or ``limit`` (a hang)."""
    import time

    start = time.monotonic()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status, False
        elapsed = time.monotonic() - start
        if (delay is not None and elapsed >= delay) or elapsed >= limit:
            os.kill(pid, signal.SIGKILL)   # our own child, not yet reaped: the pid is still its
            return os.waitpid(pid, 0)[1], delay is None or elapsed >= limit
        time.sleep(0.005)


if __name__ == "__main__":
    main()
