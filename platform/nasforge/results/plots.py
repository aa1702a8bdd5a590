"""Summary plots of a finished search, logged as PNGs under ``plots/`` on its parent MLflow run.

* ``optimization_history.png``: each completed trial's objective value(s) and the best so far;
* ``param_importances.png`` (+ ``.json``): Optuna's fANOVA importances, one panel per objective;
* ``parallel_coordinates.png``: every completed trial as a line across its parameters;
* ``pareto_front.png``: multi-objective searches only, the front over all completed trials;
* ``controller.png``: the controller strategy's reward and entropy per REINFORCE update.

Figures are drawn on ``matplotlib.figure.Figure`` with the Agg canvas: no pyplot, no global
style or backend change, no window. A plot that cannot be drawn is skipped with a line in
``plots/notes.txt``; an error in one is a warning and a note, never a failed search.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from typing import Any, Callable

ARTIFACT_DIR = "plots"
NOTES_FILE = "notes.txt"
DPI = 80
MAX_AXES = 10  # parallel coordinates: the most important parameters beyond this are left out


class Skip(Exception):
    """A plot that does not apply to this search (the reason goes to ``notes.txt``)."""


def log_summary_plots(result, tracker) -> list[str]:
    """Draw every summary plot of ``result`` and log it on its parent run; never raises.

    Returns the artifact paths logged (``plots/<name>.png``, ``plots/notes.txt``).
    """
    try:
        return _log_summary_plots(result, tracker)
    except Exception as exc:  # the search itself succeeded: its plots are a convenience
        warnings.warn(f"could not log the search's summary plots: {type(exc).__name__}: {exc}", stacklevel=2)
        return []


def _log_summary_plots(result, tracker) -> list[str]:
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="nasforge-plots-") as tmp:
        importances: dict[str, dict[str, float]] = {}
        plots: list[tuple[str, Callable[[], Any]]] = [
            ("optimization_history", lambda: optimization_history(result)),
            ("param_importances", lambda: param_importances(result, importances)),
            ("parallel_coordinates", lambda: parallel_coordinates(result, importances)),
            ("pareto_front", lambda: pareto_front(result)),
            ("controller", lambda: controller_curves(result)),
        ]
        for name, draw in plots:
            try:
                figure = draw()
                figure.savefig(os.path.join(tmp, f"{name}.png"), dpi=DPI)
            except Skip as reason:
                notes.append(f"{name}: skipped: {reason}")
            except Exception as exc:
                message = f"{name}: failed: {type(exc).__name__}: {exc}"
                warnings.warn(f"summary plot {message}", stacklevel=3)
                notes.append(message)
        if importances:
            with open(os.path.join(tmp, "param_importances.json"), "w") as f:
                json.dump(importances, f, indent=1)
        with open(os.path.join(tmp, NOTES_FILE), "w") as f:  # always: a resumed search replaces the old one
            f.write("\n".join(notes or ["every plot was drawn"]) + "\n")
        files = sorted(os.listdir(tmp))
        tracker.log_artifacts(result.parent_run_id, tmp, ARTIFACT_DIR)
    return [f"{ARTIFACT_DIR}/{f}" for f in files]


# -- helpers ---------------------------------------------------------------------------
def _figure(n_panels: int = 1, *, width: float = 6.4, height: float = 4.0, sharex: bool = False,
            left: float = 0.9, bottom: float = 0.55, right: float = 0.25):
    """A figure on the Agg canvas with ``n_panels`` stacked axes; margins in inches (fixed margins:
    matplotlib's constrained layout doubled the drawing time)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    total = height * n_panels
    figure = Figure(figsize=(width, total))
    FigureCanvasAgg(figure)
    figure.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / total,
                           top=1 - 0.35 / total, hspace=0.3)
    axes = figure.subplots(n_panels, 1, sharex=sharex, squeeze=False)[:, 0]
    return figure, list(axes)


def _completed(result) -> list:
    trials = result.completed_trials
    if not trials:
        raise Skip("no completed trial")
    return trials


def _label(obj) -> str:
    return f"{obj.metric} ({obj.direction})"


# -- the plots -------------------------------------------------------------------------
def optimization_history(result):
    """Objective value of each completed trial and the best so far (one panel per objective);
    strategies run side by side get one colour and one best-so-far line each."""
    from matplotlib.ticker import MaxNLocator

    trials = _completed(result)
    objectives = result.spec.objectives
    # the legend sits in a right margin of its own, so it never covers a point
    figure, axes = _figure(len(objectives), width=8.6, right=2.2, height=3.2 if len(objectives) > 1 else 4.0,
                           sharex=True)
    strategies = list(getattr(result.spec, "strategies", ()) or ())
    if len(strategies) > 1:
        groups = [(name, [t for t in trials if t.user_attrs.get("strategy", strategies[0]) == name])
                  for name in strategies]
    else:
        groups = [("", trials)]
    for i, (ax, obj) in enumerate(zip(axes, objectives)):
        better = max if obj.direction == "maximize" else min
        for k, (name, members) in enumerate(groups):
            if not members:
                continue
            colour = f"C{k}" if name else "tab:blue"
            numbers, values = [t.number for t in members], [t.values[i] for t in members]
            ax.scatter(numbers, values, s=18, color=colour, alpha=0.7, label=name or "trial")
            best, running = [], None
            for value in values:
                running = value if running is None else better(running, value)
                best.append(running)
            ax.step(numbers, best, where="post", color=colour if name else "tab:red",
                    label=f"best so far ({name})" if name else "best so far")
        ax.set_ylabel(_label(obj))
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize="small")
    axes[-1].set_xlabel("trial")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_title(f"optimization history: {result.study.study_name}", fontsize="medium")
    return figure


def compute_importances(result) -> dict[str, dict[str, float]]:
    """fANOVA importances per objective (metric -> {param: importance}); :class:`Skip` when
    they cannot mean anything: fewer than 2 completed trials, a single distinct objective
    value, or no parameter that varied."""
    import optuna

    trials = _completed(result)
    if len(trials) < 2:
        raise Skip(f"importances need at least 2 completed trials, the search has {len(trials)}")
    varied = {name for name in {n for t in trials for n in t.params}
              if len({json.dumps(t.params.get(name), default=str) for t in trials}) > 1}
    if not varied:
        raise Skip("no parameter took more than one value")
    out: dict[str, dict[str, float]] = {}
    for i, obj in enumerate(result.spec.objectives):
        values = {t.values[i] for t in trials}
        if len(values) < 2 or not all(math.isfinite(v) for v in values):
            continue
        # 32 trees: steady ranks for searches of tens of trials, at half the time of Optuna's 64
        evaluator = optuna.importance.FanovaImportanceEvaluator(n_trees=32, seed=result.spec.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = optuna.importance.get_param_importances(
                result.study, evaluator=evaluator, target=lambda t, i=i: t.values[i])
        out[obj.metric] = {k: float(v) for k, v in scores.items()}
    if not out:
        raise Skip("every completed trial has the same objective value")
    return out


def param_importances(result, into: dict | None = None):
    """Horizontal bars of :func:`compute_importances` (``into`` receives the numbers)."""
    importances = compute_importances(result)
    if into is not None:
        into.update(importances)
    longest = max(len(name) for scores in importances.values() for name in scores)
    figure, axes = _figure(len(importances), height=max(2.0, 0.35 * max(map(len, importances.values())) + 1.2),
                           left=min(3.2, 0.3 + 0.075 * longest))
    for ax, (metric, scores) in zip(axes, importances.items()):
        names = list(scores)[::-1]  # most important on top
        ax.barh(names, [scores[n] for n in names], color="tab:blue")
        for y, name in enumerate(names):
            ax.text(scores[name], y, f" {scores[name]:.2f}", va="center", fontsize="small")
        ax.set_xlim(0, 1.1)
        ax.set_xlabel(f"importance for {metric} (fANOVA)")
    axes[0].set_title("parameter importances", fontsize="medium")
    return figure


def _axis(dist) -> tuple[Callable[[Any], float], list[tuple[float, str]]]:
    """A map of one parameter's values to [0, 1] and a few (position, label) ticks (at most 8)."""
    import optuna.distributions as d

    if isinstance(dist, d.CategoricalDistribution):
        choices = [json.dumps(c, default=str) for c in dist.choices]
        n = max(len(choices) - 1, 1)
        position = {c: i / n for i, c in enumerate(choices)}
        shown = choices if len(choices) <= 8 else [choices[0], choices[-1]]
        return (lambda v: position[json.dumps(v, default=str)],
                [(position[c], str(json.loads(c))[:12]) for c in shown])
    low, high = float(dist.low), float(dist.high)
    if getattr(dist, "log", False) and low > 0:
        to = math.log
    else:
        def to(v):
            return v
    lo, hi = to(low), to(high)
    span = (hi - lo) or 1.0

    def fmt(v: float) -> str:
        return f"{int(v)}" if isinstance(dist, d.IntDistribution) else f"{v:.3g}"
    return (lambda v: (to(float(v)) - lo) / span), [(0.0, fmt(low)), (1.0, fmt(high))]


def parallel_coordinates(result, importances: dict | None = None):
    """Every completed trial as a line across its parameters, coloured by the first objective.

    Conditional parameters a trial did not use leave a gap in its line. With more than
    ``MAX_AXES`` varied parameters, only the most important are drawn.
    """
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    trials = _completed(result)
    if len(trials) < 2:
        raise Skip("parallel coordinates need at least 2 completed trials")
    dists: dict[str, Any] = {}
    for t in trials:
        for name, dist in t.distributions.items():
            dists.setdefault(name, dist)
    names = [n for n in dists if len({json.dumps(t.params.get(n), default=str) for t in trials}) > 1]
    if not names:
        raise Skip("no parameter took more than one value")
    first = result.spec.objectives[0]
    ranking = (importances or {}).get(first.metric)
    if ranking:
        names.sort(key=lambda n: -ranking.get(n, -1.0))
    names = names[:MAX_AXES]
    axes_maps = [_axis(dists[n]) for n in names]
    values = [t.values[0] for t in trials]
    lo, hi = min(values), max(values)
    norm = Normalize(lo, hi if hi > lo else lo + 1)
    cmap = colormaps["viridis" if first.direction == "maximize" else "viridis_r"]
    longest = max(len(name) for name in names + [first.metric])
    figure, (ax,) = _figure(width=max(6.4, 1.1 * (len(names) + 1)), height=4.2 + 0.05 * longest,
                            left=0.3, bottom=0.35 + 0.04 * longest)
    xs = list(range(len(names) + 1))
    # best trials are drawn last, on top
    order = sorted(range(len(trials)), key=lambda j: values[j] if first.direction == "maximize" else -values[j])
    for j in order:
        t = trials[j]
        ys = [to(t.params[n]) if n in t.params else math.nan for n, (to, _) in zip(names, axes_maps)]
        ys.append(norm(values[j]))
        ax.plot(xs, ys, color=cmap(norm(values[j])), alpha=0.8, linewidth=1.2)
    for x, (_, ticks) in zip(xs, axes_maps):
        ax.axvline(x, color="0.4", linewidth=0.8)
        for y, text in ticks:
            ax.text(x, y, f" {text}", fontsize="x-small", va="center")
    ax.axvline(xs[-1], color="0.4", linewidth=0.8)
    ax.text(xs[-1], 0.0, f" {lo:.4g}", fontsize="x-small", va="center")
    ax.text(xs[-1], 1.0, f" {hi:.4g}", fontsize="x-small", va="center")
    ax.set_xticks(xs, names + [first.metric], rotation=30, ha="right", fontsize="small")
    ax.set_yticks([])
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlim(-0.2, xs[-1] + 0.6)
    ax.set_title(f"parallel coordinates ({len(trials)} completed trials, colour: {first.metric})",
                 fontsize="medium")
    return figure


def pareto_front(result):
    """Multi-objective searches: every completed trial, the Pareto front highlighted, per pair
    of objectives (the first three pairs)."""
    spec = result.spec
    if not spec.multi_objective:
        raise Skip("single-objective search")
    trials = _completed(result)
    front = {t.number for t in result.best_trials}
    pairs = [(i, j) for i in range(len(spec.objectives)) for j in range(i + 1, len(spec.objectives))][:3]
    figure, axes = _figure(len(pairs), height=4.0)
    for ax, (i, j) in zip(axes, pairs):
        rest = [t for t in trials if t.number not in front]
        best = sorted((t for t in trials if t.number in front), key=lambda t: t.values[i])
        ax.scatter([t.values[i] for t in rest], [t.values[j] for t in rest], s=16, color="0.6", label="trial")
        ax.plot([t.values[i] for t in best], [t.values[j] for t in best], "o-", color="tab:red",
                markersize=5, label=f"Pareto front ({len(best)})")
        ax.set_xlabel(_label(spec.objectives[i]))
        ax.set_ylabel(_label(spec.objectives[j]))
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    axes[0].set_title("Pareto front", fontsize="medium")
    return figure


def controller_history(study) -> list[dict[str, Any]]:
    """The controller's per-update curves saved in the study ([] when it did not run)."""
    from nasforge.strategies.controller.state import has_state, load

    if not has_state(study):
        return []
    snapshot = load(study)[0]
    return list(snapshot.get("history", [])) if snapshot else []


def controller_curves(result):
    """Per REINFORCE update: the reward (the objective), the shaped reward the policy learns from
    against its baseline, and the policy's entropy."""
    from matplotlib.ticker import MaxNLocator

    history = controller_history(result.study)
    if not history:
        raise Skip("no controller curves (another strategy, or no REINFORCE update yet)")
    steps = [h["step"] for h in history]
    figure, axes = _figure(3, height=2.4, sharex=True)
    panels = [("reward", (("mean_reward", "o-"), ("max_reward", "^--"))),
              ("shaped reward", (("mean_shaped_reward", "o-"), ("baseline", "-"))),
              ("policy entropy", (("entropy", "o-"),))]
    for ax, (label, curves) in zip(axes, panels):
        for key, style in curves:
            if all(key in h for h in history):
                ax.plot(steps, [h[key] for h in history], style, markersize=3, label=key)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if len(curves) > 1:
            ax.legend(loc="best", fontsize="small")
    axes[-1].set_xlabel("controller update")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_title("controller (REINFORCE) curves", fontsize="medium")
    return figure
