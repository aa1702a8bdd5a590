"""The leaderboard of a search: one row per trial, best first (``SearchResult.leaderboard()``, ``nasforge show``)."""

from __future__ import annotations

import math
from typing import Any

from nasforge.errors import SpaceError
from nasforge.spec.space import flatten
from nasforge.strategies.shares import strategy_of

STATE_ORDER = {"COMPLETE": 0, "PRUNED": 1, "FAIL": 2, "RUNNING": 3, "WAITING": 4}
# What a weight-sharing search's retraining trial says of its pick (strategies/oneshot/retrain_sampler.py).
PICK_ATTRS = ("shared_rank", "shared_score", "finetuned_score")


def leaderboard(result, *, data=None, target: str | None = None):
    """A pandas DataFrame of ``result``'s trials (see :meth:`SearchResult.leaderboard`)."""
    import pandas as pd

    scores = {}
    if data is not None:   # every completed trial's network on the labelled data, before the table
        for trial in result.completed_trials:
            scored = result.predictor(trial.number).evaluate(data, target=target)
            scores[trial.number] = {f"eval_{k}": v for k, v in scored.items() if k != "n_rows"}

    spec = result.spec
    first = spec.objectives[0]
    sign = -1.0 if first.direction == "maximize" else 1.0
    rows: list[dict[str, Any]] = []
    for trial in result.trials:
        metrics = trial.user_attrs.get("metrics", {})
        row: dict[str, Any] = {"trial": trial.number, "strategy": strategy_of(trial, spec), "state": trial.state.name}
        for i, objective in enumerate(spec.objectives):
            row[objective.metric] = trial.values[i] if trial.values else math.nan
        row.update({key: trial.user_attrs[key] for key in PICK_ATTRS if key in trial.user_attrs})
        params = trial.user_attrs.get("final_params", trial.params)
        try:
            row.update(flatten(spec.space.config_from_flat(params)))
        except SpaceError:   # interrupted while its parameters were drawn: the ones it has
            row.update(params)
        row["n_params"] = metrics.get("n_params", math.nan)
        if spec.max_flops is not None:   # counted only under a FLOPs cap (size_limit.py)
            row["flops"] = metrics.get("flops", math.nan)
        row["train_time_s"] = metrics.get("train_time_s", math.nan)
        if data is not None:
            row.update(scores.get(trial.number, {}))
        row["run_id"] = trial.user_attrs.get("mlflow_run_id")
        if trial.user_attrs.get("interrupted"):
            row["state"] = "INTERRUPTED"
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["trial", "strategy", "state", *[o.metric for o in spec.objectives]])

    def rank(row):
        value = row[first.metric]
        done = row["state"] == "COMPLETE" and not math.isnan(value)
        return (STATE_ORDER.get(row["state"], 5), sign * value if done else 0.0, row["trial"])

    rows.sort(key=rank)
    return pd.DataFrame(rows).reset_index(drop=True)
