"""The supernet phase as one Ray task: on one worker of the cluster, with a GPU when ``gpus_per_trial`` asks.

The task gets the phase's job, the driver's run-time plugins (:mod:`nasforge.executors.ray_plugins`)
and the user's data (through Ray's object store), runs
:func:`nasforge.strategies.oneshot.phases.run_phase` and returns its picks to the driver. It logs and
checkpoints to the phase's MLflow run itself; a worker that dies is retried up to ``max_failures``
times, each retry continuing from the last checkpoint. The trials that follow run through the Ray
executor as usual (:mod:`nasforge.executors.ray`), many at once.
"""

from __future__ import annotations

import logging
from typing import Any


def run_on_ray(job, spec, *, on_epoch=None) -> dict[str, Any]:
    """Run ``job`` as one Ray task with the resources of one trial of ``spec``; Ctrl-C cancels it.

    ``on_epoch(epochs done, epochs, {})`` follows the task from here, by the epochs its MLflow run holds.
    """
    import os

    import ray

    from nasforge.executors.ray_plugins import pack_plugins
    from nasforge.plugins import get_registry

    connected_here = not ray.is_initialized()
    if connected_here:   # the executor connects again for the trials (see executors/ray.py)
        ray.init(address=spec.address or None, include_dashboard=False, logging_level=logging.WARNING,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS",
                                                                             str(max(int(spec.cpus_per_trial), 1)))}})
    try:
        task = ray.remote(num_cpus=spec.cpus_per_trial, num_gpus=spec.gpus_per_trial or 0,
                          max_retries=spec.max_failures)(phase_task)
        data = ray.put(spec.data.task) if spec.data is not None else None
        ref = task.remote(job, pack_plugins(get_registry()), data)
        try:
            return _wait(ref, job, on_epoch)
        except KeyboardInterrupt:
            ray.cancel(ref, force=True)
            raise
    finally:
        if connected_here:
            ray.shutdown()


def _wait(ref, job, on_epoch, every: float = 5.0) -> dict[str, Any]:
    """``ray.get(ref)``; meanwhile, every ``every`` seconds, the epochs the phase has logged (its
    ``curve/shared_lr`` has one point per epoch) go to ``on_epoch``."""
    import ray

    if on_epoch is None:
        return ray.get(ref)
    from nasforge.stores.mlflow_runs import Tracker, curve_key

    client = Tracker(tracking_uri=job.tracking_uri, experiment_id=job.experiment_id).client
    total = job.options.supernet_epochs
    while True:
        done, _ = ray.wait([ref], timeout=every)
        try:
            epochs = len(client.get_metric_history(job.run_id, curve_key("shared_lr")))
        except Exception:   # a busy store: the bar waits for the next look
            epochs = None
        if epochs is not None:
            on_epoch(min(epochs, total), total, {})
        if done:
            return ray.get(ref)


def phase_task(job, plugins: bytes | None, data) -> dict[str, Any]:
    """The worker's side: install the driver's plugins and data, run the phase."""
    from nasforge.data.tasks import register_data_task
    from nasforge.executors.ray_plugins import install_plugins
    from nasforge.stores.mlflow_runs import quiet_mlflow
    from nasforge.strategies.oneshot.phases import run_phase

    quiet_mlflow()
    install_plugins(plugins)
    if data is not None:
        register_data_task(data, job.data_digest)
    result = run_phase(job)
    import os
    import socket

    import ray

    result["worker_tags"] = {"worker_node": ray.get_runtime_context().get_node_id(),
                             "worker": f"{socket.gethostname()}:{os.getpid()}",
                             "worker_gpus": ",".join(map(str, ray.get_gpu_ids())) or "none",
                             "device": str(training_device())}
    return result


def training_device():
    from nasforge.training import pick_device

    return pick_device()
