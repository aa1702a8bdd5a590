"""Sample-quality metrics for generators: a Frechet distance in the features of a fixed classifier.

Heusel et al. (2017), "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium", define the Frechet Inception Distance as the Frechet (2-Wasserstein) distance
between Gaussians fitted to the features of real and generated samples:

    d^2 = ||mu_r - mu_g||^2 + Tr(C_r + C_g - 2 (C_r C_g)^{1/2})

The Inception network knows nothing of 8x8 digits or 1-D signals, so the features here are
the penultimate-layer activations of a small MLP classifier trained on the task's own
*training* split (seeded, trained once per process and cached), and the real statistics come
from the held-out split being scored. Alongside it, two label-based scores of the same
classifier: the "inception score" exp(E_x KL(p(y|x) || p(y))) of Salimans et al. (2016),
between 1 and the number of classes, and the share of classes the samples cover.

A collapsed generator cannot game the distance: its features have (almost) no covariance, so
Tr(C_r) stays in the sum, and its mean lands away from mu_r.

Importing this module imports torch: import it inside ``fit``/``evaluate`` only.
"""

from __future__ import annotations

import copy
import hashlib
import threading

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

CLASSIFIER_SEED = 20170626   # fixed: the metric must not depend on the trial's seed
CLASSIFIER_EPOCHS = 40
CLASSIFIER_HIDDEN = (128, 64)  # the 64-unit layer is the feature space
_CACHE: dict[tuple, "FeatureClassifier"] = {}
_LOCK = threading.Lock()


class FeatureClassifier(nn.Module):
    """``D -> 128 -> 64 -> classes`` MLP (ReLU); :meth:`features` are the 64 penultimate units."""

    def __init__(self, n_features: int, n_classes: int):
        super().__init__()
        h1, h2 = CLASSIFIER_HIDDEN
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(n_features, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU())
        self.head = nn.Linear(h2, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _fingerprint(task) -> tuple:
    digest = hashlib.sha1(np.ascontiguousarray(task.x_train, dtype=np.float32).tobytes())
    digest.update(np.ascontiguousarray(task.y_train, dtype=np.int64).tobytes())
    return task.name, task.seed, digest.hexdigest()


def feature_classifier(task, device: torch.device | str = "cpu") -> FeatureClassifier:
    """The task's fixed classifier on ``device`` (trained once per process, in eval mode).

    Trained on CPU with its own seed inside ``torch.random.fork_rng``, so it is the same on
    every machine and does not disturb the caller's random stream (a cache hit and a miss
    leave a trial's results identical).
    """
    key = _fingerprint(task)
    with _LOCK:
        if (*key, "cpu") not in _CACHE:
            _CACHE[(*key, "cpu")] = _train_classifier(task)
        device = torch.device(device)
        if (*key, str(device)) not in _CACHE:  # a copy: Module.to moves in place
            _CACHE[(*key, str(device))] = copy.deepcopy(_CACHE[(*key, "cpu")]).to(device)
        return _CACHE[(*key, str(device))]


def _train_classifier(task) -> FeatureClassifier:
    x = torch.as_tensor(task.x_train, dtype=torch.float32).flatten(1)
    y = torch.as_tensor(task.y_train, dtype=torch.int64).reshape(-1)
    n_classes = int(task.n_classes or int(y.max()) + 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(CLASSIFIER_SEED)
        model = FeatureClassifier(x.shape[1], n_classes)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
        generator = torch.Generator().manual_seed(CLASSIFIER_SEED)
        for _ in range(CLASSIFIER_EPOCHS):
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), 64):
                idx = order[start:start + 64]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of ``(n, d)`` features, in float64."""
    features = np.asarray(features, dtype=np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """``||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^{1/2})`` (Heusel et al., 2017, Sec. 3).

    ``Tr((C1 C2)^{1/2})`` is computed as ``Tr((S C2 S)^{1/2})`` with ``S = C1^{1/2}``: the
    same eigenvalues, but of a symmetric positive semi-definite matrix, so ``eigh`` applies
    and no complex square root is needed.
    """
    vals, vecs = np.linalg.eigh(cov1)
    root1 = (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T
    middle = root1 @ cov2 @ root1
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2.0), 0.0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_root)


class SampleScorer:
    """Scores generated samples against one real split of a task, with the task's fixed classifier.

    Example::

        scorer = SampleScorer(task, task.x_val)
        scorer.score(generated, prefix="val")   # {"val_fid": ..., "val_inception_score": ..., ...}
    """

    def __init__(self, task, x_real, *, device: torch.device | str = "cpu"):
        self.classifier = feature_classifier(task, device)
        self.device = torch.device(device)
        self.n_classes = self.classifier.head.out_features
        real = self._features_logits(x_real)[0]
        self.mu, self.cov = gaussian_stats(real)

    @torch.no_grad()
    def _features_logits(self, x) -> tuple[np.ndarray, torch.Tensor]:
        x = torch.as_tensor(x, dtype=torch.float32, device=self.device).flatten(1)
        features = self.classifier.features(x)
        return features.double().cpu().numpy(), self.classifier.head(features)

    def score(self, samples, *, prefix: str) -> dict[str, float]:
        """``{prefix}_fid``, ``{prefix}_inception_score`` and ``{prefix}_class_coverage`` of ``samples``.

        Coverage: the share of classes that receive at least half their uniform share
        (``0.5 / n_classes``) of the samples' predicted labels.
        """
        features, logits = self._features_logits(samples)
        fid = frechet_distance(self.mu, self.cov, *gaussian_stats(features))
        log_p = F.log_softmax(logits.double(), dim=1)
        p = log_p.exp()
        log_marginal = torch.log(p.mean(0).clamp_min(1e-30))
        inception = torch.exp((p * (log_p - log_marginal)).sum(1).mean())
        counts = torch.bincount(logits.argmax(1), minlength=self.n_classes).double()
        coverage = (counts / counts.sum() >= 0.5 / self.n_classes).double().mean()
        inception, coverage = torch.stack([inception, coverage]).tolist()
        return {f"{prefix}_fid": fid, f"{prefix}_inception_score": inception, f"{prefix}_class_coverage": coverage}
