"""A tiny family for fast tests of the search machinery (registered at run time).

``mode`` makes a trial succeed, raise, or produce a NaN loss; the model is one linear
layer trained for ``budget["epochs"]`` full-batch steps on the task's data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import nasforge
from nasforge.errors import ConfigError


@dataclass(kw_only=True)
class ToyConfig:
    lr: float = 0.1
    mode: str = "ok"        # ok | crash | nan
    width: int = 8
    pause: float = 0.0      # seconds of sleep per epoch: a search that a test can interrupt mid-way

    def __post_init__(self):
        if self.mode not in ("ok", "crash", "nan"):
            raise ConfigError(f"mode {self.mode!r} is not one of ok, crash, nan")


class ToyFamily(nasforge.Family):
    name = "toy"
    task_kinds = ("classification",)
    config_class = ToyConfig
    default_space = "<toy>"
    default_task = "digits"
    budget_unit = "epochs"
    default_budget = 3

    def metrics(self, task):
        return {"val_accuracy": "maximize", "val_loss": "minimize"}

    def build(self, config, task):
        import torch.nn as nn

        return nn.Sequential(nn.Linear(task.input_shape[0], config.width), nn.ReLU(),
                             nn.Linear(config.width, task.n_classes))

    def fit(self, model, task, config, budget, reporter):
        import torch

        x, y = torch.as_tensor(task.x_train), torch.as_tensor(task.y_train)
        opt = torch.optim.SGD(model.parameters(), lr=config.lr)
        metrics = {}
        for epoch in range(1, budget["epochs"] + 1):
            if config.pause:
                time.sleep(config.pause)
            if config.mode == "crash" and epoch == 2:
                raise RuntimeError("toy crash on purpose")
            loss = torch.nn.functional.cross_entropy(model(x), y)
            if config.mode == "nan":
                loss = loss * float("nan")
            opt.zero_grad()
            loss.backward()
            opt.step()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is nan at epoch {epoch}")
            metrics = self.evaluate(model, task, "val")
            reporter.report(epoch, metrics)
        return metrics

    def evaluate(self, model, task, split="test"):
        import torch

        x, y = task.split(split)
        with torch.no_grad():
            logits = model(torch.as_tensor(x))
            loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(y)).item()
            acc = (logits.argmax(1) == torch.as_tensor(y)).float().mean().item()
        return {f"{split}_accuracy": acc, f"{split}_loss": loss}


TOY_SPACE = {
    "params": {
        "lr": {"float": [0.01, 1.0], "log": True},
        "width": {"choice": [4, 8, 16]},
        "mode": "ok",
    }
}


# The same, at ~0.05 s per epoch: tests that signal a running search from outside poll the
# storage, and trials of a few milliseconds would all be done before the signal lands.
SLOW_TOY_SPACE = {"params": {**TOY_SPACE["params"], "pause": 0.05}}


class ToyPlugin:
    @nasforge.hookimpl
    def register_families(self, register):
        register(ToyFamily())
