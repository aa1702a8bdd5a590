"""The progress of a search: its bars (supernet epochs, then trials) and the ``trial_finished`` hook."""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING

from nasforge.outcome import COMPLETE, FAILED, PRUNED, TrialOutcome
from nasforge.plugins import get_registry

if TYPE_CHECKING:
    from nasforge.spec.arguments import SearchSpec


# The supernet phase's curves its bar shows (an epoch's mean), under shorter names.
PHASE_POSTFIX = {"shared_train_loss": "loss", "sampled_val_accuracy": "path val acc",
                 "sampled_val_loss": "path val loss", "entropy": "controller entropy",
                 "mixed_val_accuracy": "mixed val acc", "arch_entropy": "alpha entropy",
                 "arch_within_caps": "within caps"}


class Monitor:
    """Progress bars (the supernet phase's epochs, then the trials: done, best so far) and the
    ``trial_finished`` hook. The trials' bar appears with :meth:`start`, after any supernet phase."""

    def __init__(self, spec: "SearchSpec", study, *, total: int, initial: int, enabled: bool):
        self.spec, self.study = spec, study
        self.total, self.initial, self.enabled = total, initial, enabled
        self.lock = threading.Lock()
        self.best: float | None = None
        self.counts = {COMPLETE: 0, PRUNED: 0, FAILED: 0}
        self.bar = self.phase_bar = None

    def start(self) -> None:
        """Show the trials' bar."""
        if self.enabled and self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, initial=self.initial, unit="trial", dynamic_ncols=True,
                            file=sys.stderr)

    def on_phase_epoch(self, epoch: int, epochs: int, curves: dict[str, float]) -> None:
        """The supernet phase has ``epoch`` of its ``epochs`` done (``curves``: the last one's means;
        called once as it starts, or resumes, and after each epoch)."""
        if not self.enabled:
            return
        if self.phase_bar is None:
            from tqdm.auto import tqdm

            self.phase_bar = tqdm(total=epochs, initial=epoch, unit="epoch", dynamic_ncols=True,
                                  file=sys.stderr, desc=f"supernet ({self.spec.strategy})")
        shown = {label: f"{curves[key]:.4g}" for key, label in PHASE_POSTFIX.items() if key in curves}
        self.phase_bar.set_postfix(shown, refresh=False)
        self.phase_bar.update(epoch - self.phase_bar.n)
        if epoch >= epochs:
            self.phase_bar.close()

    def on_outcome(self, outcome: TrialOutcome) -> None:
        with self.lock:
            self.counts[outcome.status] += 1
            obj = self.spec.objectives[0]
            if outcome.status == COMPLETE and not self.spec.multi_objective:
                value = outcome.values[0]
                better = max if obj.direction == "maximize" else min
                self.best = value if self.best is None else better(self.best, value)
            if self.bar is not None:
                postfix = {f"best {obj.metric}": f"{self.best:.4g}"} if self.best is not None else {}
                if self.counts[PRUNED]:
                    postfix["pruned"] = self.counts[PRUNED]
                if self.counts[FAILED]:
                    postfix["failed"] = self.counts[FAILED]
                self.bar.set_postfix(postfix, refresh=False)
                self.bar.update(1)
        get_registry().pm.hook.trial_finished(record=outcome)

    def close(self) -> None:
        for bar in (self.phase_bar, self.bar):
            if bar is not None:
                bar.close()
