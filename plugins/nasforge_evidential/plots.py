"""The regression figure of Deep Evidential Regression (Amini et al., 2020, Figure 3), for 1-D inputs."""

from __future__ import annotations

import numpy as np


def regression_figure(family, model, task, *, n_stds: int = 3):
    """Training data, the true curve (where known), ``gamma`` and epistemic bands over the test range.

    The test range is the test inputs plus the task's OOD test inputs (the cubic toy's
    ``linspace(-7, 7)``). Bands are ``gamma +- k sqrt(Var[mu])`` for ``k`` in
    ``linspace(0, n_stds, 4)``, as in the official plot; dashed lines mark the training
    range. Returns a ``matplotlib.figure.Figure`` (no pyplot, so no GUI backend is touched).
    """
    from matplotlib.figure import Figure

    ood = task.info.get("ood", {}).get("test")
    ood_y = task.info.get("ood_targets", {}).get("test")
    x = np.concatenate([task.x_test, ood]) if ood is not None else np.asarray(task.x_test)
    order = np.argsort(x[:, 0])
    x = x[order]
    out = family.predict(model, x)
    gamma, std = out["gamma"][:, 0], np.sqrt(out["epistemic"][:, 0])

    fig = Figure(figsize=(6, 3.5), dpi=120)
    ax = fig.add_subplot()
    ax.scatter(task.x_train[:, 0], task.y_train[:, 0], s=1.0, c="#463c3c", zorder=0, label="train")
    if ood is None or ood_y is not None:
        y_true = np.concatenate([task.y_test, ood_y]) if ood is not None else np.asarray(task.y_test)
        ax.plot(x[:, 0], y_true[order, 0], "r--", zorder=2, label="true")
    ax.plot(x[:, 0], gamma, color="#007cab", zorder=3, label="prediction $\\gamma$")
    for i, k in enumerate(np.linspace(0, n_stds, 4)):
        ax.fill_between(x[:, 0], gamma - k * std, gamma + k * std, alpha=0.3, facecolor="#00aeef",
                        linewidth=0, zorder=1, label="epistemic $\\pm k\\sqrt{Var[\\mu]}$" if i == 1 else None)
    low, high = task.info.get("train_range", (float(task.x_train.min()), float(task.x_train.max())))
    for edge in (low, high):
        ax.axvline(edge, color="k", linestyle="--", alpha=0.4, zorder=0)
    span = np.abs(task.y_train).max()
    ax.set_ylim(-2.5 * span, 2.5 * span)
    ax.set_xlim(x[0, 0], x[-1, 0])
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig
