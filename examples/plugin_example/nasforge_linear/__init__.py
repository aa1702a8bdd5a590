"""An example third-party nasforge plugin: softmax regression (a linear classifier).

Install it next to nasforge (`pip install ./examples/plugin_example`) and
`nasforge search linear --task digits` finds it through its entry point.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nasforge

__version__ = "0.1.0"


@dataclass(kw_only=True)
class LinearConfig:
    lr: float = 0.1
    weight_decay: float = 0.0


class LinearFamily(nasforge.Family):
    name = "linear"
    task_kinds = ("classification",)
    config_class = LinearConfig
    default_space = str(Path(__file__).with_name("space.yaml"))
    default_task = "digits"
    budget_unit = "epochs"
    default_budget = 10

    def metrics(self, task):
        return {"val_accuracy": "maximize", "val_loss": "minimize"}

    def build(self, config, task):
        import torch

        return torch.nn.Linear(task.input_shape[0], task.n_classes)

    def fit(self, model, task, config, budget, reporter):
        import torch

        x, y = torch.as_tensor(task.x_train), torch.as_tensor(task.y_train)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        metrics = {}
        for epoch in range(1, budget["epochs"] + 1):
            for idx in torch.randperm(len(x)).split(64):
                loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            metrics = self.evaluate(model, task, "val")
            reporter.report(epoch, metrics)
        return metrics

    def evaluate(self, model, task, split="test"):
        import torch

        x, y = (torch.as_tensor(a) for a in task.split(split))
        with torch.no_grad():
            logits = model(x)
        return {f"{split}_accuracy": (logits.argmax(1) == y).float().mean().item(),
                f"{split}_loss": torch.nn.functional.cross_entropy(logits, y).item()}


@nasforge.hookimpl
def register_families(register):
    register(LinearFamily())
