"""Options of the Ray backend, checked up front without importing ray.

:func:`check_options` is called by :func:`nasforge.spec.build_spec` for every search, so a
bad option (or a Ray-only option given to the local backend) stops before anything runs.
"""

from __future__ import annotations

import importlib.util
import math
import os
from typing import Any, Mapping

from nasforge.errors import SpecError

# Ray Tune's schedulers: early stopping (asha, hyperband, median) or population-based training
# (pbt); "none" runs every trial to its budget.
SCHEDULERS = ("none", "asha", "hyperband", "median", "pbt")
# Options each scheduler accepts (the metric, mode, time attribute and max budget come from the spec).
SCHEDULER_OPTIONS = {
    "none": {},
    "asha": {"grace_period": int, "reduction_factor": float, "brackets": int},
    "hyperband": {"grace_period": int, "reduction_factor": float},
    "median": {"grace_period": int, "min_samples_required": int},
    "pbt": {"perturbation_interval": int, "hyperparam_mutations": dict, "resample_probability": float,
            "quantile_fraction": float},
}
NOT_YET: dict[str, str] = {}   # scheduler -> why it is refused for now

INSTALL_HINT = "pip install 'nasforge[ray]' (or 'ray[tune]')"

DEFAULTS: dict[str, Any] = {
    "address": None,            # None: start a local Ray (or use the one this process runs)
    "cpus_per_trial": 1.0,
    "gpus_per_trial": 0.0,
    "max_concurrent": None,     # None: as many trials as the cluster's resources fit
    "scheduler": "none",
    "scheduler_options": {},
    "max_failures": 2,          # retries of a trial whose worker died
    "runtime_env": None,        # Ray's runtime_env for the search's job: every trial and the pre-flight
}
# runtime_env fields that name local paths Ray uploads from the driver's machine.
UPLOADED_PATHS = ("working_dir", "py_modules")


def _number(name: str, value: Any, *, low: float, low_open: bool) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or (value <= low if low_open else value < low):
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        raise SpecError(f"{name} must be a number {bound}, got {value!r}")
    return float(value)


def check_options(*, backend: str, pruner: str, n_jobs: int, n_objectives: int, max_budget: int, address: Any = None,
                  cpus_per_trial: Any = 1.0, gpus_per_trial: Any = 0.0, max_concurrent: Any = None,
                  scheduler: Any = "none", scheduler_options: Any = None, max_failures: Any = 2,
                  runtime_env: Any = None, family: Any = None, space: Any = None, strategies: tuple[str, ...] = ()) -> dict[str, Any]:
    """Validate the Ray options and return them normalized; raise :class:`SpecError` naming the field.

    ``family``, ``space`` and ``strategies`` are needed for ``scheduler="pbt"`` only.
    """
    given = {"address": address, "cpus_per_trial": cpus_per_trial, "gpus_per_trial": gpus_per_trial,
             "max_concurrent": max_concurrent, "scheduler": scheduler,
             "scheduler_options": dict(scheduler_options or {}), "max_failures": max_failures,
             "runtime_env": runtime_env}
    if backend != "ray":
        for key, value in given.items():
            if value != DEFAULTS[key]:
                hint = " (locally, early stopping is the pruner option)" if key.startswith("scheduler") else ""
                raise SpecError(f"{key}={value!r} applies only to backend='ray', not backend={backend!r}{hint}")
        return dict(DEFAULTS, scheduler_options={})
    given["runtime_env"] = check_runtime_env(runtime_env)

    if importlib.util.find_spec("ray") is None:   # (ray.tune's own dependencies are checked when it is imported)
        raise SpecError(f"backend='ray' needs Ray Tune: {INSTALL_HINT}")
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise SpecError(f"address must be 'auto', 'ray://host:port', 'host:port' or None (start a local Ray), "
                        f"got {address!r}")
    if isinstance(address, str) and address.startswith("ray://"):
        raise SpecError(f"address={address!r}: Ray Client (ray://) would run the Tune driver, and with it the Optuna "
                        "study and the progress reporting, on the cluster; run the search on a cluster node with "
                        "address='auto' (e.g. through `ray job submit`), see docs/ray.md")
    cpus = _number("cpus_per_trial", cpus_per_trial, low=0.0, low_open=True)
    gpus = _number("gpus_per_trial", gpus_per_trial, low=0.0, low_open=False)
    if gpus > 1 and not gpus.is_integer():
        raise SpecError(f"gpus_per_trial must be a fraction of one GPU (e.g. 0.25) or a whole number, "
                        f"got {gpus_per_trial!r}")
    if max_concurrent is not None:
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise SpecError(f"max_concurrent must be an integer >= 1 or None, got {max_concurrent!r}")
    if isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < 0:
        raise SpecError(f"max_failures must be an integer >= 0, got {max_failures!r}")
    if n_jobs != 1:
        raise SpecError(f"n_jobs={n_jobs} is for backend='local'; with backend='ray' use max_concurrent "
                        "(trials at once across the cluster)")
    if pruner != "none":
        raise SpecError(f"pruner={pruner!r} is an Optuna pruner for backend='local'; with backend='ray' use "
                        f"scheduler= one of: {', '.join(s for s in SCHEDULERS if s != 'none')}")

    if scheduler in NOT_YET:
        raise SpecError(f"scheduler {scheduler!r} is not supported yet: {NOT_YET[scheduler]}")
    if scheduler not in SCHEDULERS:
        raise SpecError(f"unknown scheduler {scheduler!r}; valid schedulers: {', '.join(SCHEDULERS)}")
    if scheduler != "none" and n_objectives > 1:
        raise SpecError("early-stopping schedulers follow one metric; a multi-objective search needs scheduler='none'")
    if scheduler == "pbt":
        from nasforge.executors.pbt_options import check_pbt

        if max_concurrent is not None:
            raise SpecError(f"max_concurrent={max_concurrent} does not apply to scheduler='pbt': the population is all "
                            "the trials, which take turns on the cluster's CPUs (PBT pauses one while another runs); "
                            "a limit would split it into groups that never see each other. Leave max_concurrent out, "
                            "or raise cpus_per_trial to run fewer trials at once")
        options = check_pbt(given["scheduler_options"], family=family, space=space, strategies=strategies,
                            max_budget=max_budget)
        return {"address": address, "cpus_per_trial": cpus, "gpus_per_trial": gpus,
                "max_concurrent": max_concurrent, "scheduler": scheduler, "scheduler_options": options,
                "max_failures": max_failures, "runtime_env": given["runtime_env"]}
    options = given["scheduler_options"]
    allowed = SCHEDULER_OPTIONS[scheduler]
    for key, value in options.items():
        if key not in allowed:
            valid = ", ".join(allowed) or "(none)"
            raise SpecError(f"scheduler {scheduler!r} has no option {key!r}; valid options: {valid}")
        if allowed[key] is int:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(f"scheduler_options.{key} must be an integer >= 1, got {value!r}")
        else:
            _number(f"scheduler_options.{key}", value, low=1.0, low_open=True)
    if options.get("grace_period", 1) > max_budget:
        raise SpecError(f"scheduler_options.grace_period={options['grace_period']} exceeds the budget ({max_budget})")
    return {"address": address, "cpus_per_trial": cpus, "gpus_per_trial": gpus, "max_concurrent": max_concurrent,
            "scheduler": scheduler, "scheduler_options": options, "max_failures": max_failures,
            "runtime_env": given["runtime_env"]}


def check_runtime_env(runtime_env: Any) -> dict[str, Any] | None:
    """A mapping of Ray runtime_env fields; the local paths it uploads must exist (Ray checks the rest)."""
    if runtime_env is None:
        return None
    if not isinstance(runtime_env, Mapping) or not all(isinstance(k, str) for k in runtime_env):
        raise SpecError(f"runtime_env must be a mapping of Ray runtime_env fields, e.g. {{'py_modules': "
                        f"['plugin_env/nasforge_fancy']}}, got {runtime_env!r}")
    env = dict(runtime_env)
    for key in UPLOADED_PATHS:
        value = env.get(key)
        for item in [value] if isinstance(value, (str, os.PathLike)) else (value or []):
            if isinstance(item, (str, os.PathLike)) and "://" not in str(item) and not os.path.exists(item):
                raise SpecError(f"runtime_env {key}: {str(item)!r} does not exist (Ray uploads local {key} paths "
                                "from this machine to every node)")
    return env
