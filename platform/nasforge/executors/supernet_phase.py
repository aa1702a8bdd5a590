"""The supernet phase of a weight-sharing search (enas, rsws, darts): one job before the trials, here or on a Ray worker.

The driver opens the phase's MLflow run -- a child of the search's parent run, tagged
``phase=supernet`` -- and records its id in the study, so a resumed search finds it again; the
phase itself (:func:`nasforge.strategies.oneshot.phases.run_phase`) runs in this process
(``backend="local"``) or as one Ray task (``backend="ray"``, :mod:`nasforge.executors.ray_supernet`;
a GPU when ``gpus_per_trial`` asks), continuing from the run's checkpoint. Its picks go to the run
(``top_architectures.json``) and to the study (``oneshot:top``), which the retraining trials read.
"""

from __future__ import annotations

import dataclasses
import json
import sys

from nasforge.errors import SpecError, SupernetWarning
from nasforge.outcome import counts_toward_target
from nasforge.strategies.oneshot.phase_options import CHANCE_ATTR, CHANCE_Z, TOP_ATTR, PhaseJob, PhaseOptions

RUN_ATTR, OPTIONS_ATTR = "oneshot:run_id", "oneshot:options"
PHASE_TAG = "phase"


def run_supernet_phase(spec, *, study, tracker, parent_run_id: str, n_trials: int,
                       deadline: float | None = None, on_epoch=None) -> int:
    """Run (or continue, or skip when done) the phase of ``spec``; return how many trials remain to run.

    Fewer than ``n_trials`` when the space holds fewer distinct architectures than ``trials``.
    ``deadline`` (a ``time.time()``, from the search's ``timeout``) ends the phase early;
    ``on_epoch(epochs done, epochs, the last epoch's mean curves)`` follows it (on Ray: the epochs only).
    """
    storage, study_id = study._storage, study._study_id
    attrs = storage.get_study_system_attrs(study_id)
    top = attrs.get(TOP_ATTR)
    if top is None:
        top = _run(spec, study=study, tracker=tracker, parent_run_id=parent_run_id, run_id=attrs.get(RUN_ATTR),
                   deadline=deadline, on_epoch=on_epoch)
    held = sum(1 for t in study.get_trials(deepcopy=False) if counts_toward_target(t))
    return max(min(n_trials, len(top) - held), 0)


def warn_at_chance(chance: dict) -> None:
    """Say that the supernet learned nothing usable: its best path is no better than ignoring the inputs."""
    import warnings

    what = "accuracy" if chance["classification"] else "MSE"
    baseline = "predicting the train split's most frequent class" if chance["classification"] else \
        "predicting the train split's mean"
    warnings.warn(f"the supernet's best path scores {what} {chance['best_score']:.4g} on {chance['rows']} validation "
                  f"rows, no better than {baseline} ({chance['chance_score']:.4g}; paired z = {chance['z']:.2f} < "
                  f"{CHANCE_Z:g}): its shared weights learned nothing this space's paths agree on, so its picks are "
                  "as good as random draws. Try more supernet_epochs, a smaller space, or a multi-trial strategy "
                  "(tpe, controller)", SupernetWarning, stacklevel=2)


def phase_options(spec, study):
    """The phase's options: the spec's, or on a resume that gives none, those the phase started with."""
    given = study.sampler.options
    stored = study._storage.get_study_system_attrs(study._study_id).get(OPTIONS_ATTR)
    if stored is None:
        return given
    stored = {**dataclasses.asdict(PhaseOptions()), **stored}   # options added since the phase started: defaults
    if not spec.strategy_options:
        return PhaseOptions(**stored)
    if dataclasses.asdict(given) != stored:
        changed = sorted(k for k, v in stored.items() if dataclasses.asdict(given)[k] != v)
        raise SpecError(f"study {study.study_name!r} started its supernet phase with other strategy_options "
                        f"({', '.join(f'{k}={stored[k]!r}' for k in changed)}); resume it with those, or without "
                        "strategy_options")
    return given


def _run(spec, *, study, tracker, parent_run_id: str, run_id: str | None, deadline: float | None,
         on_epoch) -> list:
    storage, study_id = study._storage, study._study_id
    options = phase_options(spec, study)
    job = PhaseJob(strategy=spec.strategy, family=spec.family, task=spec.task, data_digest=spec.data_digest,
                   space=spec.space, seed=spec.seed, options=options, top=spec.trials,
                   tracking_uri=spec.tracking_uri, experiment_id=tracker.experiment_id, run_id=run_id or "",
                   deadline=deadline, size_limit=spec.size_limit)
    if run_id is None:
        tags = {PHASE_TAG: "supernet", "family": spec.family, "task": spec.task, "strategy": spec.strategy,
                "seed": spec.seed, "backend": spec.backend, "study": study.study_name, **spec.tags}
        run_id = tracker.start_run(name=f"supernet {spec.strategy}", tags=tags, params=job.summary(),
                                   parent_run_id=parent_run_id)
        storage.set_study_system_attr(study_id, OPTIONS_ATTR, dataclasses.asdict(options))
        storage.set_study_system_attr(study_id, RUN_ATTR, run_id)
    else:
        tracker.reopen(run_id)
    job = PhaseJob(**{**job.__dict__, "run_id": run_id})
    try:
        if spec.backend == "ray":
            from nasforge.executors.ray_supernet import run_on_ray

            result = run_on_ray(job, spec, on_epoch=on_epoch)
        else:
            from nasforge.strategies.oneshot.phases import run_phase

            result = run_phase(job, tracker=tracker, on_epoch=on_epoch)
    except KeyboardInterrupt:
        tracker.end_run(run_id, "KILLED", tags={"status_reason": "interrupted; resume=True continues the supernet "
                                                                  "phase from its last epoch"})
        print(f"\nthe supernet phase was interrupted; its last finished epoch is saved in MLflow run {run_id}",
              file=sys.stderr)
        raise
    except Exception as exc:
        tracker.end_run(run_id, "FAILED", tags={"status_reason": f"{type(exc).__name__}: {exc}"[:1000]})
        raise
    finetuned = result.get("finetuned_metric")   # the finalists' score, when they were fine-tuned
    top = [{"params": e["params"], "score": e[result["metric"]], "source": e["source"],
            **({"finetuned_score": e[finetuned]} if finetuned in e else {})} for e in result["top"]]
    if len(top) < spec.trials:
        within = f" within {spec.size_limit.describe()}" if spec.size_limit else ""
        print(f"nasforge: the supernet phase's {options.candidates} draws hold only {len(top)} distinct "
              f"architectures{within}; {len(top)} are retrained, not trials={spec.trials} (a small space, or raise "
              "strategy_options['candidates'])", file=sys.stderr)
    compute = result["compute"]
    best = result["candidates"][0] if result["candidates"] else {}
    metrics = {f"phase_{k}": float(v) for k, v in compute.items()}
    metrics.update({f"best_{result['metric']}": best.get(result["metric"], float("nan")),
                    "n_candidates": len(result["candidates"]),
                    **({f"best_{finetuned}": best[finetuned]} if finetuned in best else {})})
    tags = {"top_architecture": json.dumps(top[0]["params"]) if top else "", **result.get("worker_tags", {})}
    chance = result.get("chance")
    if chance:
        metrics.update({"chance_score": chance["chance_score"], "best_vs_chance_z": chance["z"]})
        tags["beats_chance"] = str(chance["beats_chance"]).lower()
        storage.set_study_system_attr(study_id, CHANCE_ATTR, chance)   # for the summary of a reopened search
    tracker.log(run_id, metrics=metrics, tags=tags)
    if chance and not chance["beats_chance"]:
        warn_at_chance(chance)
    tracker.log_text(run_id, json.dumps({"strategy": spec.strategy, "metric": result["metric"], "top": top,
                                         "candidates": result["candidates"], "compute": compute,
                                         **({"probabilities": result["probabilities"]}
                                            if "probabilities" in result else {})},
                                        indent=1, default=str), "top_architectures.json")
    reason = "finished"
    if result.get("timed_out"):
        reason = (f"timeout: stopped after epoch {compute['epochs']} of {options.supernet_epochs}; the picks are "
                  "rated with those epochs' weights")
        print(f"nasforge: {reason}", file=sys.stderr)
    tracker.end_run(run_id, "FINISHED", tags={"status_reason": reason})
    storage.set_study_system_attr(study_id, TOP_ATTR, top)   # last: a kill before it reruns the rating only
    return top
