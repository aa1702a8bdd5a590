"""Population Based Training on the Ray executor (options: :mod:`nasforge.executors.pbt_options`).

Ray's ``PopulationBasedTraining`` with nasforge's configs: a weak trial takes the donor's
config and latest checkpoint, but keeps its own identity (trial number, strategy, MLflow run id,
so its one child run goes on), and only the mutable hyperparameters are perturbed, clipped to
their range, with a seeded generator. Every exploit is appended to the trial's lineage
(``nasforge_lineage`` in its config), which the worker records in MLflow when it resumes.
"""

from __future__ import annotations

import copy
import math
import random
from typing import Any, Mapping

from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler
from ray.tune.schedulers.pbt import _PBTTrialState

from nasforge.executors.ray_trainable import (
    EVENT, INTERMEDIATE, LINEAGE, NUMBER, OBJECTIVE, PARAMS, RUN_ID, STARTED, STEP, STRATEGY,
)

FACTORS = (0.8, 1.2)   # Jaderberg et al. (2017), and Ray's default perturbation factors


def perturb(params: Mapping[str, Any], mutations: Mapping[str, Mapping[str, Any]], rng: random.Random, *,
            resample_probability: float) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """``params`` with each mutable float present scaled by 0.8 or 1.2 (or resampled), kept in range."""
    new = copy.deepcopy(dict(params))
    changed: dict[str, list[float]] = {}
    for name, bounds in mutations.items():
        if name not in new:   # a conditional parameter this config does not use
            continue
        low, high, old = bounds["low"], bounds["high"], float(new[name])
        if rng.random() < resample_probability:
            value = math.exp(rng.uniform(math.log(low), math.log(high))) if bounds["log"] else rng.uniform(low, high)
        else:
            value = old * rng.choice(FACTORS)
        new[name] = min(max(value, low), high)
        changed[name] = [old, new[name]]
    return new, changed


def _keep(config: dict) -> dict:
    return config   # Ray needs a mutation or an explore function; ours is in _get_new_config


class NasforgePBT(PopulationBasedTraining):
    """PBT over ``nasforge_params``; see the module docstring."""

    def __init__(self, *, mode: str, options: Mapping[str, Any], seed: int):
        super().__init__(time_attr=STEP, metric=OBJECTIVE, mode=mode,
                         perturbation_interval=options["perturbation_interval"],
                         quantile_fraction=options["quantile_fraction"],
                         resample_probability=options["resample_probability"],
                         custom_explore_fn=_keep, require_attrs=False)
        self.mutations = dict(options["hyperparam_mutations"])
        self.rng = random.Random(seed)
        self.run_ids: dict[str, str] = {}

    def on_trial_add(self, tune_controller, trial) -> None:
        # Ray refuses any search algorithm with PBT (a learning one would be misled by the
        # perturbed configs). Ours only samples the initial population from the study, with a
        # strategy that does not learn (pbt_options.PBT_STRATEGIES), and records outcomes.
        self._trial_state[trial] = _PBTTrialState(trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if result.get(EVENT) == STARTED and result.get(RUN_ID):
            # Remember the trial's MLflow run: after an exploit or a pause it goes on in the same run.
            self.run_ids[trial.trial_id] = result[RUN_ID]
            if trial.config.get(RUN_ID) != result[RUN_ID]:
                trial.set_config({**trial.config, RUN_ID: result[RUN_ID]})
            return TrialScheduler.CONTINUE
        if result.get(EVENT) != INTERMEDIATE:   # the final result: the trial is ending, nothing to perturb
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def _checkpoint_or_exploit(self, trial, tune_controller, upper_quantile, lower_quantile) -> None:
        if trial in lower_quantile:
            # Ray picks the donor with the global `random` among the whole top quantile, and skips the
            # exploit if that one holds no checkpoint (a top trial has one only if it was on top at its
            # own last perturbation). Pick with the search's seeded generator, among those that hold one.
            donors = [t for t in upper_quantile if self._trial_state[t].last_checkpoint is not None]
            if donors:
                upper_quantile = [self.rng.choice(donors)]
        super()._checkpoint_or_exploit(trial, tune_controller, upper_quantile, lower_quantile)

    def _get_new_config(self, trial, trial_to_clone) -> tuple[dict, dict]:
        donor = trial_to_clone.config
        params, changed = perturb(donor[PARAMS], self.mutations, self.rng,
                                  resample_probability=self._resample_probability)
        event = {"step": int(self._trial_state[trial_to_clone].last_train_time), "donor_trial": int(donor[NUMBER]),
                 "donor_run_id": self.run_ids.get(trial_to_clone.trial_id), "changed": changed}
        new = {**copy.deepcopy(donor), PARAMS: params, NUMBER: trial.config[NUMBER],
               LINEAGE: [*trial.config.get(LINEAGE, []), event]}
        for key in (RUN_ID, STRATEGY):
            if key in trial.config:
                new[key] = trial.config[key]
            else:
                new.pop(key, None)
        return new, {name: f"{old:.4g} -> {value:.4g}" for name, (old, value) in changed.items()}


def make_pbt(spec) -> NasforgePBT:
    mode = "max" if spec.objectives[0].direction == "maximize" else "min"
    return NasforgePBT(mode=mode, options=spec.scheduler_options, seed=spec.seed)
