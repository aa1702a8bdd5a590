"""One seeded fit of a family, and a reporter that keeps its figures: helpers for a family's tests.

::

    from nasforge.testing import FigureReporter, fit_once

    model, metrics, reporter = fit_once(family, task, {"lr": 3e-3}, 20)       # 20 of its budget unit
    assert metrics["val_accuracy"] > 0.9
    _, _, reporter = fit_once(family, task, {}, 2, reporter=FigureReporter())
    assert reporter.png("samples.png").startswith(b"\\x89PNG")
"""

from __future__ import annotations

import io
from typing import Any, Mapping

from nasforge.family import NullReporter, Reporter


class FigureReporter(NullReporter):
    """A :class:`~nasforge.family.NullReporter` that also keeps the figures a fit logs, by name.

    Families draw their figures only for a reporter that keeps them (a ``NullReporter`` makes
    them skip the drawing), so pass one only where a test looks at the figures.
    """

    def __init__(self):
        super().__init__()
        self.figures: dict[str, Any] = {}

    def log_figure(self, figure: Any, name: str) -> None:
        self.figures[name] = figure

    def png(self, name: str) -> bytes:
        """The figure logged as ``name``, rendered as the PNG a search would store."""
        buffer = io.BytesIO()
        self.figures[name].savefig(buffer, format="png")
        return buffer.getvalue()


def fit_once(family, task, params: Mapping[str, Any], budget: Mapping[str, Any] | int, *, seed: int = 0,
             reporter: Reporter | None = None) -> tuple[Any, dict[str, Any], Reporter]:
    """Build ``family``'s model for ``params`` on ``task`` (torch seeded with ``seed``) and fit it.

    ``budget`` is a budget mapping, or a number of the family's ``budget_unit``. ``reporter``
    (default: a fresh :class:`~nasforge.family.NullReporter`) receives the reports. Returns
    ``(model, final metrics, reporter)``.
    """
    import torch

    config = family.make_config(params)
    torch.manual_seed(seed)
    model = family.build(config, task)
    reporter = NullReporter() if reporter is None else reporter
    if not isinstance(budget, Mapping):
        budget = {family.budget_unit: budget}
    metrics = family.fit(model, task, config, budget, reporter)
    return model, metrics, reporter
