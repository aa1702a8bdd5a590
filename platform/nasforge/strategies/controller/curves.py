"""Logs the controller's curves on a search's parent MLflow run (called by ``search_finished``).

The curves come from the state saved in the study, not from a sampler object, so they are
found whatever ran the trials. On a resumed search only the updates not yet logged are
sent; ``controller/history.json`` is rewritten with the whole history each time.
"""

from __future__ import annotations

import json
import time

CURVES = ("mean_reward", "max_reward", "mean_shaped_reward", "baseline", "entropy", "loss", "imitation_loss",
          "greedy_prob")
PREFIX = "controller."


def log_controller(result) -> None:
    from nasforge.strategies.controller.state import has_state, load

    study = result.study
    if not has_state(study):
        return
    history = load(study)[0]["history"]
    if not history:
        return
    from mlflow.entities import Metric

    from nasforge.stores.mlflow_runs import MAX_METRICS, Tracker

    tracker = Tracker(tracking_uri=result.spec.tracking_uri, experiment_id=result.experiment_id)
    run_id = result.parent_run_id
    logged = tracker.client.get_metric_history(run_id, PREFIX + CURVES[0])
    done = max((m.step for m in logged), default=0)
    now = int(time.time() * 1000)
    metrics = [Metric(PREFIX + name, float(h[name]), now, int(h["step"]))
               for h in history if h["step"] > done for name in CURVES]
    for i in range(0, len(metrics), MAX_METRICS):
        tracker.client.log_batch(run_id, metrics=metrics[i:i + MAX_METRICS])
    last = history[-1]
    tracker.log(run_id, tags={"controller.updates": last["step"], "controller.most_probable": last["greedy"],
                              "controller.most_probable_prob": f"{last['greedy_prob']:.4g}"})
    tracker.log_text(run_id, json.dumps(history, indent=1), "controller/history.json")
