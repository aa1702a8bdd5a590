"""The end of a search: the best model's test metrics and MLflow model, the summary, plots, FINISHED."""

from __future__ import annotations

import importlib
import json
import os
import sys
import types
from typing import Any

from nasforge.data.tasks import load_task
from nasforge.plugins import RUN_TIME, get_registry
from nasforge.results.by_strategy import log_strategies
from nasforge.results.models import MODEL_TRIAL_TAG, log_model, logged_model
from nasforge.results.result import SearchResult
from nasforge.results.serving import SERVING_REQUIREMENTS, log_predictor
from nasforge.stores.mlflow_runs import Tracker


def log_served_model(result: SearchResult, tracker: Tracker, family, task) -> str | None:
    """The predictor (preprocessing, network, label decoding) as the pyfunc model ``model``, for a
    family whose network predicts the target; None otherwise. Reused when a killed search logged it."""
    if not getattr(family, "predicts_target", False) or task.kind not in ("classification", "regression"):
        return None
    best = result.best_trial
    logged = logged_model(tracker, result.parent_run_id, best.number, name="model")
    if logged is not None:
        return logged
    spec = result.spec
    example = spec.data.example if spec.data is not None else family.example_input(task)
    registry = get_registry()
    plugin, _ = registry.provenance("family", spec.family)
    info = registry.plugin_info(plugin)
    distribution = info.distribution
    # nasforge is not on a package index: the model carries its code (and its family plugin's), and
    # names only what that code imports, so an environment built from requirements.txt serves it.
    requirements = [f"{name}=={_version(name)}" for name in SERVING_REQUIREMENTS]
    code = [code_path(importlib.import_module("nasforge"))]
    plugin_module = None
    module = registry.pm.get_plugin(plugin)
    installed = distribution != RUN_TIME
    top = sys.modules.get(module.__name__.partition(".")[0]) if isinstance(module, types.ModuleType) else None
    if installed and getattr(top, "__file__", None):   # an entry-point module: ship its package (or file) too
        plugin_module = module.__name__
        code.append(code_path(top))
        if distribution != "nasforge":   # and what its distribution needs, bar nasforge (shipped)
            requirements += distribution_requirements(distribution)
    elif installed:
        requirements.append(f"{distribution}=={info.version}")
    params = result.best_trial.user_attrs.get("final_params", result.best_trial.params)
    return log_predictor(tracker, result.parent_run_id, result.predictor(), example=example,
                         params=spec.space.config_from_flat(params), requirements=requirements, code_paths=code,
                         plugin_module=plugin_module, tags={MODEL_TRIAL_TAG: str(best.number)})


def distribution_requirements(distribution: str) -> list[str]:
    """``distribution``'s own requirements without extras and without nasforge (the model ships it)."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    kept = []
    for line in requires(distribution) or ():
        requirement = Requirement(line)
        if canonicalize_name(requirement.name) != "nasforge" and "extra" not in str(requirement.marker or ""):
            kept.append(line)
    return kept


def code_path(module: types.ModuleType) -> str:
    """What the model copies of the top-level ``module``: a package's directory, a lone module's file."""
    return os.path.dirname(module.__file__) if hasattr(module, "__path__") else module.__file__


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution).split("+")[0]


def finish_search(result: SearchResult, tracker: Tracker) -> None:
    """Log what the search found on its parent run and end the run FINISHED."""
    spec, run_id = result.spec, result.parent_run_id
    trials = result.trials
    counts = {s: sum(1 for t in trials if t.state.name == s) for s in ("COMPLETE", "PRUNED", "FAIL")}
    summary: dict[str, float] = {f"n_{k.lower()}": v for k, v in counts.items()}
    tags: dict[str, Any] = {}
    if result.completed_trials:
        best = result.best_trial
        for obj, value in zip(spec.objectives, best.values):
            summary[f"best_{obj.metric}"] = value
        tags.update(best_trial=best.number, best_run_id=best.user_attrs.get("mlflow_run_id", ""),
                    best_params=json.dumps(result.best_params))
        if spec.save_models and best.user_attrs.get("mlflow_run_id"):  # no run: weights lost with the store
            model = result.best_model()
            family = get_registry().get("family", spec.family)
            task = load_task(spec.task, spec.seed, data_digest=spec.data_digest)
            result.test_metrics = dict(family.evaluate(model, task, "test"))
            summary.update(result.test_metrics)
            result.network_uri = log_model(tracker, run_id, model, family.example_input(task),
                                           trial_number=best.number)
            result.model_uri = log_served_model(result, tracker, family, task) or result.network_uri
        # the runs table's objective column on the parent row: the search's best
        summary.update({obj.metric: value for obj, value in zip(spec.objectives, best.values)})
    tracker.log(run_id, metrics=summary, tags=tags)
    if spec.side_by_side:
        log_strategies(result, tracker)
    try:
        tracker.log_text(run_id, result.trials_dataframe().to_csv(index=False), "trials.csv")
    except Exception:  # pandas missing or an exotic value: the table is a convenience
        pass
    if spec.plots:
        from nasforge.results.plots import log_summary_plots  # matplotlib: imported only when plotting

        log_summary_plots(result, tracker)  # never raises: a failed plot is a warning + plots/notes.txt
    tracker.end_run(run_id, "FINISHED", tags={"status_reason": "finished"})
