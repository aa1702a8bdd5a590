"""The Python API: ``nasforge.search(...)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from nasforge.results.result import SearchResult
from nasforge.runner import run_search
from nasforge.spec.arguments import build_spec
from nasforge.spec.space import SearchSpace


def search(
    family: str,
    *,
    task: str | None = None,
    data: Any = None,
    target: str | None = None,
    kind: str | None = None,
    data_options: Mapping[str, Any] | None = None,
    space: str | Path | Mapping[str, Any] | SearchSpace | None = None,
    strategy: str | Sequence[str] | None = None,
    pruner: str | None = None,
    objective: Any = None,
    budget: Mapping[str, int] | int | None = None,
    trials: int | None = None,
    seed: int = 0,
    timeout: float | None = None,
    n_jobs: int = 1,
    backend: str = "local",
    tracking_uri: str | None = None,
    experiment: str | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    resume: bool = False,
    run_dir: str | Path = "nasforge_runs",
    save_models: bool = True,
    plots: bool = True,
    strategy_options: Mapping[str, Any] | None = None,
    pruner_options: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    address: str | None = None,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    max_concurrent: int | None = None,
    scheduler: str = "none",
    scheduler_options: Mapping[str, Any] | None = None,
    max_failures: int = 2,
    runtime_env: Mapping[str, Any] | None = None,
    max_params: int | None = None,
    max_flops: int | None = None,
    progress: bool = False,
) -> SearchResult:
    """Search ``family``'s space on ``task`` and return the best trial(s) and model.

    Args:
        family: a registered family name (``nasforge plugins`` lists them).
        task: a registered task name (``digits``, ``breast_cancer``, ``diabetes``, ...).
        data: your own data instead of a task: ``(X, y)`` arrays, a pandas DataFrame
            with ``target``, a path to a ``.csv`` / ``.parquet`` / ``.npz`` file (with ``target``), a
            pair of ``.npy`` paths, a folder of class subfolders of images (``cnn``), a map-style
            torch ``Dataset`` of ``(x, y)`` items, or ``{"train": ..., "val": ..., "test": ...}`` of
            any of these (val/test split off train when absent). See docs/data.md.
        target: the column to predict, for a table.
        kind: ``"classification"`` or ``"regression"``; default: inferred from the target
            (integers, strings, booleans -> classification; floats -> regression).
        data_options: ``val``, ``test`` (fractions split off), ``stream`` (``"auto"``, True, False),
            ``memory_limit_mb``, ``num_workers``, ``name``, ``image_size``, ``cache_dir``.
        space: a shipped space name, a YAML path, a dict or a :class:`SearchSpace`;
            defaults to the family's own space.
        strategy: ``random``, ``tpe`` (default; with ``resume=True``, the study's), ``cmaes``, ``gp``, ``grid``, ``bruteforce``, ``qmc``,
            ``nsga2``, ``evolution``, ``controller`` or a plugin's strategy; a list of them
            (``["controller", "tpe", "random"]``) runs them side by side on the same workers,
            sharing ``trials`` (the first ones get the remainder), each trial tagged with its
            strategy; ``result.strategy_summary()`` compares them. ``strategy_options`` then maps
            each strategy to its options (``{"tpe": {"n_startup_trials": 5}}``).
        pruner: ``none`` (default), ``median``, ``percentile``, ``sha``, ``hyperband``.
        objective: a metric name, ``{"metric": ..., "direction": ...}`` or a list of them
            (several objectives make a multi-objective search). Defaults to the family's.
        budget: the maximum fidelity per trial (``{"epochs": 20}`` or just ``20``).
        max_params, max_flops: the most parameters / forward FLOPs (on one example) a network may
            have: a trial's network beyond a cap is recorded as pruned, untrained (it counts toward
            ``trials``); ``enas`` and ``rsws`` keep the caps in their supernet phase too
            (docs/weight_sharing.md). Refused when no architecture of the space fits, and by ``darts``.
        trials: how many finished trials to reach (resumed searches count earlier ones); default 20,
            and with ``resume=True`` the study's own target.
        seed: seeds the sampler, the task splits and every trial's model.
        n_jobs: trials run at once by the local executor (threads).
        backend: ``"local"`` (this process) or ``"ray"`` (Ray Tune on this machine or a cluster;
            the options below apply to it only, see docs/ray.md).
        address: Ray cluster to join (``"auto"`` or ``"host:port"``); default: the Ray this
            process already runs, else ``$RAY_ADDRESS``, else a new local one (never a cluster
            ``ray start`` left running here: pass ``"auto"`` for that).
        cpus_per_trial, gpus_per_trial: resources of one trial (``gpus_per_trial=0.25`` packs
            four trials on one GPU).
        max_concurrent: trials at once; default: as many as the cluster's resources fit.
        scheduler: early stopping on Ray: ``none``, ``asha``, ``hyperband`` (asynchronous),
            ``median``; ``scheduler_options`` tunes it (e.g. ``{"reduction_factor": 2}``).
        max_failures: retries of a trial whose worker process died.
        runtime_env: Ray's runtime_env for the search (every trial and the pre-flight), e.g.
            ``{"py_modules": [...]}`` to carry a plugin to nodes that lack it (docs/ray.md).
        tracking_uri: MLflow store; default ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``.
        experiment: MLflow experiment name; default ``"<family>-<task>"``.
        storage: Optuna storage URL; default ``sqlite:///<run_dir>/optuna.db``.
        study_name: default ``"<family>-<task>-<timestamp>"``; with ``resume=True`` and no
            name, the latest study of this family and task is continued.
        resume: continue an interrupted study to ``trials`` without repeating finished ones; left out,
            ``trials`` and ``strategy`` are the study's own.
        save_models: save each trial's weights (needed for ``best_model()``).
        plots: log the summary plots (history, importances, ...) on the parent run at the end.
        progress: show a progress bar.

    Example:
        >>> import nasforge
        >>> result = nasforge.search("mlp", task="digits", trials=20, seed=0)  # doctest: +SKIP
        >>> result.best_params, result.best_value, result.best_model()        # doctest: +SKIP
        >>> nasforge.search("mlp", data="wine.csv", target="label", trials=20)  # doctest: +SKIP
    """
    spec = build_spec(
        family, task=task, data=data, target=target, kind=kind, data_options=data_options, space=space,
        strategy=strategy, pruner=pruner, objective=objective, budget=budget, trials=trials, seed=seed,
        timeout=timeout, n_jobs=n_jobs, backend=backend,
        tracking_uri=tracking_uri, experiment=experiment, storage=storage, study_name=study_name,
        resume=resume, run_dir=run_dir, save_models=save_models, plots=plots, strategy_options=strategy_options,
        pruner_options=pruner_options, tags=tags, address=address, cpus_per_trial=cpus_per_trial,
        gpus_per_trial=gpus_per_trial, max_concurrent=max_concurrent, scheduler=scheduler,
        scheduler_options=scheduler_options, max_failures=max_failures, runtime_env=runtime_env,
        max_params=max_params, max_flops=max_flops,
    )
    return run_search(spec, progress=progress)
