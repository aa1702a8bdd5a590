"""Regularized (aging) evolution as an Optuna sampler, registered as strategy ``"evolution"``.

Real, E., Aggarwal, A., Huang, Y. & Le, Q. V. "Regularized Evolution for Image Classifier
Architecture Search", AAAI 2019 (Algorithm 1): the first ``population_size`` models are
random; after that, each new model copies the best of ``sample_size`` models drawn from the
population (its ``population_size`` most recent models) and changes ONE of its decisions.
Adding a model ages the oldest out of the population -- regularization by age rather than
by fitness.

In an Optuna study, "the population" is the ``population_size`` most recent completed
trials (failed, pruned and NaN trials are not models), so the sampler keeps no state of its
own and a resumed study continues the same evolution. Every parameter is an independent
suggestion: the child's value is the parent's, except for the one mutated parameter (a
different choice, or a fresh uniform draw of a numeric range), and except for parameters
the parent never had (e.g. a layer that a larger depth adds), which are drawn at random.
The plan (parent trial and mutated parameter) is kept in the trial's system attributes
``evolution:parent`` / ``evolution:mutated``. Draws come from generators seeded by
``(seed, trial number, parameter)``: the same seed gives the same search.

The strategy ``"evolution"`` is registered by :mod:`nasforge.strategies.evolution`, which
imports this module (and optuna) only when a search uses it.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import optuna
from optuna.trial import TrialState

from nasforge.errors import ConfigError

PARENT_ATTR, MUTATED_ATTR = "evolution:parent", "evolution:mutated"


class RegularizedEvolutionSampler(optuna.samplers.BaseSampler):
    """Aging evolution (Real et al., 2019); see the module docstring.

    The defaults (P=20, S=5) are scaled down from the paper's for budgets of a few hundred trials.

    Args:
        population_size: P, the models alive at once (and the random ones to start).
        sample_size: S, the models drawn from the population to pick a parent from.
        seed: seeds every draw (per trial number and parameter).
    """

    def __init__(self, *, population_size: int = 20, sample_size: int = 5, seed: int | None = None):
        for name, value in (("population_size", population_size), ("sample_size", sample_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"evolution: {name} must be an integer >= 1, got {value!r}")
        if sample_size > population_size:
            raise ConfigError(f"evolution: sample_size ({sample_size}) must not exceed population_size "
                              f"({population_size})")
        self.population_size, self.sample_size = population_size, sample_size
        self._seed = int(seed) if seed is not None else int(np.random.SeedSequence().entropy % 2**31)
        self._plans: dict[int, tuple[int | None, str | None]] = {}

    def reseed_rng(self) -> None:
        """Nothing to do: every draw comes from ``(seed, trial number, parameter)``."""

    def infer_relative_search_space(self, study, trial):
        _single_objective(study)
        return {}

    def sample_relative(self, study, trial, search_space):
        _single_objective(study)
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        _single_objective(study)
        parent_number, mutated = self._plan(study, trial)
        salt = zlib.crc32(param_name.encode())
        if parent_number is None:
            return self._uniform(study, trial, param_name, param_distribution, salt)
        parent = study._storage.get_trial(
            study._storage.get_trial_id_from_study_id_trial_number(study._study_id, parent_number))
        inherited = parent.params.get(param_name)
        known = (param_name in parent.params
                 and param_distribution._contains(param_distribution.to_internal_repr(inherited)))
        if not known:
            return self._uniform(study, trial, param_name, param_distribution, salt)
        if param_name != mutated:
            return inherited
        for attempt in range(1, 33):   # a different value, if the range has one
            value = self._uniform(study, trial, param_name, param_distribution, salt, attempt)
            if value != inherited:
                return value
        return inherited

    def after_trial(self, study, trial, state, values) -> None:
        self._plans.pop(trial._trial_id, None)

    # -- the plan of a trial: its parent and the parameter to mutate -----------------
    def _plan(self, study, trial) -> tuple[int | None, str | None]:
        plan = self._plans.get(trial._trial_id)
        if plan is not None:
            return plan
        attrs = study._storage.get_trial_system_attrs(trial._trial_id)
        if PARENT_ATTR in attrs:
            plan = (attrs[PARENT_ATTR], attrs.get(MUTATED_ATTR))
        else:
            plan = self._new_plan(study, trial)
            study._storage.set_trial_system_attr(trial._trial_id, PARENT_ATTR, plan[0])
            study._storage.set_trial_system_attr(trial._trial_id, MUTATED_ATTR, plan[1])
        self._plans[trial._trial_id] = plan
        return plan

    def _new_plan(self, study, trial) -> tuple[int | None, str | None]:
        completed = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                     if t.number < trial.number and t.params and t.values and math.isfinite(t.values[0])]
        if len(completed) < self.population_size:
            return None, None   # still building the random initial population
        population = sorted(completed, key=lambda t: t.number)[-self.population_size:]
        rng = np.random.default_rng([self._seed, trial.number])
        picks = rng.choice(len(population), size=self.sample_size, replace=False)
        sign = 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
        parent = max((population[i] for i in sorted(picks)), key=lambda t: (sign * t.values[0], -t.number))
        mutable = [name for name, dist in parent.distributions.items() if not dist.single()]
        mutated = mutable[int(rng.integers(len(mutable)))] if mutable else None
        return parent.number, mutated

    def _uniform(self, study, trial, name, distribution, *salt):
        seed = np.random.SeedSequence([self._seed, trial.number, *salt]).generate_state(1)[0]
        return optuna.samplers.RandomSampler(seed=int(seed)).sample_independent(study, trial, name, distribution)

def _single_objective(study) -> None:
    if len(study.directions) > 1:
        raise ValueError(f"evolution compares models on one objective; this study has "
                         f"{len(study.directions)} (use nsga2, tpe or random for multi-objective searches)")
