"""Several strategies in one study: a sampler (and pruner) that deals each trial to one of them.

``strategy=["controller", "tpe", "random"]`` runs one Optuna study whose sampler is a
:class:`SideBySideSampler`. When a trial starts, it goes to the strategy with the fewest
trials started among those below their share of the budget (ties: the order given), and is
tagged with the user attribute ``strategy``. Each strategy's own sampler and pruner then see
the study through a :class:`StrategyStudy`: only that strategy's trials, as if it ran alone.

One study rather than one per strategy, so that everything built on the study (the executors'
ask/tell, threads and Ray, resume and the settling of interrupted trials, unique trial numbers
and MLflow run names, the result and its plots) works unchanged.

Imported on first use (it imports optuna); see :mod:`nasforge.strategies.shares` for the rest.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Mapping, Sequence

import optuna
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler
from optuna.study.study import _ThreadLocalStudyAttribute
from optuna.trial import TrialState

from nasforge.outcome import counts_toward_target
from nasforge.strategies.shares import STRATEGY_ATTR

_STARTED = (TrialState.RUNNING, TrialState.WAITING)


class _StrategyStorage:
    """A storage that lists only one strategy's trials; everything else goes to the real one."""

    def __init__(self, storage, strategy: str):
        self._base, self._strategy = storage, strategy

    def __getattr__(self, name: str):
        return getattr(self._base, name)

    def get_all_trials(self, study_id: int, deepcopy: bool = True, states=None) -> list:
        trials = self._base.get_all_trials(study_id, deepcopy=deepcopy, states=states)
        return [t for t in trials if t.user_attrs.get(STRATEGY_ATTR) == self._strategy]

    def get_n_trials(self, study_id: int, state=None) -> int:
        states = None if state is None else (state if isinstance(state, tuple) else (state,))
        return len(self.get_all_trials(study_id, deepcopy=False, states=states))

    def get_best_trial(self, study_id: int):
        directions = self._base.get_study_directions(study_id)
        done = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE,))
        if not done:
            raise ValueError(f"no trial of strategy {self._strategy!r} is completed yet")
        sign = -1.0 if directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
        return min(done, key=lambda t: (sign * t.values[0], t.number))


class StrategyStudy(optuna.Study):
    """The study as one strategy sees it: its own trials only; ``stop()`` ends that strategy."""

    def __init__(self, study: optuna.Study, strategy: str, *, sampler, pruner, on_stop: Callable[[str], None]):
        # Not Study.__init__: the study exists; share its id, name and directions.
        self.__dict__.update(study.__dict__)
        self._storage = _StrategyStorage(study._storage, strategy)
        self._thread_local = _ThreadLocalStudyAttribute()
        self._stop_flag = False
        self.sampler, self.pruner = sampler, pruner
        self.strategy = strategy
        self._on_stop = on_stop

    def _get_trials(self, deepcopy: bool = True, states=None, use_cache: bool = False) -> list:
        # No per-thread cache: the real study resets its cache after each trial, a view could not.
        return self._storage.get_all_trials(self._study_id, deepcopy=deepcopy, states=states)

    def stop(self) -> None:
        """A grid or brute-force strategy has covered its space: it stops, the others go on."""
        self._on_stop(self.strategy)


class SideBySideSampler(BaseSampler):
    """Deals each new trial to one of several samplers, each seeing only its own trials.

    Args:
        samplers: strategy name -> that strategy's sampler, in the order given by the user.
        shares: strategy name -> its number of trials (finished, not interrupted) in the budget.
    """

    def __init__(self, *, samplers: Mapping[str, BaseSampler], shares: Mapping[str, int]):
        self.samplers = dict(samplers)
        self.shares = {name: int(shares[name]) for name in self.samplers}
        self.stopped: set[str] = set()      # strategies that covered their space (grid, bruteforce)
        self._assigned: dict[int, str] = {}  # trial id -> strategy, for trials started here
        self._views: dict[tuple[int, int, str], StrategyStudy] = {}
        self._lock = threading.RLock()

    # -- which strategy ---------------------------------------------------------------------
    def strategy_of(self, trial) -> str:
        """The strategy a trial (an ``optuna.Trial`` or ``FrozenTrial``) was dealt to."""
        trial_id = trial._trial_id
        name = self._assigned.get(trial_id)
        if name is None:
            storage = trial.study._storage if hasattr(trial, "study") else None
            attrs = (storage.get_trial(trial_id).user_attrs if storage is not None else trial.user_attrs)
            name = attrs.get(STRATEGY_ATTR)
        if name not in self.samplers:
            raise ValueError(f"trial {trial.number} belongs to no strategy of {list(self.samplers)} (got {name!r})")
        return name

    def started(self, study) -> dict[str, int]:
        """Per strategy: trials finished (counted toward the target) or running."""
        counts = dict.fromkeys(self.samplers, 0)
        for t in study._storage.get_all_trials(study._study_id, deepcopy=False):
            name = t.user_attrs.get(STRATEGY_ATTR)
            if name in counts and (t.state in _STARTED or counts_toward_target(t)):
                counts[name] += 1
        return counts

    def open_strategies(self, study) -> list[str]:
        """Strategies below their share that have not covered their space, in the order given."""
        counts = self.started(study)
        return [n for n in self.samplers if counts[n] < self.shares[n] and not self._exhausted(study, n)]

    def is_exhausted(self, study) -> bool:
        """True once no strategy can start another trial (the Ray searcher asks this)."""
        with self._lock:
            return not self.open_strategies(study)

    def _exhausted(self, study, name: str) -> bool:
        if name in self.stopped:
            return True
        check = getattr(self.samplers[name], "is_exhausted", None)
        return bool(check and check(self.view(study, name)))

    def _choose(self, study) -> str:
        counts = self.started(study)
        candidates = self.open_strategies(study)
        if not candidates:
            # nasforge's executors ask only while is_exhausted() is False; plain study.optimize with
            # threads may ask once a grid ran out: the trial goes to the strategy with the fewest.
            candidates = [n for n in self.samplers if n not in self.stopped] or list(self.samplers)
        return min(candidates, key=lambda n: (counts[n], list(self.samplers).index(n)))

    def view(self, study, name: str) -> StrategyStudy:
        if isinstance(study, StrategyStudy):
            return study
        key = (id(study._storage), study._study_id, name)
        with self._lock:
            if key not in self._views:
                pruners = getattr(study.pruner, "pruners", {})
                self._views[key] = StrategyStudy(study, name, sampler=self.samplers[name],
                                                 pruner=pruners.get(name, study.pruner), on_stop=self.stopped.add)
            return self._views[key]

    # -- Optuna's sampler interface ---------------------------------------------------------
    def before_trial(self, study, trial) -> None:
        with self._lock:
            name = self._choose(study)
            study._storage.set_trial_user_attr(trial._trial_id, STRATEGY_ATTR, name)
            self._assigned[trial._trial_id] = name
        self.samplers[name].before_trial(self.view(study, name), trial)

    def infer_relative_search_space(self, study, trial):
        name = self.strategy_of(trial)
        return self.samplers[name].infer_relative_search_space(self.view(study, name), trial)

    def sample_relative(self, study, trial, search_space):
        name = self.strategy_of(trial)
        return self.samplers[name].sample_relative(self.view(study, name), trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        name = self.strategy_of(trial)
        return self.samplers[name].sample_independent(self.view(study, name), trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        if trial.user_attrs.get(STRATEGY_ATTR) is None and trial._trial_id not in self._assigned:
            return   # killed before it was dealt (a resume settles it): no strategy to tell
        name = self.strategy_of(trial)
        self.samplers[name].after_trial(self.view(study, name), trial, state, values)
        self._assigned.pop(trial._trial_id, None)
        if not self.is_exhausted(study):
            return
        try:
            study.stop()   # every strategy has its share (or covered its space): end study.optimize
        except RuntimeError:
            pass           # outside study.optimize (Ray, resume): the caller asks is_exhausted()

    def reseed_rng(self) -> None:
        for sampler in self.samplers.values():
            sampler.reseed_rng()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_lock"], state["_views"] = None, {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()


class SideBySidePruner(BasePruner):
    """Each trial is judged by its own strategy's pruner, against that strategy's trials only.

    The study's sampler must be the :class:`SideBySideSampler` that dealt the trials.
    """

    def __init__(self, *, pruners: Mapping[str, BasePruner]):
        self.pruners = dict(pruners)

    def prune(self, study, trial) -> bool:
        dealer = study.sampler
        name = dealer.strategy_of(trial)
        return bool(self.pruners[name].prune(dealer.view(study, name), trial))


__all__: Sequence[str] = ("SideBySidePruner", "SideBySideSampler", "StrategyStudy")
