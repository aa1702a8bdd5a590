"""GPU check of the Ray executor: four MLP trials packed on one GPU (``gpus_per_trial=0.25``).

On a machine with CUDA this starts a local Ray, runs a 4-trial search of the built-in ``mlp``
family on ``digits`` through ``nasforge.search(backend="ray", gpus_per_trial=0.25)`` with a
run-time registered probe family (the MLP, plus measurements), and prints, for every trial:

* what the trial saw: ``torch.cuda.is_available()``, the device its tensors were on, the GPU
  ids Ray gave it (``ray.get_gpu_ids()``) and ``CUDA_VISIBLE_DEVICES``;
* memory: allocated and reserved when the trial started (a worker reused from an earlier
  trial must start near 0: that trial released its memory), the peak during the trial, and
  what was still allocated when training ended (the model, freed right after);
* when it ran, to show that the four trials overlapped on the one GPU.

Without CUDA it says so and exits 0.

Usage::

    python benchmarks/ray_gpu_check.py [--trials 4] [--gpus-per-trial 0.25] [--epochs 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time

import nasforge
from nasforge_mlp.family import MLPFamily

MB = 2**20


class GpuProbeFamily(MLPFamily):
    """The MLP family, measuring the GPU around ``fit`` (the numbers come back as metrics)."""

    name = "gpu_probe"

    def fit(self, model, task, config, budget, reporter):
        import ray
        import torch

        available = torch.cuda.is_available()
        probe = {"cuda_available": float(available), "started_at": time.time()}
        if available:
            probe.update(alloc_at_start_mb=torch.cuda.memory_allocated() / MB,
                         reserved_at_start_mb=torch.cuda.memory_reserved() / MB)
            torch.cuda.reset_peak_memory_stats()
        metrics = dict(super().fit(model, task, config, budget, reporter))
        device = next(model.parameters()).device
        probe.update(on_cuda=float(device.type == "cuda"), ended_at=time.time())
        if available:
            probe.update(peak_mb=torch.cuda.max_memory_allocated() / MB,
                         alloc_at_end_mb=torch.cuda.memory_allocated() / MB)
        print(f"[trial in pid {os.getpid()}] torch.cuda.is_available()={available} device={device} "
              f"ray.get_gpu_ids()={ray.get_gpu_ids()} CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')} "
              + " ".join(f"{k}={v:.2f}" for k, v in probe.items() if k.endswith("_mb")), flush=True)
        metrics.update(probe)
        return metrics


class ProbePlugin:
    @nasforge.hookimpl
    def register_families(self, register):
        register(GpuProbeFamily())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--gpus-per-trial", type=float, default=0.25)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print(f"no GPU present (torch {torch.__version__}: torch.cuda.is_available() is False); "
              "nothing to check on this machine")
        return 0
    import ray

    print(f"driver: {torch.cuda.device_count()} GPU(s), GPU 0 = {torch.cuda.get_device_name(0)}, "
          f"{torch.cuda.get_device_properties(0).total_memory / MB:.0f} MiB")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", num_gpus=1, include_dashboard=False, logging_level=logging.WARNING)   # one GPU: all trials share it
    nasforge.register(ProbePlugin(), name="gpu-probe")
    # the MLP's own space, minus its "family: mlp" line (the probe is a family of its own name)
    space = {k: v for k, v in dict(nasforge.SearchSpace.load("mlp").raw).items() if k != "family"}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            result = nasforge.search(
                "gpu_probe", task="digits", space=space, strategy="random", trials=args.trials, budget=args.epochs,
                seed=0, backend="ray", gpus_per_trial=args.gpus_per_trial, save_models=False,
                tracking_uri=f"sqlite:///{tmp}/mlflow.db", storage=f"sqlite:///{tmp}/optuna.db")
    finally:
        ray.shutdown()

    rows = []
    for trial in result.trials:
        m = trial.user_attrs.get("metrics", {})
        rows.append((trial.number, trial.state.name, m))
    t0 = min((m["started_at"] for _, _, m in rows if "started_at" in m), default=0.0)
    print(f"\n{'trial':>5} {'state':>8} {'cuda':>5} {'on_cuda':>7} {'alloc@start':>11} {'reserved@start':>14} "
          f"{'peak':>8} {'alloc@end':>9} {'ran (s from first start)':>26}")
    for number, state, m in rows:
        if "started_at" not in m:
            print(f"{number:>5} {state:>8}  (no measurements: {result.trials[number].user_attrs.get('status_reason')})")
            continue
        print(f"{number:>5} {state:>8} {m['cuda_available']:>5.0f} {m['on_cuda']:>7.0f} "
              f"{m.get('alloc_at_start_mb', 0):>9.2f}MB {m.get('reserved_at_start_mb', 0):>12.2f}MB "
              f"{m.get('peak_mb', 0):>6.2f}MB {m.get('alloc_at_end_mb', 0):>7.2f}MB "
              f"{m['started_at'] - t0:>12.1f} .. {m['ended_at'] - t0:.1f}")
    spans = sorted((m["started_at"], m["ended_at"]) for _, _, m in rows if "started_at" in m)
    overlap = max((sum(1 for s, e in spans if s <= t < e) for t, _ in spans), default=0)
    ok = all(state == "COMPLETE" and m.get("on_cuda") == 1.0 for _, state, m in rows)
    print(f"\nmost trials on the GPU at once: {overlap} (gpus_per_trial={args.gpus_per_trial:g}); "
          f"all trials complete and on CUDA: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
