"""Reopen a past search: ``nasforge.load(...)`` gives the same SearchResult a finished search returned.

A search is found in an MLflow store by its parent run id, by its study name, or as the latest
search of an experiment (or of the whole store); its trials come from the Optuna study the parent
run names. Nothing is run and nothing is written: the spec is rebuilt from what the parent run
recorded (parameters, tags, ``search_space.yaml``, ``preprocessing.json``), the models are the ones
it logged, and ``best_model()`` / ``predict()`` rebuild the network from the family's code and the
best trial's saved weights. The family's plugin must be installed; the data need not be.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any

from nasforge.data.prepare import UserData
from nasforge.data.tasks import task_from_description
from nasforge.errors import UnknownSearchError
from nasforge.size_limit import CAPS
from nasforge.spec.arguments import SearchSpec
from nasforge.spec.space import Objective, SearchSpace
from nasforge.stores.mlflow_runs import absolute_tracking_uri, default_tracking_uri, quiet_mlflow

SEARCH_ROLE = "search"      # the parent run's tag nasforge_role


def load(study_name: str | None = None, *, run_id: str | None = None, experiment: str | None = None,
         tracking_uri: str | None = None, storage: str | None = None):
    """A past search as a :class:`~nasforge.results.result.SearchResult`, running and writing nothing.

    Args:
        study_name: the search's study (``result.study.study_name``, printed by ``nasforge search``).
        run_id: or its parent run id (``result.parent_run_id``).
        experiment: or the latest search of this experiment (default: of the whole store).
        tracking_uri: the MLflow store; default ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``.
        storage: the Optuna storage, when it moved since the search (default: the one it used).

    An interrupted or still-running search loads too: what finished is there.

    Example:
        >>> result = nasforge.load(experiment="mlp-wine")               # doctest: +SKIP
        >>> result.leaderboard().head(), result.predict(new_rows)      # doctest: +SKIP
    """
    import optuna
    from mlflow import MlflowClient

    from nasforge.results.result import SearchResult

    quiet_mlflow()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    uri = absolute_tracking_uri(tracking_uri or default_tracking_uri())
    client = MlflowClient(uri)
    run = find_search_run(client, uri, run_id=run_id, study_name=study_name, experiment=experiment)
    name = run.data.tags.get("study")
    url = storage or run.data.params.get("storage")
    try:
        study = optuna.load_study(study_name=name, storage=url)
    except KeyError:
        raise UnknownSearchError(f"search run {run.info.run_id!r} names study {name!r}, which is not in the Optuna "
                                 f"storage {url}; pass storage= where it is now") from None
    except Exception as exc:
        raise UnknownSearchError(f"cannot open the Optuna storage {url} of search run {run.info.run_id!r}: "
                                 f"{type(exc).__name__}: {exc}; pass storage= where it is now") from None
    spec = spec_from_run(client, run, study, tracking_uri=uri)
    metrics = run.data.metrics
    models = logged_models(client, run)
    return SearchResult(spec=spec, study=study, parent_run_id=run.info.run_id, experiment_id=run.info.experiment_id,
                        test_metrics={k: v for k, v in metrics.items() if k.startswith("test_")},
                        model_uri=models.get("model") or models.get("network"), network_uri=models.get("network"))


def find_search_run(client, tracking_uri: str, *, run_id: str | None = None, study_name: str | None = None,
                    experiment: str | None = None, finished_only: bool = False):
    """The parent run of a nasforge search: by id, by study name, or the latest (of ``experiment``)."""
    from mlflow.exceptions import MlflowException

    if run_id not in (None, "latest"):
        try:
            run = client.get_run(run_id)
        except MlflowException:
            raise UnknownSearchError(f"no MLflow run {run_id!r} in {tracking_uri}; {_latest(client)}") from None
        tags = run.data.tags
        if tags.get("nasforge_role") != SEARCH_ROLE:
            parent = tags.get("mlflow.parentRunId")
            hint = f"; it is a trial of search {parent!r}: pass that run id" if parent else ""
            raise UnknownSearchError(f"run {run_id!r} is not a nasforge search run{hint}")
        if experiment is not None and client.get_experiment(run.info.experiment_id).name != experiment:
            found = client.get_experiment(run.info.experiment_id).name
            raise UnknownSearchError(f"run {run_id!r} belongs to experiment {found!r}, not {experiment!r}")
        return run
    if experiment is not None:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            known = sorted(e.name for e in client.search_experiments())
            raise UnknownSearchError(f"no experiment {experiment!r} in {tracking_uri}; known: "
                                     f"{', '.join(known) or '(none)'}")
        experiment_ids = [found.experiment_id]
    else:
        experiment_ids = [e.experiment_id for e in client.search_experiments()]
    where = f"tags.nasforge_role = '{SEARCH_ROLE}'"
    if study_name is not None:
        where += f" and tags.study = '{study_name}'"
    if finished_only:
        where += " and attributes.status = 'FINISHED'"
    runs = client.search_runs(experiment_ids, max_results=1, order_by=["attributes.start_time DESC"],
                              filter_string=where)
    if runs:
        return runs[0]
    what = "finished nasforge search" if finished_only else "nasforge search"
    named = f" of study {study_name!r}" if study_name else ""
    place = f"experiment {experiment!r}" if experiment else tracking_uri
    raise UnknownSearchError(f"no {what}{named} in {place}; {_latest(client)}")


def list_searches(client, *, experiment: str | None = None, limit: int = 1000) -> list:
    """The parent runs of the nasforge searches in a store, newest first."""
    ids = [e.experiment_id for e in client.search_experiments()]
    if experiment is not None:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise UnknownSearchError(f"no experiment {experiment!r}; known: "
                                     f"{', '.join(sorted(e.name for e in client.search_experiments()))}")
        ids = [found.experiment_id]
    if not ids:
        return []
    return client.search_runs(ids, max_results=limit, order_by=["attributes.start_time DESC"],
                              filter_string=f"tags.nasforge_role = '{SEARCH_ROLE}'")


def _latest(client) -> str:
    """A hint: the studies of the latest searches in the store (or that it holds none)."""
    try:
        runs = list_searches(client, limit=5)
    except Exception:  # noqa: BLE001 - not an MLflow store nasforge can read
        runs = []
    if not runs:
        return "this store holds no nasforge search (is it the right --tracking-uri?)"
    return "its latest searches: " + ", ".join(f"{r.data.tags.get('study')} (run {r.info.run_id})" for r in runs)


def spec_from_run(client, run, study, *, tracking_uri: str) -> SearchSpec:
    """The spec a search ran with, as its parent run recorded it (not checked again: nothing runs)."""
    params, tags = run.data.params, run.data.tags
    with tempfile.TemporaryDirectory() as tmp:
        import yaml

        text = open(client.download_artifacts(run.info.run_id, "search_space.yaml", tmp), encoding="utf-8").read()
        space = SearchSpace.from_dict(yaml.safe_load(text), source=f"search_space.yaml of run {run.info.run_id}")
        data = _data_from_run(client, run, tmp) if "data_digest" in tags else None
    objectives = tuple(Objective(*item.rsplit(":", 1)) for item in params["objective"].split(","))
    budget = {k[len("budget."):]: int(v) for k, v in params.items() if k.startswith("budget.")}
    strategies = tuple(tags.get("strategies", tags["strategy"]).split(","))
    experiment = client.get_experiment(run.info.experiment_id).name
    timeout = params.get("timeout")
    return SearchSpec(
        family=tags["family"], task=tags["task"], space=space, strategy=tags["strategy"], strategies=strategies,
        pruner=params.get("pruner", "none"), objectives=objectives, budget=budget,
        budget_unit=_budget_unit(tags["family"], budget), trials=int(params["trials"]), seed=int(params["seed"]),
        timeout=None if timeout in (None, "None") else float(timeout), n_jobs=int(params.get("n_jobs", 1)),
        backend=tags.get("backend", "local"), tracking_uri=tracking_uri, experiment=experiment,
        storage=params["storage"], study_name=study.study_name, save_models=params.get("save_models") != "False",
        tags={}, data=data, **{cap: int(params[cap]) for cap in CAPS if cap in params})


def _budget_unit(family: str, budget: dict[str, int]) -> str:
    from nasforge.plugins import get_registry

    registry = get_registry()
    if family in registry.names("family"):
        return registry.get("family", family).budget_unit
    return next(iter(budget), "epochs")


def _data_from_run(client, run, tmp: str) -> UserData:
    """The user's data as the search described it: its preprocessing and the task's shape, no rows."""
    path = client.download_artifacts(run.info.run_id, "preprocessing.json", tmp)
    with open(path, encoding="utf-8") as f:
        preprocessing: dict[str, Any] = json.load(f)
    tags = run.data.tags
    task = task_from_description(preprocessing["task"], seed=int(run.data.params.get("seed", 0)))
    return UserData(name=tags["task"], kind=tags["data_kind"], layout=tags.get("data_layout", ""),
                    digest=tags["data_digest"], task=task, origin=tags.get("data_origin", ""),
                    source=tags.get("data_source"), target=tags.get("data_target"),
                    columns=preprocessing.get("input_columns"), preprocessing=preprocessing,
                    rows=dict(preprocessing.get("splits", {})))


def logged_models(client, run) -> dict[str, str]:
    """``{"model": uri, "network": uri}``: the newest READY model of each name the parent run logged."""
    from mlflow.entities import LoggedModelStatus

    found: dict[str, Any] = {}
    for logged in client.search_logged_models([run.info.experiment_id],
                                              filter_string=f"source_run_id = '{run.info.run_id}'"):
        if logged.status == LoggedModelStatus.READY and (
                logged.name not in found or logged.creation_timestamp > found[logged.name].creation_timestamp):
            found[logged.name] = logged
    return {name: logged.model_uri for name, logged in found.items()}
