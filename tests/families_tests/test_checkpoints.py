"""fit_epochs checkpoints through the reporter: save when due, resume from the saved epoch and weights."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from nasforge import training
from nasforge.family import NullReporter
from nasforge.plugins import get_registry
from nasforge.data.builtin_tasks import load_digits_task


class MemoryReporter(NullReporter):
    """Keeps every checkpoint in memory (a round trip through torch.save, as on disk)."""

    def __init__(self, *, every: int = 1, resume_from: dict | None = None):
        super().__init__()
        self.every, self.resume_from = every, resume_from
        self.saved: dict[int, dict] = {}
        self.pending: dict | None = None

    def checkpoint_due(self, step: int) -> bool:
        return step % self.every == 0

    def save_checkpoint(self, state) -> None:
        self.pending = state

    def report(self, step, metrics) -> None:
        super().report(step, metrics)
        if self.pending is not None:   # the checkpoint goes with its report, as with Ray Tune
            self.saved[step], self.pending = roundtrip(self.pending), None

    def load_checkpoint(self):
        return self.resume_from


def roundtrip(state: dict) -> dict:
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _problem(seed: int = 0):
    torch.manual_seed(seed)
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    return x, y, model


def _fit(model, optimizer, x, y, reporter, *, epochs: int, seen: list | None = None, patience=None):
    def train_one_epoch(epoch: int) -> float:
        if seen is not None:
            seen.append((epoch, copy.deepcopy(model.state_dict())))
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    def validate() -> dict[str, float]:
        return training.classification_metrics(training.predict(model, x), y, prefix="val")

    return training.fit_epochs(model, epochs=epochs, reporter=reporter, train_one_epoch=train_one_epoch,
                               validate=validate, patience=patience, optimizer=optimizer)


def test_a_resumed_fit_continues_from_the_saved_epoch_with_the_saved_weights() -> None:
    x, y, model = _problem()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = MemoryReporter(every=2)
    _fit(model, optimizer, x, y, first, epochs=4)
    assert sorted(first.saved) == [2, 4]
    saved = first.saved[2]
    assert saved["epoch"] == 2 and saved["stopper"]["best_epoch"] == 2

    # A new model and optimizer (as a restarted trial builds them), with a new learning rate (as PBT sets it).
    _, _, fresh = _problem(seed=1)
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=3e-3)
    second, seen = MemoryReporter(every=2, resume_from=saved), []
    result = _fit(fresh, fresh_optimizer, x, y, second, epochs=6, seen=seen)

    assert [step for step, _ in second.history] == [3, 4, 5, 6]      # continues after the saved epoch
    assert seen[0][0] == 3
    for name, tensor in saved["model"].items():                      # ... from the saved weights
        assert torch.equal(seen[0][1][name], tensor), name
    group = fresh_optimizer.param_groups[0]
    assert group["lr"] == 3e-3                                       # the new config's lr, not the saved 1e-2
    steps = fresh_optimizer.state[next(iter(fresh.parameters()))]["step"]
    assert int(steps) == 2 + 4                                       # Adam's moments carried over: 2 saved + 4 new
    assert result["epochs_trained"] == 6 and sorted(second.saved) == [4, 6]


def test_a_checkpoint_at_the_last_epoch_resumes_to_its_kept_metrics() -> None:
    x, y, model = _problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    first = MemoryReporter(every=1)
    kept = _fit(model, optimizer, x, y, first, epochs=3, patience=10)
    _, _, fresh = _problem(seed=2)
    second = MemoryReporter(resume_from=first.saved[3])
    again = _fit(fresh, torch.optim.SGD(fresh.parameters(), lr=0.1), x, y, second, epochs=3, patience=10)
    assert second.history == [] and again == kept


def test_without_an_optimizer_nothing_is_saved_or_loaded() -> None:
    x, y, model = _problem()
    reporter = MemoryReporter(resume_from={"epoch": 99})
    result = training.fit_epochs(model, epochs=2, reporter=reporter, train_one_epoch=lambda e: 1.0,
                                 validate=lambda: {"val_loss": 1.0}, patience=None)
    assert reporter.saved == {} and result["epochs_trained"] == 2


@pytest.mark.parametrize("family_name", ["mlp", "cnn", "rnn"])
def test_families_that_declare_checkpoints_save_and_resume(family_name: str) -> None:
    family = get_registry().get("family", family_name)
    assert family.supports_checkpoints
    task = load_digits_task(seed=0)   # rows of the 8x8 images are the rnn's sequence
    config = family.make_config({"lr": 3e-3})
    torch.manual_seed(0)
    model = family.build(config, task)
    first = MemoryReporter(every=1)
    family.fit(model, task, config, {"epochs": 2}, first)
    assert sorted(first.saved) == [1, 2]
    # a copy to compare with: Optimizer.load_state_dict keeps the checkpoint's own tensors (same dtype
    # and device), so the resumed training steps the reporter's copy in place
    saved = copy.deepcopy(first.saved[1])
    torch.manual_seed(1)
    resumed = family.build(family.make_config({"lr": 1e-3}), task)   # other initial weights, other lr (as PBT)
    # What the resumed fit holds when it starts training: the weights and buffers at its first
    # forward pass, the optimizer's state at its first step (both before that step changes them).
    seen = {}

    def first_forward(module, _inputs):
        seen.setdefault("model", {k: v.detach().clone() for k, v in module.state_dict().items()})

    def first_step(optimizer, _args, _kwargs):
        if "optimizer" not in seen:
            seen["optimizer"] = copy.deepcopy(optimizer.state_dict())
            seen["lr"] = optimizer.param_groups[0]["lr"]

    hooks = [resumed.register_forward_pre_hook(first_forward),
             register_optimizer_step_pre_hook(first_step)]
    try:
        second = MemoryReporter(resume_from=first.saved[1])
        family.fit(resumed, task, family.make_config({"lr": 1e-3}), {"epochs": 2}, second)
    finally:
        for hook in hooks:
            hook.remove()
    assert [step for step, _ in second.history] == [2]                      # it went on after epoch 1 ...
    assert seen["model"].keys() == saved["model"].keys()
    for name, tensor in saved["model"].items():                              # ... from the saved weights
        assert torch.equal(seen["model"][name], tensor), name
    state, saved_state = seen["optimizer"]["state"], saved["optimizer"]["state"]
    assert state.keys() == saved_state.keys() and state                      # ... and the optimizer's moments
    for index, values in saved_state.items():
        assert values.keys() == state[index].keys()
        for key, value in values.items():
            assert torch.equal(torch.as_tensor(state[index][key]), torch.as_tensor(value)), (index, key)
    assert seen["lr"] == 1e-3                                                # with the new config's lr
