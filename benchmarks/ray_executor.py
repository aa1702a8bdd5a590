"""Ray executor figures: per-trial overhead against bare Ray Tune, and throughput at 2 trials at once.

1. **Overhead.** The same trivial trial (a one-layer model, ``--steps`` reports of a constant
   metric, no training) run three ways on one local Ray (``num_cpus=2``), one trial at a
   time, actors reused:

   * ``bare``: ``Tuner`` + ``OptunaSearch(RandomSampler)`` (in-memory study) + a function
     trainable that calls ``tune.report`` per step -- Ray Tune's own cost;
   * ``bare+store``: the same, plus what nasforge must do for every trial anyway: the study in
     sqlite (resume needs it) and, in the trainable, an MLflow child run with the params, one
     ``log_batch`` per step, the final metrics and ``set_terminated`` (hand-written ``MlflowClient``);
   * ``nasforge``: ``nasforge.search(..., backend="ray", save_models=False)`` with a run-time
     registered family doing the same nothing.

   Per-trial time is the median interval between consecutive trial ends (the first trial of
   each run, which pays for the worker process start, is left out); the three run
   ``--repeats`` times, interleaved, and the medians are compared. Without a scheduler
   nasforge sends no per-step results (nothing would act on them); the bare runs report every
   step, as a Tune user would.

2. **Throughput.** ``--trials`` trials of about ``--trial-seconds`` each through
   ``nasforge.search(backend="ray")`` with ``max_concurrent=1`` and ``=2`` on a 2-CPU Ray.
   ``--work cpu`` (default) makes each trial a fixed amount of single-threaded Python work,
   calibrated to ``--trial-seconds`` on this machine first; ``--work sleep`` sleeps instead
   (only the executor's own parallelism then). Throughput is counted after the first
   ``max_concurrent`` trials (worker start-up). For each run it also prints the cores used by
   the driver, Ray's daemons (raylet, GCS, Python agents) and the trial workers, sampled from
   ``/proc``: on 2 cores, whatever the driver and the daemons use is taken from the trials.

The machine's other processes compete for the same 2 cores: run it on an idle machine for
clean figures, and read the printed load average.

Usage::

    python benchmarks/ray_executor.py [--trials 20] [--steps 3] [--repeats 3] [--trial-seconds 2]
                                      [--throughput-trials 10] [--work cpu|sleep] [--skip-overhead]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass

import nasforge

GOAL_SPEEDUP = 1.8


# -- the families (registered at run time: the workers get them by value) ---------------------
@dataclass(kw_only=True)
class NoopConfig:
    x: float = 0.0


@dataclass(kw_only=True)
class SpinConfig:
    x: float = 0.0
    iterations: int = 1         # Python loop iterations per trial (calibrated by the driver)
    seconds: float = 0.0        # > 0: sleep this long instead of spinning
    steps: int = 4


class NoopFamily(nasforge.Family):
    name = "bench_noop"
    task_kinds = ("classification",)
    config_class = NoopConfig
    default_space = "<bench>"
    budget_unit, default_budget = "epochs", 3

    def metrics(self, task):
        return {"val_accuracy": "maximize"}

    def build(self, config, task):
        import torch.nn as nn

        return nn.Linear(task.input_shape[0], task.n_classes)

    def fit(self, model, task, config, budget, reporter):
        for step in range(1, budget["epochs"] + 1):
            reporter.report(step, {"val_accuracy": 0.5 + 0.01 * step})
        return {"val_accuracy": 0.5 + 0.01 * budget["epochs"]}

    def evaluate(self, model, task, split="test"):
        return {f"{split}_accuracy": 0.5}

    def example_input(self, task):
        return task.x_train[:2]


class SpinFamily(NoopFamily):
    name = "bench_spin"
    config_class = SpinConfig

    def fit(self, model, task, config, budget, reporter):
        for step in range(1, config.steps + 1):
            if config.seconds > 0:
                time.sleep(config.seconds / config.steps)
            else:
                spin(config.iterations // config.steps)
            reporter.report(step, {"val_accuracy": 0.5})
        return {"val_accuracy": 0.5}


def spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


class BenchPlugin:
    @nasforge.hookimpl
    def register_families(self, register):
        register(NoopFamily())
        register(SpinFamily())


class Stamps:
    """``trial_finished`` hook: when each nasforge trial ended (in the driver)."""

    def __init__(self):
        self.times: list[float] = []

    @nasforge.hookimpl
    def trial_finished(self, record):
        self.times.append(time.perf_counter())


def per_trial(times: list[float], skip: int = 1) -> float:
    times = sorted(times)[skip - 1:]
    return statistics.median(b - a for a, b in zip(times, times[1:]))


# -- 1. overhead --------------------------------------------------------------------------------
def bare_space(trial):
    trial.suggest_float("x", 0.0, 1.0)   # module level: OptunaSearch pickles itself (with plain pickle)


def bare_tune(n: int, steps: int, tmp: str, *, with_store: bool) -> float:
    import optuna
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tracking = f"sqlite:///{tmp}/bare-mlflow.db"
    parent = experiment = None
    storage = None
    if with_store:
        from mlflow import MlflowClient

        client = MlflowClient(tracking)
        name = f"bare-{time.time_ns()}"
        experiment = client.create_experiment(name)
        parent = client.create_run(experiment, run_name="parent").info.run_id
        storage = optuna.storages.RDBStorage(f"sqlite:///{tmp}/bare-optuna-{time.time_ns()}.db")

    def trainable(config):
        client = None
        if parent:
            import mlflow
            from mlflow.entities import Metric, Param

            # one client per worker process, as nasforge keeps one (creating one costs ~0.1 s)
            clients = mlflow.__dict__.setdefault("_bench_clients", {})
            if tracking not in clients:
                clients[tracking] = mlflow.MlflowClient(tracking)
            client = clients[tracking]
            run = client.create_run(experiment, tags={"mlflow.parentRunId": parent}).info.run_id
            client.log_batch(run, params=[Param("x", str(config["x"]))])
        for step in range(1, steps + 1):
            value = 0.5 + 0.01 * step
            if client:
                client.log_batch(run, metrics=[Metric("val_accuracy", value, int(time.time() * 1000), step)])
            tune.report({"val_accuracy": value, "step": step})
        if client:
            client.log_batch(run, metrics=[Metric("val_accuracy", value, int(time.time() * 1000), steps)])
            client.set_terminated(run, "FINISHED")

    stamps: list[float] = []

    class Stamp(tune.Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            stamps.append(time.perf_counter())

    search = OptunaSearch(space=bare_space, metric="val_accuracy", mode="max", storage=storage,
                          sampler=optuna.samplers.RandomSampler(seed=0),
                          study_name=f"bare-{time.time_ns()}" if storage else None)
    tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(search_alg=search, num_samples=n, max_concurrent_trials=1,
                                                              reuse_actors=True),
                       run_config=tune.RunConfig(storage_path=tmp, verbose=0, callbacks=[Stamp()]))
    tuner.fit()
    return per_trial(stamps)


def nasforge_ray(family: str, space: dict, n: int, budget: int, tmp: str, *, max_concurrent: int,
                 stamps: Stamps) -> list[float]:
    stamps.times.clear()
    nasforge.search(family, task="digits", space=space, strategy="random", trials=n, budget=budget, seed=0,
                    backend="ray", max_concurrent=max_concurrent, save_models=False, experiment=family,
                    tracking_uri=f"sqlite:///{tmp}/nasforge-mlflow.db", storage=f"sqlite:///{tmp}/nasforge-optuna.db")
    return list(stamps.times)


def _process_cpu() -> dict[int, tuple[str, float]]:
    """pid -> (kind, CPU seconds so far) for this driver and Ray's processes (Linux ``/proc``)."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, tuple[str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == os.getpid():
            kind = "driver"
        elif command.startswith("ray::"):
            kind = "trial workers"
        elif "raylet" in command or "gcs_server" in command:
            kind = "raylet+gcs"
        elif "ray" in command and "python" in command and "/ray/" in command:
            kind = "ray python daemons"
        else:
            continue
        found[int(entry)] = (kind, (int(fields[11]) + int(fields[12])) / tick)
    return found


class CpuUse:
    """Cores used by kind of process over a block, sampled every 0.25 s so that trial workers
    which exit before the end are still counted: where the two cores go when trials run side by side."""

    def __enter__(self):
        import threading

        self.start, self.peak = _process_cpu(), {}
        self.started, self.done = time.perf_counter(), threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while not self.done.wait(0.25):
            for pid, (kind, cpu) in _process_cpu().items():
                self.peak[pid] = (kind, max(cpu, self.peak.get(pid, (kind, 0.0))[1]))

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()
        self.wall = time.perf_counter() - self.started
        for pid, (kind, cpu) in _process_cpu().items():
            self.peak[pid] = (kind, max(cpu, self.peak.get(pid, (kind, 0.0))[1]))
        cores: dict[str, float] = {}
        for pid, (kind, cpu) in self.peak.items():
            cores[kind] = cores.get(kind, 0.0) + (cpu - self.start.get(pid, (kind, 0.0))[1]) / self.wall
        self.cores = cores

    def __str__(self) -> str:
        return ", ".join(f"{k} {v:.2f}" for k, v in sorted(self.cores.items())) + f" (over {self.wall:.0f} s)"


def calibrate(seconds: float) -> int:
    n = 200_000
    while True:
        start = time.perf_counter()
        spin(n)
        took = time.perf_counter() - start
        if took > 0.2:
            return int(n * seconds / took)
        n *= 2


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="trials per overhead run")
    parser.add_argument("--steps", type=int, default=3, help="reports per overhead trial")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each overhead variant")
    parser.add_argument("--throughput-trials", type=int, default=10)
    parser.add_argument("--trial-seconds", type=float, default=2.0)
    parser.add_argument("--work", choices=("cpu", "sleep"), default="cpu")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args(argv)

    from nasforge.stores.mlflow_runs import quiet_mlflow

    quiet_mlflow()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    import ray

    logging.getLogger("ray.tune").setLevel(logging.ERROR)
    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores; other processes share them)", flush=True)
    started = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    print(f"ray.init: {time.perf_counter() - started:.1f} s", flush=True)
    stamps = Stamps()
    nasforge.register(BenchPlugin(), name="bench-plugin")
    nasforge.register(stamps, name="bench-stamps")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if not args.skip_overhead:
                overhead(args, tmp, stamps)
            if not args.skip_throughput:
                throughput(args, tmp, stamps)
    finally:
        ray.shutdown()
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


def overhead(args, tmp: str, stamps: Stamps) -> None:
    n, steps = args.trials, args.steps
    space = {"params": {"x": {"float": [0.0, 1.0]}}}
    runs = {
        "bare": lambda: bare_tune(n, steps, tmp, with_store=False),
        "stored": lambda: bare_tune(n, steps, tmp, with_store=True),
        "ours": lambda: per_trial(nasforge_ray("bench_noop", space, n, steps, tmp, max_concurrent=1, stamps=stamps)),
    }
    figures: dict[str, list[float]] = {k: [] for k in runs}
    for repeat in range(args.repeats):   # interleaved, the order alternating: contention hits all sides alike
        for name in (list(runs) if repeat % 2 == 0 else list(reversed(runs))):
            figures[name].append(runs[name]())
    bare, stored, ours = (statistics.median(figures[k]) for k in ("bare", "stored", "ours"))
    each = "; ".join(f"{k} " + "/".join(f"{v * 1000:.0f}" for v in vs) for k, vs in figures.items())
    print(f"\nper-trial time, {n} no-op trials of {steps} reports, one at a time, reuse_actors=True "
          f"(median of {args.repeats} interleaved runs; each run, ms: {each}):")
    print(f"  bare Ray Tune + OptunaSearch            {bare * 1000:7.0f} ms")
    print(f"  bare + sqlite study + MLflow child run  {stored * 1000:7.0f} ms")
    print(f"  nasforge backend='ray'                  {ours * 1000:7.0f} ms")
    print(f"  nasforge / bare: {ours / bare:.2f}x (+{(ours - bare) * 1000:.0f} ms);  "
          f"nasforge / bare+store: {ours / stored:.2f}x (+{(ours - stored) * 1000:.0f} ms)", flush=True)


def throughput(args, tmp: str, stamps: Stamps) -> None:
    n = args.throughput_trials
    if args.work == "cpu":
        iterations = calibrate(args.trial_seconds)
        fixed = {"iterations": iterations, "seconds": 0.0}
        what = f"{iterations:,} Python loop iterations (~{args.trial_seconds:g} s on one core here)"
    else:
        fixed = {"iterations": 1, "seconds": args.trial_seconds}
        what = f"sleep {args.trial_seconds:g} s"
    space = {"params": {"x": {"float": [0.0, 1.0]}, **fixed}}
    rates = {}
    with CpuUse() as idle:
        time.sleep(5.0)
    print(f"  cores used by an idle Ray: {idle}", flush=True)
    for concurrent in (1, 2):
        with CpuUse() as use:
            times = sorted(nasforge_ray("bench_spin", space, n, 1, tmp, max_concurrent=concurrent, stamps=stamps))
        print(f"  cores used during max_concurrent={concurrent}: {use}", flush=True)
        times = times[concurrent - 1:]
        rates[concurrent] = (len(times) - 1) / (times[-1] - times[0])
        print(f"  max_concurrent={concurrent}: {rates[concurrent]:.3f} trials/s "
              f"({len(times) - 1} trials after start-up)", flush=True)
    speedup = rates[2] / rates[1]
    verdict = "meets" if speedup >= GOAL_SPEEDUP else "misses"
    print(f"throughput, {n} trials of {what}: 2 at once / 1 at a time = {speedup:.2f}x "
          f"({verdict} the {GOAL_SPEEDUP}x goal)")


if __name__ == "__main__":
    sys.exit(main())
