"""One split's evaluation: a forward pass over its inputs and its OOD inputs, then every metric.

Imports torch: import it lazily (inside ``fit`` / ``evaluate``).
"""

from __future__ import annotations

import numpy as np
import torch

from nasforge.data.tasks import Task
from nasforge.training import predict, to_tensors
from nasforge_evidential import losses, metrics
from nasforge_evidential.tasks import ood_inputs


class EvalData:
    """A task's splits as tensors on one device (regression targets ``(N, d)``).

    For each split in ``eval_splits`` (default: all) it also holds ``x_eval``, the split's
    inputs followed by its OOD inputs (one forward pass evaluates both), the targets on the
    host, and the OOD targets where the task knows them (``info["ood_targets"]``).
    """

    def __init__(self, task: Task, device, splits, *, eval_splits=None):
        tensors = to_tensors(task, device, splits=splits)
        self.x, self.y, self.x_eval, self.y_host, self.y_ood = {}, {}, {}, {}, {}
        for split in splits:
            x, y = tensors.split(split)
            self.x[split] = x
            self.y[split] = y.reshape(len(y), -1) if task.kind == "regression" else y
        for split in splits if eval_splits is None else eval_splits:
            ood = torch.as_tensor(ood_inputs(task, split), dtype=torch.float32, device=device)
            self.x_eval[split] = torch.cat([self.x[split], ood.reshape(len(ood), *self.x[split].shape[1:])])
            y = np.asarray(task.split(split)[1])
            self.y_host[split] = y.reshape(len(y), -1).astype(float) if task.kind == "regression" else y
            targets = task.info.get("ood_targets", {}).get(split)
            if targets is not None:
                self.y_ood[split] = np.asarray(targets, dtype=float).reshape(len(targets), -1)


def split_metrics(model, mode: str, data: EvalData, split: str, *, lam: float | None = None,
                  kl_weight: float = 0.0) -> dict[str, float]:
    """Everything reported for one split, from one forward pass over it and its OOD inputs.

    ``{split}_loss`` (the training objective) is included when ``lam`` is given.
    """
    n, y = len(data.x[split]), data.y[split]
    out = predict(model, data.x_eval[split])            # the split's inputs, then its OOD inputs
    result = {}
    if lam is not None and mode == "classification":
        loss = losses.evidential_classification_loss(out[:n], y, kl_weight=kl_weight)
        result[f"{split}_loss"] = loss.mean().item()
    host = out.double().cpu().numpy()
    y_host = data.y_host[split]
    if mode == "regression":
        gamma, nu, alpha, beta = np.split(host, 4, axis=-1)
        result.update(metrics.regression_metrics(gamma[:n], nu[:n], alpha[:n], beta[:n], y_host, prefix=split))
        if lam is not None:   # eq. 10 from the NLL just computed: NLL + lambda |y - gamma| (2 nu + alpha)
            reg = np.abs(y_host - gamma[:n]) * (2.0 * nu[:n] + alpha[:n])
            result[f"{split}_loss"] = result[f"{split}_nll"] * y_host.shape[1] + lam * float(reg.sum(axis=1).mean())
        epistemic = (beta / (nu * (alpha - 1.0))).mean(axis=1)
        result.update(metrics.ood_metrics(epistemic[:n], epistemic[n:], prefix=split, name="epistemic"))
        if split in data.y_ood:   # the task knows the OOD targets (the cubic toy)
            result[f"{split}_rmse_ood"] = float(np.sqrt(np.mean((gamma[n:] - data.y_ood[split]) ** 2)))
    else:
        uncertainty = host.shape[1] / host.sum(axis=1)
        result.update(metrics.classification_metrics(host[:n], y_host, prefix=split))
        result.update(metrics.ood_metrics(uncertainty[:n], uncertainty[n:], prefix=split, name="uncertainty"))
    return result
