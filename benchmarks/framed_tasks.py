"""MNIST-1D as a short sequence of frames, for the recurrent rows of ``weight_sharing.py``.

The task ``mnist1d`` gives the rnn family its 40 samples one per step: ENAS's cell stays at chance
there for 10 epochs at the space's learning rate, and 100 trials of 40-step Python-loop cells are
more than 2 cores allow. ``mnist1d_frames`` is the same data (train, validation and test rows and
labels unchanged) read as 8 steps of 5 consecutive samples, as sequence models read MNIST row by
row: 1,000 test rows, where ``digits`` has 270, and cells that differ by 30 points after 10 epochs.
"""

from __future__ import annotations

import dataclasses

from nasforge.hookspecs import hookimpl

NAME, STEPS = "mnist1d_frames", 8


def load_mnist1d_frames(seed: int):
    from nasforge.data.builtin_tasks import load_mnist1d_task

    task = load_mnist1d_task(seed)
    return dataclasses.replace(task, name=NAME, info={"sequence_shape": (STEPS, 40 // STEPS)})


class FramedTasks:
    """A plugin with task ``mnist1d_frames``."""

    @hookimpl
    def register_tasks(self, register):
        from nasforge.data.tasks import TaskDef

        register(TaskDef(name=NAME, kind="classification", load=load_mnist1d_frames,
                         description=f"MNIST-1D as {STEPS} frames of {40 // STEPS} samples (benchmarks only)"))


def register_framed_tasks() -> None:
    """Register :class:`FramedTasks` in this process, once."""
    from nasforge.plugins import get_registry, register

    if NAME not in get_registry().names("task"):
        register(FramedTasks(), name="benchmark-framed-tasks")
