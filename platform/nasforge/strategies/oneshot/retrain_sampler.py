"""The Optuna sampler of ``enas`` / ``rsws`` searches: each trial retrains one of the supernet's top picks.

The supernet phase (:mod:`.phase`) leaves its top architectures, best first, in the study's system
attribute ``oneshot:top``. Each trial then takes the best one no other trial holds -- running, or
finished and counted (an interrupted trial gives its architecture back, so a resumed search retrains
it) -- and is trained from scratch like any other trial: same trial function, pruner, executor and
MLflow run. The trial records which one it took (system attribute ``oneshot:rank``; user attributes
``shared_rank``, ``shared_score``, ``shared_source``: argmax or sample, and ``finetuned_score`` for a
fine-tuned finalist).
"""

from __future__ import annotations

import threading
from typing import Any

from optuna.samplers import BaseSampler
from optuna.trial import TrialState

from nasforge.outcome import counts_toward_target
from nasforge.strategies.oneshot.phase_options import RANK_ATTR, TOP_ATTR
_LIVE = (TrialState.RUNNING, TrialState.WAITING)


class TopArchitecturesSampler(BaseSampler):
    """Hands out the supernet phase's top architectures, best first, one per trial (see the module doc).

    Args:
        space: the search space (the architectures' flat parameters are its names).
        strategy: ``"enas"``, ``"rsws"`` or ``"darts"`` (for messages).
        options: the phase's :class:`~nasforge.strategies.oneshot.phase_options.PhaseOptions`; the
            runner reads them from here to run the phase.
        seed: the search's seed (the phase derives its own generators from it).
    """

    def __init__(self, *, space, strategy: str, options, seed: int | None):
        self.space, self.strategy, self.options, self.seed = space, strategy, options, seed
        self._lock = threading.Lock()

    def top(self, study) -> list[dict[str, Any]]:
        """The phase's picks (empty until the phase has finished)."""
        return list(study._storage.get_study_system_attrs(study._study_id).get(TOP_ATTR) or [])

    def taken(self, study, *, exclude: int | None = None) -> set[int]:
        """Ranks held by a running trial or by a finished one that counts toward the target."""
        held = set()
        for t in study._storage.get_all_trials(study._study_id, deepcopy=False):
            rank = t.system_attrs.get(RANK_ATTR)
            if rank is not None and t._trial_id != exclude and (t.state in _LIVE or counts_toward_target(t)):
                held.add(int(rank))
        return held

    def is_exhausted(self, study) -> bool:
        """True once every pick is held (the Ray executor asks before each trial)."""
        top = self.top(study)
        return bool(top) and len(self.taken(study)) >= len(top)

    # -- Optuna's sampler interface -------------------------------------------------------
    def infer_relative_search_space(self, study, trial):
        return self.space.to_optuna()

    def sample_relative(self, study, trial, search_space):
        if not search_space:
            return {}
        with self._lock:
            top = self.top(study)
            if not top:
                raise RuntimeError(f"strategy {self.strategy!r}: the study has no supernet result yet; its trials "
                                   "retrain the supernet phase's picks (run the search through nasforge.search)")
            free = [i for i in range(len(top)) if i not in self.taken(study, exclude=trial._trial_id)]
            if not free:
                raise RuntimeError(f"strategy {self.strategy!r}: all {len(top)} picks of the supernet phase are "
                                   "retrained or being retrained; there is none left for another trial")
            rank = free[0]
            storage = study._storage
            storage.set_trial_system_attr(trial._trial_id, RANK_ATTR, rank)
            pick = top[rank]
            for key, value in (("shared_rank", rank), ("shared_score", pick.get("score")),
                               ("shared_source", pick.get("source")), ("finetuned_score", pick.get("finetuned_score"))):
                if value is not None:
                    storage.set_trial_user_attr(trial._trial_id, key, value)
        return {name: value for name, value in pick["params"].items() if name in search_space}

    def sample_independent(self, study, trial, param_name, param_distribution):
        raise RuntimeError(f"strategy {self.strategy!r}: parameter {param_name!r} is not part of the architecture "
                           "the supernet phase picked (the space changed since the phase?)")

    def reseed_rng(self) -> None:
        """Nothing random here: the picks are the phase's."""

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
