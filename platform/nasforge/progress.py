"""The progress of a search: a bar (trials done, best so far) and the ``trial_finished`` hook."""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING

from nasforge.outcome import COMPLETE, FAILED, PRUNED, TrialOutcome
from nasforge.plugins import get_registry

if TYPE_CHECKING:
    from nasforge.spec.arguments import SearchSpec


class Monitor:
    """Progress bar (trials done, best so far) and the ``trial_finished`` hook."""

    def __init__(self, spec: "SearchSpec", study, *, total: int, initial: int, enabled: bool):
        self.spec, self.study = spec, study
        self.lock = threading.Lock()
        self.best: float | None = None
        self.counts = {COMPLETE: 0, PRUNED: 0, FAILED: 0}
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="trial", dynamic_ncols=True, file=sys.stderr)

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
        if self.bar is not None:
            self.bar.close()
