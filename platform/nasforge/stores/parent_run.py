"""The MLflow parent run of a search: created once, found again on resume (also after a kill)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nasforge.plugins import get_registry
from nasforge.stores.datasets import log_data
from nasforge.stores.mlflow_runs import PARENT_TAG, Tracker

if TYPE_CHECKING:
    from nasforge.spec.arguments import SearchSpec


def open_parent_run(spec: "SearchSpec", study, tracker: Tracker) -> str:
    """The search's parent run id: the study's own, an orphan a killed process left, or a new one."""
    run_id = study.user_attrs.get("mlflow_parent_run_id")
    same_store = study.user_attrs.get("mlflow_tracking_uri") == spec.tracking_uri
    if run_id and same_store:
        tracker.reopen(run_id)
        return run_id
    registry = get_registry()
    plugin, plugin_version = registry.provenance("family", spec.family)
    tags = {"family": spec.family, "task": spec.task, "strategy": spec.strategy, "seed": spec.seed,
            "backend": spec.backend, "study": study.study_name, "plugin": plugin,
            "plugin_version": plugin_version, "nasforge_role": "search",
            **({"strategies": ",".join(spec.strategies)} if spec.side_by_side else {}),
            "plugins": ", ".join(dict.fromkeys(f"{i.distribution}=={i.version}" for i in registry.plugin_infos()
                                               if i.distribution != "(registered at run time)")),
            **spec.tags}
    orphan = orphan_parent_run(spec, study, tracker) if spec.resume else None
    if orphan is not None:  # a killed process created it, then died before the study recorded it
        run_id = orphan.info.run_id
        tracker.log(run_id, params={k: v for k, v in spec.summary().items() if k not in orphan.data.params})
        if spec.data is not None and "data_digest" not in orphan.data.tags:
            log_data(tracker, run_id, spec.data)
    else:
        run_id = tracker.start_run(name=study.study_name, tags=tags, params=spec.summary())
        if spec.data is not None:
            log_data(tracker, run_id, spec.data)
    import yaml

    tracker.log_text(run_id, yaml.safe_dump(dict(spec.space.raw), sort_keys=False), "search_space.yaml")
    study.set_user_attr("mlflow_parent_run_id", run_id)
    study.set_user_attr("mlflow_tracking_uri", spec.tracking_uri)
    study.set_user_attr("mlflow_experiment_id", tracker.experiment_id)
    return run_id


def orphan_parent_run(spec: "SearchSpec", study, tracker: Tracker):
    """This study's parent run if one is RUNNING but the study does not know it (or None)."""
    runs = tracker.client.search_runs(
        [tracker.experiment_id], max_results=1000,
        filter_string="tags.nasforge_role = 'search' and attributes.status = 'RUNNING'")
    for run in runs:
        tags, params = run.data.tags, run.data.params
        if tags.get("study") == study.study_name and PARENT_TAG not in tags \
                and params.get("storage", spec.storage) == spec.storage:
            return run
    return None
