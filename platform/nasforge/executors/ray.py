"""The Ray executor: each trial is a Ray Tune trial, on this machine or on a Ray cluster.

The driver (this process) keeps the Optuna study, the sampler and the MLflow parent run;
:class:`~nasforge.executors.ray_searcher.StudySearcher` asks the study for each trial's
configuration and tells it each outcome. Workers run the same ``run_trial`` as the local
executor (:mod:`nasforge.executors.ray_trainable`) and log their nested MLflow run
themselves, to the absolute tracking URI, experiment id and parent run id of the
``TrialContext``. Early stopping is a Ray Tune scheduler (:mod:`~nasforge.executors.ray_schedulers`).

Strategies side by side need nothing more: the study's sampler deals each trial to a strategy
when the searcher asks, says it is exhausted once every strategy has its share started, and the
trial's config carries the strategy for its MLflow tag.

Resume goes through the study (``resume=True``), as locally; Ray's own experiment folder is
temporary. Ray Client (``ray://``) is not supported: it would move the Tune driver, and with
it the study and the progress reporting, onto the cluster. Run the search on a cluster node
with ``address="auto"`` instead (see docs/ray.md).

:func:`ray_session` wraps the whole search (the runner enters it before any store is written):
it joins Ray (:mod:`~nasforge.executors.ray_connect`) and checks the nodes
(:mod:`~nasforge.executors.ray_preflight`), so a cluster that cannot run the search stops it
before a study or an MLflow run exists.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Iterator

from nasforge.environment import environment
from nasforge.errors import NasforgeError
from nasforge.executors.ray_connect import Connection
from nasforge.executors.ray_preflight import Node
from nasforge.outcome import TrialOutcome
from nasforge.spec.arguments import SearchSpec
from nasforge.trial import TrialContext

log = logging.getLogger("nasforge.ray")

# Set in the driver while Tune runs (Tune reads them there), restored afterwards:
DRIVER_ENV = {
    # A result need not carry the objective: "started" and "failed" results have none.
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    # No CSV/JSON/TensorBoard files per trial: MLflow has everything.
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    # Ctrl-C raises KeyboardInterrupt here (as locally) instead of Tune's graceful stop.
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
    # verbose=0 keeps the classic reporter quiet (the newer one prints a table regardless).
    "RAY_AIR_NEW_OUTPUT": "0",
}
QUIET_LOGGERS = ("ray.tune", "ray.train", "ray.air")


@dataclass(frozen=True, kw_only=True)
class Session:
    """The Ray a search runs on, checked: the connection, the nodes, the run-time plugins' payload."""

    connection: Connection
    nodes: list[Node]
    plugins: bytes | None


_SESSION: Session | None = None   # set while a search runs inside ray_session


@contextlib.contextmanager
def ray_session(spec: SearchSpec) -> Iterator[Session]:
    """Join Ray for ``spec`` and check its nodes; shut Ray down at the end if this search connected."""
    global _SESSION
    if _SESSION is not None:   # run_ray inside the runner's session
        yield _SESSION
        return
    try:
        import ray
        from ray import tune  # noqa: F401  (Tune's extra dependencies: pandas, pyarrow, ...)
    except ImportError as exc:
        from nasforge.executors.ray_options import INSTALL_HINT

        raise NasforgeError(f"backend='ray' needs Ray Tune ({exc}): {INSTALL_HINT}") from exc
    from nasforge.executors.ray_connect import connect
    from nasforge.executors.ray_plugins import pack_plugins
    from nasforge.executors.ray_preflight import run_preflight
    from nasforge.plugins import get_registry

    connection = connect(address=spec.address, runtime_env=spec.runtime_env)
    try:
        registry = get_registry()
        plugins = pack_plugins(registry)
        nodes = run_preflight(spec, registry=registry, plugins=plugins, probe=not connection.local)
        _SESSION = Session(connection=connection, nodes=nodes, plugins=plugins)
        yield _SESSION
    finally:
        _SESSION = None
        if connection.owned and ray.is_initialized():
            ray.shutdown()


def run_ray(spec: SearchSpec, *, study, context: TrialContext, n_trials: int, tracker,
            on_outcome: Callable[[TrialOutcome], None]) -> None:
    """Run ``n_trials`` more trials of ``study`` as Ray Tune trials; see the module docstring."""
    if n_trials <= 0:
        return
    # Tune's own experiment folder: nothing in it is needed afterwards (the study and MLflow hold
    # the search). One path per study, so what a killed driver left is removed when it resumes.
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "")
    storage = os.path.join(tempfile.gettempdir(), f"nasforge-ray-{user}", study.study_name)
    shutil.rmtree(storage, ignore_errors=True)
    os.makedirs(storage)
    try:
        with ray_session(spec) as session:
            if spec.resume:
                tracker.close_running_children(context.parent_run_id, "interrupted (process killed)")
            _run(spec, study=study, context=context, n_trials=n_trials, tracker=tracker, on_outcome=on_outcome,
                 storage=storage, session=session)
    finally:
        shutil.rmtree(storage, ignore_errors=True)


def _run(spec, *, study, context, n_trials, tracker, on_outcome, storage: str, session: Session) -> None:
    from ray import tune

    from nasforge.executors.ray_schedulers import make_scheduler
    from nasforge.executors.ray_searcher import StudySearcher, TrialWatcher
    from nasforge.executors.ray_trainable import TrialSettings, train

    concurrency = min(max_concurrent(spec, session.nodes), n_trials)
    if spec.scheduler == "pbt":
        # The population is every trial: all of them are created, and PBT takes turns on the CPUs
        # (it pauses a trial at each perturbation while others wait). A limit here would run the
        # population as separate groups of `concurrency` trials that never see each other.
        concurrency = n_trials
    warn_if_store_is_local(context.tracking_uri, session.nodes)
    deadline = time.monotonic() + spec.timeout if spec.timeout else None
    searcher = StudySearcher(study=study, spec=spec, tracker=tracker, on_outcome=on_outcome, deadline=deadline)
    settings = TrialSettings(scheduler=spec.scheduler, unit=spec.budget_unit, max_step=spec.budget[spec.budget_unit])
    # The user's data (data=...) goes into Ray's object store once; each worker fetches it once.
    data = spec.data.task if spec.data is not None else None
    trainable = tune.with_parameters(train, context=context, settings=settings, plugins=session.plugins, data=data)
    resources = {"cpu": spec.cpus_per_trial}
    if spec.gpus_per_trial:
        resources["gpu"] = spec.gpus_per_trial
    with driver_env():
        tuner = tune.Tuner(
            tune.with_resources(trainable, resources),
            tune_config=tune.TuneConfig(
                search_alg=searcher, scheduler=make_scheduler(spec), num_samples=n_trials,
                max_concurrent_trials=concurrency, reuse_actors=True,
                trial_name_creator=trial_name, trial_dirname_creator=trial_name),
            run_config=tune.RunConfig(
                name=study.study_name, storage_path=storage, verbose=0, callbacks=[TrialWatcher(searcher)],
                failure_config=tune.FailureConfig(max_failures=spec.max_failures)),
        )
        try:
            tuner.fit()
        except KeyboardInterrupt:
            try:
                _settle_interrupted(study, tracker, context, searcher, session.connection.owned)
            except Exception as exc:  # best effort: resume=True settles what is left, and says so below
                print(f"could not settle the trials in flight ({type(exc).__name__}: {exc}); resume=True will",
                      file=sys.stderr)
            raise
    searcher.fail_pending("the Ray experiment ended before the trial reported an outcome")
    tracker.close_running_children(context.parent_run_id, "interrupted (its Ray worker died)")


def trial_name(trial) -> str:
    from nasforge.executors.ray_trainable import NUMBER

    return f"trial_{trial.config.get(NUMBER, trial.trial_id)}"


# -- the cluster -----------------------------------------------------------------------------
def max_concurrent(spec: SearchSpec, nodes: list[Node]) -> int:
    """``spec.max_concurrent``, or as many trials as the nodes' CPUs and GPUs fit now (each node on its own)."""
    fit = 0
    for node in nodes:
        slots = node.resources.get("CPU", 0.0) / spec.cpus_per_trial
        if spec.gpus_per_trial:
            slots = min(slots, node.resources.get("GPU", 0.0) / spec.gpus_per_trial)
        fit += int(slots + 1e-9)
    return spec.max_concurrent or max(fit, 1)   # (the pre-flight made sure one trial fits)


def warn_if_store_is_local(tracking_uri: str, nodes: list[Node]) -> None:
    """A sqlite/file store on a cluster of several machines: each machine would write its own copy."""
    hosts = {n.ip for n in nodes}
    if len(hosts) > 1 and tracking_uri.startswith(("sqlite:", "file:")):
        warnings.warn(f"the MLflow store {tracking_uri} is a local file, but the Ray cluster spans {len(hosts)} "
                      "machines: trials on other machines log to their own copy of it unless the path is on a "
                      "shared filesystem; use an MLflow tracking server (docs/ray.md)", stacklevel=3)


@contextlib.contextmanager
def driver_env() -> Iterator[None]:
    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with environment(DRIVER_ENV):
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


# -- leftovers -------------------------------------------------------------------------------
def _settle_interrupted(study, tracker, context: TrialContext, searcher, owned: bool) -> None:
    """Ctrl-C: stop the trials' workers, then settle the trials in flight as a resume would."""
    import ray

    from nasforge.interrupts import release_storage_session
    from nasforge.stores.study import recover_interrupted

    if owned:
        ray.shutdown()   # our own Ray (or connection): the trial actors end with it
    else:
        # Tune does not clean up on KeyboardInterrupt; end the trial actors so no run changes later.
        actors = [a for a in (getattr(getattr(t, "temporary_state", None), "ray_actor", None)
                              for t in searcher.tune_trials.values()) if a is not None]
        for actor in actors:
            ray.kill(actor, no_restart=True)
        for actor in actors:
            with contextlib.suppress(Exception):
                ray.get(actor.__ray_ready__.remote(), timeout=10)   # raises once the actor is gone
    release_storage_session(study)
    recover_interrupted(study, tracker)
    tracker.close_running_children(context.parent_run_id, "interrupted (KeyboardInterrupt)")
