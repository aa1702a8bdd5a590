"""SearchSpec: every argument of a search, validated once, before any trial runs."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from nasforge.data.task_checks import check_task_data
from nasforge.data.prepare import UserData, prepare_data
from nasforge.data.tasks import load_task, register_data_task
from nasforge.errors import ConfigError, DataError, NasforgeError, SpecError
from nasforge.executors.backends import EXECUTORS
from nasforge.executors.ray_options import check_options as check_ray_options
from nasforge.plugins import Registry, get_registry
from nasforge.size_limit import SizeLimit, check_size_limit
from nasforge.spec.space import Objective, SearchSpace, parse_objectives
from nasforge.stores.mlflow_runs import absolute_tracking_uri, default_tracking_uri
from nasforge.stores.study import resumable_study, stored_strategies
from nasforge.strategies.build import make_pruner, make_sampler
from nasforge.strategies.shares import split_trials

# Metrics every trial reports on top of the family's own.
COMMON_METRICS = {"n_params": "minimize", "train_time_s": "minimize"}
DEFAULT_TRIALS, DEFAULT_STRATEGY = 20, "tpe"   # a new search's; resume=True takes the study's
WEIGHT_SHARING_TRIALS = 5   # enas/rsws: top architectures retrained (ENAS retrains 1, Li & Talwalkar 10)


@dataclass(frozen=True, kw_only=True)
class SearchSpec:
    """A validated search request. Build it with :func:`build_spec`."""

    family: str
    task: str
    space: SearchSpace
    strategy: str                       # the strategy; side by side: the names joined by ","
    pruner: str
    objectives: tuple[Objective, ...]
    budget: dict[str, int]
    budget_unit: str
    trials: int
    seed: int
    timeout: float | None = None
    n_jobs: int = 1
    backend: str = "local"
    tracking_uri: str
    experiment: str
    storage: str
    study_name: str | None = None
    resume: bool = False
    save_models: bool = True
    plots: bool = True
    strategy_options: dict[str, Any] = field(default_factory=dict)
    pruner_options: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # backend="ray" only (checked by nasforge.executors.ray_options.check_options)
    address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    scheduler: str = "none"
    scheduler_options: dict[str, Any] = field(default_factory=dict)
    max_failures: int = 2
    runtime_env: dict[str, Any] | None = None
    strategies: tuple[str, ...] = ()    # the strategy list ((strategy,) for one)
    weight_sharing: bool = False        # enas/rsws: a supernet phase runs before the trials
    max_params: int | None = None       # networks with more parameters are not trained (nasforge.size_limit)
    max_flops: int | None = None        # networks with more forward FLOPs are not trained
    data: UserData | None = field(default=None, repr=False, compare=False)   # data=...: the user's own

    @property
    def data_digest(self) -> str | None:
        """The digest of the user's data (None for a registered task)."""
        return self.data.digest if self.data is not None else None

    def __post_init__(self):
        if not self.strategies:
            object.__setattr__(self, "strategies", (self.strategy,))

    @property
    def side_by_side(self) -> bool:
        """Several strategies share the workers and the budget (see :mod:`nasforge.strategies.shares`)."""
        return len(self.strategies) > 1

    @property
    def shares(self) -> dict[str, int]:
        """Each strategy's number of trials: ``trials`` split evenly, the first ones get the remainder."""
        return split_trials(self.trials, self.strategies)

    @property
    def size_limit(self) -> SizeLimit:
        """The search's size caps (falsy without any)."""
        return SizeLimit(max_params=self.max_params, max_flops=self.max_flops)

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def summary(self) -> dict[str, Any]:
        """Flat, JSON-friendly description (logged as the parent run's params)."""
        out = {
            "family": self.family, "task": self.task, "strategy": self.strategy, "pruner": self.pruner,
            "trials": self.trials, "seed": self.seed, "backend": self.backend, "n_jobs": self.n_jobs,
            "timeout": self.timeout, "space": self.space.source,
            "objective": ",".join(f"{o.metric}:{o.direction}" for o in self.objectives),
            "storage": self.storage, "save_models": self.save_models,
        }
        out.update(self.size_limit.caps())
        if self.data is not None:
            out.update({"data": self.data.origin, "data_digest": self.data.digest, "kind": self.data.kind,
                        **({"target": self.data.target} if self.data.target else {})})
        out.update({f"budget.{k}": v for k, v in self.budget.items()})
        if self.side_by_side:
            out.update({f"trials.{k}": v for k, v in self.shares.items()})
            out.update({f"strategy.{name}.{k}": v for name, options in self.strategy_options.items()
                        for k, v in options.items()})
        else:
            out.update({f"strategy.{k}": v for k, v in self.strategy_options.items()})
        out.update({f"pruner.{k}": v for k, v in self.pruner_options.items()})
        if self.backend == "ray":
            out.update({f"ray.{k}": getattr(self, k) for k in ("address", "cpus_per_trial", "gpus_per_trial",
                                                              "max_concurrent", "scheduler", "max_failures")})
            out.update({f"ray.scheduler.{k}": v for k, v in self.scheduler_options.items()})
            if self.runtime_env:
                out["ray.runtime_env"] = json.dumps(self.runtime_env, sort_keys=True, default=str)[:6000]
        return out


def check_int(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


MAX_SEED = 2**32 - 1  # numpy and scikit-learn take seeds in [0, 2**32)
MLFLOW_TAG_KEY = re.compile(r"[\w\-. :/]{1,250}")  # what MLflow accepts as a tag name


def check_argument_types(given: Mapping[str, Any]) -> None:
    """Names are strings and option sets mappings, checked before anything looks them up."""
    for name in ("task", "pruner", "backend", "tracking_uri", "experiment", "storage", "study_name", "scheduler"):
        if given[name] is not None and not isinstance(given[name], str):
            raise SpecError(f"{name} must be a string, got {given[name]!r}")
    for name in ("target", "kind"):
        if given[name] is not None and not isinstance(given[name], str):
            raise SpecError(f"{name} must be a string, got {given[name]!r}")
    for name in ("strategy_options", "pruner_options", "tags", "scheduler_options", "data_options"):
        if given[name] is not None and not isinstance(given[name], Mapping):
            raise SpecError(f"{name} must be a mapping of name -> value, got {given[name]!r}")
    for key in given["tags"] or {}:
        if not isinstance(key, str) or not MLFLOW_TAG_KEY.fullmatch(key):
            raise SpecError(f"tags: {key!r} is not a valid MLflow tag name (1-250 letters, digits, "
                            "'_', '-', '.', ' ', ':', '/')")
    for name in ("resume", "save_models", "plots"):
        if not isinstance(given[name], bool):
            raise SpecError(f"{name} must be True or False, got {given[name]!r}")
    seed, timeout = given["seed"], given["timeout"]
    if isinstance(seed, int) and seed > MAX_SEED:
        raise SpecError(f"seed must be an integer in [0, {MAX_SEED}], got {seed!r}")
    if isinstance(timeout, float) and not math.isfinite(timeout):
        raise SpecError(f"timeout must be a finite number of seconds (or None for no limit), got {timeout!r}")
    if not isinstance(given["run_dir"], (str, os.PathLike)) or "\0" in str(given["run_dir"]):
        raise SpecError(f"run_dir must be a folder path, got {given['run_dir']!r}")
    storage = given["storage"]
    if storage is not None and ("://" not in storage or "\0" in storage):
        raise SpecError(f"storage must be an Optuna storage URL like sqlite:///nasforge_runs/optuna.db or "
                        f"postgresql://user@host/db, got {storage!r}")


def build_spec(
    family: str,
    *,
    task: str | None = None,
    data: Any = None,
    target: str | None = None,
    kind: str | None = None,
    data_options: Mapping[str, Any] | None = None,
    space: str | Path | Mapping[str, Any] | SearchSpace | None = None,
    strategy: str | Sequence[str] | None = None,
    pruner: str | None = None,
    objective: Any = None,
    budget: Mapping[str, int] | int | None = None,
    trials: int | None = None,
    seed: int = 0,
    timeout: float | None = None,
    n_jobs: int = 1,
    backend: str = "local",
    tracking_uri: str | None = None,
    experiment: str | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    resume: bool = False,
    run_dir: str | Path = "nasforge_runs",
    save_models: bool = True,
    plots: bool = True,
    strategy_options: Mapping[str, Any] | None = None,
    pruner_options: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    address: str | None = None,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    max_concurrent: int | None = None,
    scheduler: str = "none",
    scheduler_options: Mapping[str, Any] | None = None,
    max_failures: int = 2,
    runtime_env: Mapping[str, Any] | None = None,
    max_params: int | None = None,
    max_flops: int | None = None,
    registry: Registry | None = None,
) -> SearchSpec:
    """Check every argument against the registry and return a :class:`SearchSpec`.

    Raises a :class:`NasforgeError` subclass naming the bad argument and the valid
    choices; nothing is trained and no store is written before this passes. Each part
    is checked by the function named for it, in the order a search needs them.
    """
    registry = registry or get_registry()
    check_argument_types(locals())
    check_counts(trials=DEFAULT_TRIALS if trials is None else trials, seed=seed, n_jobs=n_jobs, timeout=timeout)
    check_backend(backend)
    fam = check_family(family, registry)
    user_data = check_data(data, task=task, target=target, kind=kind, options=data_options, fam=fam, seed=seed,
                           registry=registry)
    if user_data is None:
        task = check_task(task, fam, registry)
        loaded_task = load_task(task, seed)  # cached: trials in this process reuse it
    else:
        task, loaded_task = user_data.name, user_data.task
    check_study_name(study_name)
    tracking, storage = check_stores(tracking_uri, storage, run_dir)
    experiment = experiment or f"{family}-{task}"
    trials_given = trials
    trials, strategy, caps = check_resume_defaults(
        resume, trials=trials, strategy=strategy, caps={"max_params": max_params, "max_flops": max_flops},
        storage=storage, study_name=study_name, family=family, task=task, experiment=experiment)
    weight_sharing = check_weight_sharing(strategy, fam, registry)
    if weight_sharing and trials_given is None and not resume:
        trials = WEIGHT_SHARING_TRIALS
    darts = weight_sharing and _strategy_names(strategy, registry) == ("darts",)
    space_obj = check_space(space, fam, weight_sharing=weight_sharing, darts=darts)
    check_task_data(loaded_task)
    fam.check_space(space_obj, loaded_task)
    if weight_sharing:
        check_supernet(fam, space_obj, loaded_task, strategy=strategy, mixed=darts)
    size_limit = check_size_limit(**caps, family=fam, space=space_obj, task=loaded_task, seed=seed)
    objectives = check_objectives(objective, fam, space_obj, loaded_task)
    budget_dict = check_budget(budget, fam, space_obj)
    strategies = check_strategies(strategy, trials=trials, n_objectives=len(objectives), registry=registry)
    strategy_options = _strategy_options(strategy_options, strategies)
    if darts and "size_penalty" in strategy_options and not size_limit:
        raise SpecError("strategy 'darts': size_penalty weighs the size caps in alpha's loss, and this search has "
                        "none; give max_params or max_flops, or leave size_penalty out")
    pruner = check_pruner(pruner, n_strategies=len(strategies), n_objectives=len(objectives), registry=registry)
    ray_options = check_ray_options(
        backend=backend, pruner=pruner, n_jobs=n_jobs, n_objectives=len(objectives),
        max_budget=budget_dict[fam.budget_unit], address=address, cpus_per_trial=cpus_per_trial,
        gpus_per_trial=gpus_per_trial, max_concurrent=max_concurrent, scheduler=scheduler,
        scheduler_options=scheduler_options, max_failures=max_failures, family=fam, space=space_obj,
        strategies=strategies, runtime_env=runtime_env)
    spec = SearchSpec(
        family=family, task=task, space=space_obj, strategy=",".join(strategies), strategies=strategies,
        pruner=pruner, objectives=objectives, budget=budget_dict, budget_unit=fam.budget_unit, trials=trials,
        seed=seed, timeout=timeout, n_jobs=n_jobs, backend=backend, tracking_uri=tracking,
        experiment=experiment, storage=storage, study_name=study_name,
        resume=bool(resume), save_models=bool(save_models), plots=bool(plots),
        strategy_options=strategy_options,
        pruner_options=dict(pruner_options or {}),
        tags={str(k): str(v) for k, v in (tags or {}).items()}, data=user_data, weight_sharing=weight_sharing,
        **size_limit.caps(), **ray_options,
    )
    # Building the sampler and pruner checks their options (and a grid's space) up front.
    make_sampler(spec, registry=registry)
    make_pruner(spec, registry=registry)
    return spec


def check_resume_defaults(resume: bool, *, trials: int | None, strategy: Any, caps: dict[str, Any], storage: str,
                          study_name: str | None, family: str, task: str,
                          experiment: str) -> tuple[int, Any, dict[str, Any]]:
    """``trials``, ``strategy`` and the size ``caps`` (``max_params``, ``max_flops``) where left out: a
    new search's defaults (20, tpe, none), or with ``resume=True`` those of the study it continues (its
    target, its strategies, its caps), read from the storage."""
    if not resume:
        return ((DEFAULT_TRIALS if trials is None else trials), (DEFAULT_STRATEGY if strategy is None else strategy),
                caps)
    if trials is not None and strategy is not None and None not in caps.values():
        return trials, strategy, caps
    try:
        stored = resumable_study(storage=storage, study_name=study_name, family=family, task=task,
                                 experiment=experiment).user_attrs
    except SpecError:
        if trials is None or strategy is None:
            raise
        stored = {}   # given both, a resume may start the study: it has no cap to keep
    caps = {name: stored.get(name) if value is None else value for name, value in caps.items()}
    if trials is None:
        trials = int(stored.get("trials", DEFAULT_TRIALS))   # studies from before 0.2 did not record it
    if strategy is None:
        strategy = stored_strategies(stored)
        strategy = strategy[0] if len(strategy) == 1 else strategy
    return trials, strategy, caps


def check_counts(*, trials: Any, seed: Any, n_jobs: Any, timeout: Any) -> None:
    """``trials`` >= 1, ``seed`` >= 0, ``n_jobs`` >= 1, ``timeout`` a positive number or None."""
    check_int("trials", trials, minimum=1)
    check_int("seed", seed, minimum=0)
    check_int("n_jobs", n_jobs, minimum=1)
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise SpecError(f"timeout must be a positive number of seconds, got {timeout!r}")


def check_backend(backend: str) -> None:
    if backend not in EXECUTORS:
        raise SpecError(f"unknown backend {backend!r}; valid backends: {', '.join(EXECUTORS)}")


def check_family(family: Any, registry: Registry):
    """The registered family named ``family``."""
    if not isinstance(family, str):
        raise SpecError(f"family must be a name (a string), got {family!r}")
    return registry.get("family", family)


def check_data(data: Any, *, task: str | None, target: str | None, kind: str | None, options, fam, seed: int,
               registry: Registry) -> UserData | None:
    """The user's own data read, checked, split and preprocessed for the family (None without ``data``).

    Says what it found on stderr (kind, splits, preprocessing), as the first thing a search prints.
    """
    if data is None:
        given = [name for name, value in (("target", target), ("kind", kind), ("data_options", options))
                 if value is not None]
        if given:
            raise SpecError(f"{given[0]} applies to data=... (your own data); a registered task (task=) "
                            "brings its own targets")
        return None
    if task is not None:
        raise SpecError(f"give task={task!r} or data=, not both: task names a registered task, data= is your own "
                        "data (CLI: --task or --data)")
    families = [registry.get("family", name) for name in registry.names("family")]
    user = prepare_data(data, family=fam, target=target, kind=kind, options=options, seed=seed,
                        taken_names=registry.names("task"), families=families)
    fam.check_task(user.name, user.kind)
    if user.streamed and not getattr(fam, "supports_streaming", False):
        streaming = sorted(f.name for f in families if getattr(f, "supports_streaming", False))
        raise DataError(f"data {user.name!r} stays on disk (larger than data_options['memory_limit_mb'], or "
                        f"stream=True), but family {fam.name!r} loads whole splits into memory; families that "
                        f"stream: {', '.join(streaming)} (or data_options={{'stream': False}})")
    register_data_task(user.task, user.digest)
    import sys

    print(f"nasforge: {user.summary()}", file=sys.stderr)
    return user


def check_task(task: str | None, fam, registry: Registry) -> str:
    """The task's name (the family's default when None), registered and of a kind the family takes."""
    if task is None:
        task = getattr(fam, "default_task", None)
        if task is None:
            raise SpecError(f"family {fam.name!r} needs a task; known tasks: {', '.join(registry.names('task'))}")
    task_def = registry.get("task", task)
    fam.check_task(task, task_def.kind)
    return task


def check_space(space: Any, fam, *, weight_sharing: bool = False, darts: bool = False) -> SearchSpace:
    """The search space (the family's own when None: its ``supernet_space`` for a weight-sharing
    strategy, its ``darts_space`` first for darts), for this family, naming only its config fields."""
    if space is None:
        space = ((getattr(fam, "darts_space", None) if darts else None)
                 or (getattr(fam, "supernet_space", None) if weight_sharing else None) or fam.default_space)
    if isinstance(space, SearchSpace):
        space_obj = space
    elif isinstance(space, Mapping):
        space_obj = SearchSpace.from_dict(space)
    elif isinstance(space, (str, Path)):
        space_obj = SearchSpace.load(space)
    else:
        raise SpecError(f"space must be a name, a YAML path, a dict or a SearchSpace, got {type(space).__name__}")
    if space_obj.family is not None and space_obj.family != fam.name:
        raise SpecError(f"search space {space_obj.source} is for family {space_obj.family!r}, not {fam.name!r}")
    _check_space_fields(fam, space_obj)
    return space_obj


def check_weight_sharing(strategy: Any, fam, registry: Registry) -> bool:
    """Whether ``strategy`` trains a supernet first (enas, rsws); such a strategy runs alone, on a family
    that has a supernet."""
    names = _strategy_names(strategy, registry)
    sharing = [n for n in names if getattr(registry.get("strategy", n), "weight_sharing", False)]
    if not sharing:
        return False
    if len(names) > 1:
        others = ", ".join(repr(n) for n in names if n != sharing[0])
        raise SpecError(f"strategy {sharing[0]!r} cannot run side by side with {others}: it trains one supernet for "
                        "the whole search before any trial, then retrains the architectures that supernet rates best, "
                        "so its trials are not drawn one at a time and the others would wait for it instead of getting "
                        f"their share of the workers. Run {sharing[0]!r} as a search of its own (another study_name) "
                        "and compare the two with nasforge.load(...).leaderboard()")
    if not getattr(fam, "supports_weight_sharing", False):
        having = [n for n in registry.names("family")
                  if getattr(registry.get("family", n), "supports_weight_sharing", False)]
        raise SpecError(f"strategy {sharing[0]!r} trains a supernet that holds every architecture with shared weights, "
                        f"but family {fam.name!r} has none (Family.supernet); families with one: "
                        f"{', '.join(having) or '(none installed)'}")
    if sharing[0] == "darts" and not getattr(fam, "supports_darts", False):
        having = [n for n in registry.names("family") if getattr(registry.get("family", n), "supports_darts", False)]
        raise SpecError(f"strategy 'darts' trains a relaxed supernet (every choice a weighted sum of its operations), "
                        f"but family {fam.name!r}'s supernet has no mixed forward (supports_darts = False); families "
                        f"with one: {', '.join(having) or '(none installed)'}; strategy='enas' or 'rsws' search "
                        f"{fam.name!r}" + ("" if fam.supports_weight_sharing else " where it has a supernet"))
    return True


def check_supernet(fam, space: SearchSpace, task, *, strategy: Any, mixed: bool = False) -> None:
    """The family's supernet can hold ``space`` on ``task`` (it is built once, here, to find out); for
    darts, its mixed forward also runs once on a few example inputs, so a choice whose values cannot
    be summed is named before any training."""
    try:
        supernet = fam.supernet(space, task)
        if mixed:
            import torch

            from nasforge.strategies.oneshot.relaxation import ArchitectureWeights

            with torch.no_grad():
                supernet.mixed(torch.as_tensor(fam.example_input(task)),
                               ArchitectureWeights(space=space, seed=0).weights())
    except ConfigError as exc:
        raise SpecError(f"strategy {strategy!r} cannot search {space.source}: {exc}") from None


def check_objectives(objective: Any, fam, space: SearchSpace, task) -> tuple[Objective, ...]:
    """The objectives: the argument, else the space's, else the family's default; each a reported metric."""
    available = {**fam.metrics(task), **COMMON_METRICS}
    try:
        objectives = parse_objectives(objective) or space.objectives
    except NasforgeError as exc:
        raise SpecError(str(exc)) from None
    if not objectives:
        metric = fam.default_objective(task)
        objectives = (Objective(metric, available[metric]),)
    for obj in objectives:
        if obj.metric not in available:
            raise SpecError(
                f"family {fam.name!r} never reports metric {obj.metric!r} on task {task.name!r}; "
                f"it reports: {', '.join(available)}"
            )
    objectives = tuple(Objective(o.metric, o.direction or available[o.metric]) for o in objectives)
    if len({o.metric for o in objectives}) != len(objectives):
        raise SpecError("objective lists the same metric twice")
    return objectives


def check_budget(budget: Any, fam, space: SearchSpace) -> dict[str, int]:
    """The budget per trial in the family's unit: the argument over the space's over the family's default."""
    unit = fam.budget_unit
    budget_dict = dict(space.budget) or {unit: fam.default_budget}
    if isinstance(budget, int) and not isinstance(budget, bool):
        budget_dict = {unit: budget}
    elif isinstance(budget, Mapping):
        budget_dict = {**budget_dict, **budget}
    elif budget is not None:
        raise SpecError(f"budget must be an integer number of {unit} or a mapping like {{{unit}: 20}}, got {budget!r}")
    if unit not in budget_dict:
        raise SpecError(f"budget must give {unit!r} for family {fam.name!r}, got {budget_dict}")
    for key, value in budget_dict.items():
        check_int(f"budget.{key}", value, minimum=1)
    return budget_dict


def check_strategies(strategy: Any, *, trials: int, n_objectives: int, registry: Registry) -> tuple[str, ...]:
    """The strategy names: registered, each once, at least one trial each, fit for the objectives."""
    strategies = _strategy_names(strategy, registry)
    if len(strategies) > len(set(strategies)):
        twice = sorted({n for n in strategies if strategies.count(n) > 1})
        raise SpecError(f"strategy lists {', '.join(map(repr, twice))} more than once; list each strategy once")
    if len(strategies) > trials:
        raise SpecError(f"trials={trials} cannot be shared by {len(strategies)} strategies "
                        f"({', '.join(strategies)}): give at least one trial per strategy")
    for name in strategies:
        strategy_def = registry.get("strategy", name)
        if n_objectives > 1 and not strategy_def.multi_objective:
            multi = [n for n in registry.names("strategy") if registry.get("strategy", n).multi_objective]
            raise SpecError(f"strategy {name!r} handles a single objective; for {n_objectives} objectives "
                            f"use one of: {', '.join(multi)}")
        if n_objectives == 1 and not strategy_def.single_objective:
            raise SpecError(f"strategy {name!r} needs several objectives")
    return strategies


def check_pruner(pruner: str | None, *, n_strategies: int, n_objectives: int, registry: Registry) -> str:
    """The pruner's name (``none`` when None): registered, and able to judge this search's trials."""
    pruner = pruner or "none"
    registry.get("pruner", pruner)
    if n_strategies > 1 and pruner == "hyperband":
        raise SpecError("pruner='hyperband' splits the study into brackets across all trials, so it cannot judge "
                        "each strategy on its own trials; with several strategies use one of: median, percentile, "
                        "sha")
    if pruner != "none" and n_objectives > 1:
        raise SpecError("pruning is not supported for multi-objective searches (Optuna reports one value per "
                        "step); use pruner='none'")
    return pruner


def check_study_name(study_name: str | None) -> None:
    if study_name is not None and not re.fullmatch(r"[\w.\-]+", study_name or ""):
        raise SpecError(f"study_name may use letters, digits, '_', '-', '.', got {study_name!r}")


def check_stores(tracking_uri: str | None, storage: str | None, run_dir: str | Path) -> tuple[str, str]:
    """The MLflow tracking URI and the Optuna storage URL, local paths made absolute (workers share them)."""
    try:
        tracking = absolute_tracking_uri(tracking_uri or default_tracking_uri())
    except ValueError as exc:
        raise SpecError(str(exc)) from None
    if storage is None:
        storage = f"sqlite:///{Path(run_dir).resolve() / 'optuna.db'}"
    elif storage.startswith("sqlite:///") and not storage.startswith("sqlite:////"):
        storage = "sqlite:///" + str(Path(storage[len("sqlite:///"):]).resolve())
    return tracking, storage


def _check_space_fields(fam, space: SearchSpace) -> None:
    """Every top-level parameter must be a field of the family's config dataclass."""
    config_class = getattr(fam, "config_class", None)
    if config_class is None or not dataclasses.is_dataclass(config_class):
        return
    fields = {f.name for f in dataclasses.fields(config_class)}
    for param in space.params:
        if param.name not in fields:
            raise SpecError(f"{space.source}: params.{param.name}: family {fam.name!r} has no such config field; "
                            f"valid fields: {', '.join(sorted(fields))}")


def _strategy_names(strategy: Any, registry: Registry) -> tuple[str, ...]:
    """A name, or a list of names to run side by side; each must be registered."""
    if isinstance(strategy, str):
        names: tuple = (strategy,)
    elif isinstance(strategy, Sequence) and not isinstance(strategy, (bytes, bytearray)):
        names = tuple(strategy)
        if not names:
            raise SpecError(f"strategy is an empty list; give a name or several of: "
                            f"{', '.join(registry.names('strategy'))}")
    else:
        raise SpecError(f"strategy must be a name or a list of names, got {strategy!r}")
    for name in names:
        if not isinstance(name, str):
            raise SpecError(f"strategy names must be strings, got {name!r}")
        registry.get("strategy", name)   # UnknownNameError lists the valid names
    return names


def _strategy_options(options: Mapping[str, Any] | None, strategies: tuple[str, ...]) -> dict[str, Any]:
    """One strategy: its options. Several: ``{strategy: {option: value}}``; ``"tpe.n_startup_trials"``
    keys (as the CLI's ``--strategy-option tpe.n_startup_trials=5`` gives) are nested the same way."""
    options = dict(options or {})
    if len(strategies) == 1:
        return options
    nested: dict[str, dict[str, Any]] = {}
    for key, value in options.items():
        name, dot, option = str(key).partition(".")
        if name not in strategies:
            raise SpecError(f"with several strategies, strategy_options maps a strategy to its options, e.g. "
                            f"{{{strategies[0]!r}: {{...}}}} (CLI: --strategy-option {strategies[0]}.OPTION=VALUE); "
                            f"{key!r} names none of: {', '.join(strategies)}")
        if dot:
            nested.setdefault(name, {})[option] = value
        elif isinstance(value, Mapping):
            nested.setdefault(name, {}).update(value)
        else:
            raise SpecError(f"strategy_options[{key!r}] must be a mapping of that strategy's options, got {value!r}")
    return nested
