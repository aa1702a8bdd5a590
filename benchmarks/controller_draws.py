"""What drawing architectures from the controller costs: one at a time against batched walks.

A space with ``repeat`` counts or ``when`` conditions (every weight-sharing space) used to be drawn
one architecture at a time, one LSTM call per token. ``ControllerSampler.draw`` now walks a batch
of architectures in lockstep (one LSTM call per round and decision). Printed side by side, in
one run: the milliseconds per drawn architecture both ways for a few batch sizes (ENAS draws one
epoch's paths at once, its controller batches and its candidates), and an ENAS supernet phase's
CPU seconds in the controller's draws either way (the one-at-a-time walk put back for the baseline;
the same options otherwise).

Usage::

    python benchmarks/controller_draws.py                       # draws on 3 spaces + a cnn/mnist1d phase (~2 min)
    python benchmarks/controller_draws.py --family rnn --task mnist1d_frames --supernet-epochs 10
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import framed_tasks  # noqa: E402  (benchmarks/framed_tasks.py: --task mnist1d_frames)

SPACES = ("cnn_enas", "rnn_enas", "mlp_enas")


def draw_costs(space_name: str, sizes, repeats: int) -> list[tuple[int, float, float]]:
    """``(batch size, ms per architecture one at a time, ms batched)`` on ``space_name``."""
    import numpy as np

    from nasforge.spec.space import SearchSpace
    from nasforge.strategies.controller.sampler import ControllerSampler

    sampler = ControllerSampler(space=SearchSpace.load(space_name), seed=0)
    rows = []
    for k in sizes:
        rng = np.random.default_rng(0)
        started = time.process_time()
        for _ in range(repeats):
            list(sampler._candidates(rng, k, {}))   # one walk per architecture (the multi-trial controller's)
        one = (time.process_time() - started) / (repeats * k)
        started = time.process_time()
        for _ in range(repeats):
            sampler.draw(rng, k)
        rows.append((k, 1e3 * one, 1e3 * (time.process_time() - started) / (repeats * k)))
    return rows


def phase_cpu(args, *, batched: bool) -> tuple[float, float]:
    """An ENAS supernet phase's CPU seconds and its draws' share, drawing batched or one at a time."""
    from nasforge.plugins import get_registry
    from nasforge.spec.space import SearchSpace
    from nasforge.stores.mlflow_runs import Tracker
    from nasforge.strategies.controller.sampler import ControllerSampler
    from nasforge.strategies.oneshot.phase import SupernetPhase
    from nasforge.strategies.oneshot.phase_options import PhaseJob, check_options

    family = get_registry().get("family", args.family)
    space = SearchSpace.load(family.supernet_space)
    original = ControllerSampler.draw
    spent = [0.0]

    def timed_draw(self, rng, n=1):
        started = time.process_time()
        try:
            if batched:
                return original(self, rng, n)
            with self._lock:
                return list(self._candidates(rng, n, {}))
        finally:
            spent[0] += time.process_time() - started

    ControllerSampler.draw = timed_draw
    try:
        with tempfile.TemporaryDirectory(prefix="nasforge-draws-") as folder:
            tracker = Tracker.for_experiment(tracking_uri=f"sqlite:///{folder}/mlflow.db", experiment="draws")
            run_id = tracker.start_run(name="phase", tags={})
            job = PhaseJob(strategy="enas", family=args.family, task=args.task, data_digest=None, space=space,
                           seed=args.seed, options=check_options("enas", {"supernet_epochs": args.supernet_epochs}),
                           top=5, tracking_uri=tracker.tracking_uri, experiment_id=tracker.experiment_id,
                           run_id=run_id)
            result = SupernetPhase(job=job, tracker=tracker).run()
    finally:
        ControllerSampler.draw = original
    return result["compute"]["cpu_s"], spent[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", default="cnn")
    parser.add_argument("--task", default="mnist1d")
    parser.add_argument("--supernet-epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    framed_tasks.register_framed_tasks()
    sizes = (1, 10, 125)
    print("ms per drawn architecture (CPU), one at a time vs batched walk")
    print(f"{'space':10} " + " ".join(f"{f'k={k}: one / batched (ratio)':>31}" for k in sizes))
    for name in SPACES:
        cells = [f"{one:7.3f} / {batched:6.3f} ({one / batched:5.1f}x)" for _, one, batched in
                 draw_costs(name, sizes, args.repeats)]
        print(f"{name:10} " + " ".join(f"{c:>31}" for c in cells))
    phase_cpu(argparse.Namespace(**{**vars(args), "supernet_epochs": 1}), batched=True)   # warm up: imports, task, store
    before, before_draws = phase_cpu(args, batched=False)
    after, after_draws = phase_cpu(args, batched=True)
    print(f"\nENAS supernet phase, {args.family}/{args.task}, {args.supernet_epochs} epochs, seed {args.seed}: the "
          f"controller's draws took {before_draws:.2f} of its {before:.1f} CPU s one at a time, {after_draws:.2f} of "
          f"{after:.1f} batched ({before_draws / max(after_draws, 1e-9):.1f}x less; the two phases draw different "
          "paths, so the rest of their time differs too)")


if __name__ == "__main__":
    main()
