"""Strategies side by side, compared: each strategy's trials, best, summary row, curve and table.

``SearchResult.by_strategy`` and ``strategy_summary()`` read it; the runner logs it on the parent
run (:func:`log_strategies`) and the CLI prints :func:`format_table`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nasforge.outcome import counts_toward_target
from nasforge.strategies.shares import strategy_of


# -- per-strategy results ------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class StrategyResult:
    """One strategy's part of a search (``SearchResult.by_strategy[name]``)."""

    strategy: str
    share: int                 # its trials in the budget
    trials: list               # its FrozenTrials, by number (interrupted ones included)
    best_trial: Any            # its best completed trial (first objective), or None
    summary: dict[str, Any]    # its row of ``SearchResult.strategy_summary()``
    space: Any = None

    @property
    def completed_trials(self) -> list:
        return [t for t in self.trials if t.state.name == "COMPLETE"]

    @property
    def best_value(self) -> float:
        if self.best_trial is None:
            raise ValueError(f"no trial of strategy {self.strategy!r} completed")
        return self.best_trial.values[0]

    @property
    def best_params(self) -> dict[str, Any]:
        if self.best_trial is None:
            raise ValueError(f"no trial of strategy {self.strategy!r} completed")
        return self.space.config_from_flat(self.best_trial.params)


def by_strategy(result) -> dict[str, StrategyResult]:
    """strategy -> :class:`StrategyResult`, in the order the strategies were given."""
    spec = result.spec
    trials = sorted(result.study.get_trials(deepcopy=False), key=lambda t: t.number)
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    start = min(starts) if starts else None
    front = set()
    if spec.multi_objective:
        front = {t.number for t in result.best_trials}
    objective = spec.objectives[0]
    sign = 1.0 if objective.direction == "maximize" else -1.0
    shares = spec.shares
    out: dict[str, StrategyResult] = {}
    for name in spec.strategies:
        mine = [t for t in trials if strategy_of(t, spec) == name]
        counted = [t for t in mine if counts_toward_target(t)]
        complete = [t for t in mine if t.state.name == "COMPLETE"]
        best = max(complete, key=lambda t: (sign * t.values[0], -t.number)) if complete else None
        row: dict[str, Any] = {
            "strategy": name, "share": shares[name], "trials": len(counted), "complete": len(complete),
            "pruned": sum(t.state.name == "PRUNED" for t in counted),
            "failed": sum(t.state.name == "FAIL" for t in counted),
            f"best_{objective.metric}": best.values[0] if best else None,
            "best_trial": best.number if best else None,
            # the best was the k-th of this strategy's trials (k = best_at, of `trials`)
            "best_at": 1 + [t.number for t in counted].index(best.number) if best else None,
            # wall time from the search's first trial start to the end of this strategy's best trial
            "time_to_best_s": (round((best.datetime_complete - start).total_seconds(), 3)
                               if best and best.datetime_complete and start else None),
        }
        if spec.multi_objective:
            row["pareto"] = sum(t.number in front for t in complete)
        out[name] = StrategyResult(strategy=name, share=shares[name], trials=mine, best_trial=best,
                                   summary=row, space=spec.space)
    return out


def best_so_far(result) -> dict[str, list[float]]:
    """strategy -> best first-objective value after each of its counted trials (None before any)."""
    spec = result.spec
    sign = 1.0 if spec.objectives[0].direction == "maximize" else -1.0
    curves: dict[str, list[float]] = {}
    for name, part in by_strategy(result).items():
        best, curve = None, []
        for t in part.trials:
            if not counts_toward_target(t):
                continue
            if t.state.name == "COMPLETE" and (best is None or sign * t.values[0] > sign * best):
                best = t.values[0]
            curve.append(best)
        curves[name] = curve
    return curves


# -- on the parent run and in the terminal ---------------------------------------------------
def log_strategies(result, tracker) -> None:
    """Per-strategy metrics on the parent run (``best_<metric>.<strategy>``, ``time_to_best_s.<strategy>``,
    ``best_at.<strategy>``, ``n_trials.<strategy>``), the curve ``best_so_far.<strategy>`` (step = the
    strategy's trial count: the UI overlays them), the ``best_strategy`` tag and ``strategies.csv``."""
    parts = by_strategy(result)
    metric = f"best_{result.spec.objectives[0].metric}"
    metrics: dict[str, float] = {}
    for name, part in parts.items():
        row = part.summary
        metrics[f"n_trials.{name}"] = row["trials"]
        for key in (metric, "time_to_best_s", "best_at") + (("pareto",) if "pareto" in row else ()):
            if row.get(key) is not None:
                metrics[f"{key}.{name}"] = row[key]
    tags = {"strategies": ",".join(parts)}
    if result.completed_trials:
        tags["best_strategy"] = strategy_of(result.best_trial, result.spec)
    tracker.log(result.parent_run_id, metrics=metrics, tags=tags)

    points = []
    for name, curve in best_so_far(result).items():
        key = f"best_so_far.{name}"
        logged = max((m.step for m in tracker.client.get_metric_history(result.parent_run_id, key)), default=0)
        points += [(key, v, step) for step, v in enumerate(curve, 1) if v is not None and step > logged]
    tracker.log_points(result.parent_run_id, points)
    tracker.log_text(result.parent_run_id, format_csv(parts), "strategies.csv")


def format_csv(parts: dict[str, StrategyResult]) -> str:
    rows = [p.summary for p in parts.values()]
    header = list(rows[0])
    lines = [",".join(header)] + [",".join("" if r.get(k) is None else str(r[k]) for k in header) for r in rows]
    return "\n".join(lines) + "\n"


def format_table(result) -> list[str]:
    """The strategy comparison as text lines (the CLI prints them)."""
    parts = by_strategy(result)
    metric = f"best_{result.spec.objectives[0].metric}"
    winner = strategy_of(result.best_trial, result.spec) if result.completed_trials else None
    headers = ["strategy", "trials", "complete", "pruned", "failed", metric, "best trial", "found at", "time to best"]
    multi = result.spec.multi_objective
    if multi:
        headers.append("on front")
    rows = []
    for name, part in parts.items():
        r = part.summary
        found = f"{r['best_at']}/{r['trials']}" if r["best_at"] else "-"
        when = f"{r['time_to_best_s']:.1f}s" if r["time_to_best_s"] is not None else "-"
        value = f"{r[metric]:.4f}" if r[metric] is not None else "-"
        row = [name + (" *" if name == winner else ""), str(r["trials"]), str(r["complete"]), str(r["pruned"]),
               str(r["failed"]), value, "-" if r["best_trial"] is None else str(r["best_trial"]), found, when]
        if multi:
            row.append(str(r["pareto"]))
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in [headers] + rows]
