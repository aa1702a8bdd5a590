"""Accuracy and uncertainty metrics of evidential outputs (numpy and scipy.special only: they run every epoch).

Each function takes a split's outputs (already on the host as float64 numpy arrays) and
returns ``{prefix}_<metric>`` floats:

* regression: ``rmse``, ``nll`` (of the Student-t predictive, eq. 7 of Amini et al. 2020),
  ``calibration_error`` (of its quantiles, Kuleshov et al. 2018), mean ``aleatoric`` and
  ``epistemic`` variances;
* classification: ``accuracy``, ``nll`` (``-log`` of the expected probability of the true
  class), ``ece`` (15 equal-width confidence bins, Guo et al. 2017), mean ``uncertainty``
  ``u = K / S`` (Sensoy et al. 2018);
* both: ``ood_auroc``, the area under the ROC curve of the epistemic score (regression:
  ``Var[mu]``; classification: ``u``) for telling OOD inputs from the split's own, and
  ``<score>_ood``, the mean score on the OOD inputs.
"""

from __future__ import annotations

import numpy as np
from scipy import special

QUANTILES = np.linspace(0.05, 0.95, 19)   # expected confidence levels of the calibration curve
ECE_BINS = 15


def regression_metrics(gamma, nu, alpha, beta, y, *, prefix: str) -> dict[str, float]:
    """Metrics of NIG outputs ``(N, d)`` against targets ``y`` ``(N, d)``.

    The predictive is Student-t with ``2 alpha`` degrees of freedom, location ``gamma`` and
    scale ``sqrt(beta (1 + nu) / (nu alpha))`` (Amini et al., 2020, eq. 7); its log density
    and CDF are written with scipy's special functions (``stdtr`` is the Student-t CDF),
    which avoids ``scipy.stats``' per-call overhead in a per-epoch metric.
    """
    err = y - gamma
    df, scale2 = 2.0 * alpha, beta * (1.0 + nu) / (nu * alpha)
    log_pdf = (special.gammaln((df + 1.0) / 2.0) - special.gammaln(df / 2.0) - 0.5 * np.log(np.pi * df * scale2)
               - (df + 1.0) / 2.0 * np.log1p(err ** 2 / (scale2 * df)))
    aleatoric = beta / (alpha - 1.0)
    return {
        f"{prefix}_rmse": float(np.sqrt(np.mean(err ** 2))),
        f"{prefix}_nll": float(-np.mean(log_pdf)),
        f"{prefix}_calibration_error": calibration_error(special.stdtr(df, err / np.sqrt(scale2))),
        f"{prefix}_aleatoric": float(np.mean(aleatoric)),
        f"{prefix}_epistemic": float(np.mean(aleatoric / nu)),
    }


def calibration_error(cdf_values) -> float:
    """Mean ``|observed - expected|`` over confidence levels 0.05, ..., 0.95 (Kuleshov et al., 2018).

    ``cdf_values`` are the predictive CDFs at the true targets (PIT values); the observed
    level for ``p`` is the fraction of them below ``p``. 0 is perfectly calibrated.
    """
    pit = np.asarray(cdf_values).reshape(-1)
    observed = (pit[None, :] <= QUANTILES[:, None]).mean(axis=1)
    return float(np.mean(np.abs(observed - QUANTILES)))


def classification_metrics(alpha, y, *, prefix: str) -> dict[str, float]:
    """Metrics of Dirichlet concentrations ``alpha`` ``(N, K)`` against class indices ``y``."""
    strength = alpha.sum(axis=1)
    p = alpha / strength[:, None]
    predicted = p.argmax(axis=1)
    p_true = p[np.arange(len(y)), y]
    return {
        f"{prefix}_accuracy": float(np.mean(predicted == y)),
        f"{prefix}_nll": float(-np.mean(np.log(p_true))),
        f"{prefix}_ece": expected_calibration_error(p.max(axis=1), predicted == y),
        f"{prefix}_uncertainty": float(np.mean(alpha.shape[1] / strength)),
    }


def expected_calibration_error(confidence, correct, *, bins: int = ECE_BINS) -> float:
    """ECE (Guo et al., 2017): ``sum_b |B_b| / N * |accuracy(B_b) - confidence(B_b)|``."""
    confidence, correct = np.asarray(confidence), np.asarray(correct, dtype=float)
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)   # bins (i/B, (i+1)/B]
    gap = np.abs(np.bincount(which, correct, bins) - np.bincount(which, confidence, bins))
    return float(gap.sum() / max(len(confidence), 1))


def ood_metrics(score_in, score_out, *, prefix: str, name: str) -> dict[str, float]:
    """``{prefix}_ood_auroc`` (OOD is the positive class) and ``{prefix}_{name}_ood``."""
    score_out = np.ravel(score_out)
    return {f"{prefix}_ood_auroc": auroc(score_in, score_out), f"{prefix}_{name}_ood": float(np.mean(score_out))}


def auroc(score_negative, score_positive) -> float:
    """Area under the ROC curve: ``P(positive scores higher) + 0.5 P(tie)`` (the Mann-Whitney U statistic).

    Equal to ``sklearn.metrics.roc_auc_score`` (the tests check it, ties included) at ~50
    microseconds instead of ~7 ms per call, which matters when it runs every epoch.
    """
    negative = np.sort(np.ravel(score_negative))
    positive = np.ravel(score_positive)
    below = np.searchsorted(negative, positive, side="left")
    ties = np.searchsorted(negative, positive, side="right") - below
    return float((below.sum() + 0.5 * ties.sum()) / (len(positive) * len(negative)))
