"""Ray Tune early-stopping schedulers for nasforge trials.

Every scheduler here only *stops* trials, never pauses them: a paused function trainable
without checkpoints restarts from scratch, and not every family checkpoints. ``pbt``, which
pauses and copies trials, is :mod:`~nasforge.executors.ray_pbt` (families that checkpoint only). Time is
the family's budget unit (``nasforge_step``: epochs, env steps...), the metric the objective.

* ``asha`` -- Asynchronous Successive Halving (Li et al., "A System for Massively Parallel
  Hyperparameter Tuning", MLSys 2020): rungs at ``grace_period * reduction_factor**k``; a
  trial reaching a rung continues only if it is in the top ``1/reduction_factor`` there.
* ``hyperband`` -- asynchronous Hyperband (same paper, Sec. 3.3): ASHA brackets with every
  early-stopping rate ``s = 0..s_max``, trials spread over them. Ray's synchronous
  ``HyperBandScheduler`` pauses trials at rung ends, which needs checkpoints, so it is not used.
* ``median`` -- the median stopping rule (Golovin et al., "Google Vizier", KDD 2017): stop a
  trial whose best value so far is worse than the median of the other trials' running means
  at the same step.

Defaults match the local pruners of the same idea (``sha``: min resource 1, factor 3;
``median``: 2 warm-up steps, 5 trials before it stops any).
"""

from __future__ import annotations

import math

from ray.tune.schedulers import AsyncHyperBandScheduler, MedianStoppingRule, TrialScheduler

from nasforge.executors.ray_trainable import OBJECTIVE, STEP


class HardMedianStopping(MedianStoppingRule):
    """Ray's median stopping rule, minus the pause it makes while too few trials reached a step."""

    def _on_insufficient_samples(self, tune_controller, trial, time):
        return TrialScheduler.CONTINUE


def hyperband_brackets(max_t: int, grace_period: int, reduction_factor: float) -> int:
    """``s_max + 1``: one bracket per early-stopping rate that leaves at least one rung."""
    return int(math.log(max_t / grace_period) / math.log(reduction_factor) + 1e-9) + 1


def make_scheduler(spec):
    """The Tune scheduler for ``spec.scheduler`` (None for ``"none"``: every trial runs its budget)."""
    if spec.scheduler == "none":
        return None
    if spec.scheduler == "pbt":   # pauses and copies trials through checkpoints: its own module
        from nasforge.executors.ray_pbt import make_pbt

        return make_pbt(spec)
    mode = "max" if spec.objectives[0].direction == "maximize" else "min"
    max_t = spec.budget[spec.budget_unit]
    options = dict(spec.scheduler_options)
    if spec.scheduler in ("asha", "hyperband"):
        grace = options.get("grace_period", 1)
        factor = options.get("reduction_factor", 3)
        brackets = options.get("brackets", 1)
        if spec.scheduler == "hyperband":
            brackets = hyperband_brackets(max_t, grace, factor)
        return AsyncHyperBandScheduler(time_attr=STEP, metric=OBJECTIVE, mode=mode, max_t=max_t,
                                       grace_period=grace, reduction_factor=factor, brackets=brackets)

    return HardMedianStopping(time_attr=STEP, metric=OBJECTIVE, mode=mode, hard_stop=True,
                              grace_period=options.get("grace_period", 2),
                              min_samples_required=options.get("min_samples_required", 5))
