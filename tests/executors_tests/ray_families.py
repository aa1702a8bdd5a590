"""Test-only plugins for the Ray executor, registered at run time (so workers get them by value)."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import nasforge
from toy_family import ToyConfig, ToyFamily


@dataclass(kw_only=True)
class FragileConfig(ToyConfig):
    die_once: str = ""   # a file path: the first trial that finds it missing creates it and kills its worker


class _DyingReporter:
    """Passes reports on; after the first one, kills the worker process once per search."""

    def __init__(self, reporter, marker: str):
        self.reporter, self.marker = reporter, marker

    def report(self, step, metrics):
        self.reporter.report(step, metrics)
        if self.marker and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)   # no cleanup, no exception: what an OOM kill or a lost node looks like

    def log_artifact(self, path, artifact_path=None):
        self.reporter.log_artifact(path, artifact_path)

    def log_figure(self, figure, name):
        self.reporter.log_figure(figure, name)


class FragileFamily(ToyFamily):
    """The toy family, except that one trial's worker process dies mid-training."""

    name = "fragile"
    config_class = FragileConfig

    def fit(self, model, task, config, budget, reporter):
        return super().fit(model, task, config, budget, _DyingReporter(reporter, config.die_once))


class BrittleFamily(ToyFamily):
    """The toy family, except that ``mode="crash"`` raises before the first report (no scheduler sees it)."""

    name = "brittle"

    def fit(self, model, task, config, budget, reporter):
        if config.mode == "crash":
            raise RuntimeError("brittle crash on purpose")
        return super().fit(model, task, config, budget, reporter)


@dataclass(kw_only=True)
class DoomedConfig(ToyConfig):
    doom_env: str = ""   # an environment variable only one node's processes have: a trial there kills its raylet


class _RayletKiller(_DyingReporter):
    """Passes reports on; on the node whose processes have ``doom_env``, kills that node's raylet."""

    def report(self, step, metrics):
        self.reporter.report(step, metrics)
        if self.marker and os.environ.get(self.marker):
            kill_own_raylet()


def kill_own_raylet() -> None:
    """SIGKILL the raylet that started this worker (what a lost machine looks like to Ray), then wait to die."""
    parent = os.getppid()
    with open(f"/proc/{parent}/comm") as f:
        name = f.read().strip()
    if name != "raylet":
        raise RuntimeError(f"this worker's parent is {name!r}, not a raylet")
    time.sleep(0.5)   # let the trial's first results reach the driver (its MLflow run gets linked)
    os.kill(parent, signal.SIGKILL)
    time.sleep(60)    # the worker ends with its raylet
    os._exit(1)


class DoomedFamily(ToyFamily):
    """The toy family, except that a trial on the node with ``doom_env`` set kills that node's raylet."""

    name = "doomed"
    config_class = DoomedConfig

    def fit(self, model, task, config, budget, reporter):
        return super().fit(model, task, config, budget, _RayletKiller(reporter, config.doom_env))


class RayTestPlugin:
    @nasforge.hookimpl
    def register_families(self, register):
        register(FragileFamily())
        register(BrittleFamily())
        register(DoomedFamily())
