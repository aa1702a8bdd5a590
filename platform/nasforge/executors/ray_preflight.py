"""Pre-flight on Ray: before the first trial, check that the nodes can run one, and say which node lacks what.

Without it, a plugin installed only on the head becomes N failed trials, and a trial that no
node can hold (``gpus_per_trial=1`` on CPU nodes) waits forever. :func:`run_preflight` reads
the alive nodes, asks each node that can hold a trial what it has (one small task pinned to it,
:func:`~nasforge.executors.ray_node_probe.describe_node`, under the search's ``runtime_env``),
then runs every function in :data:`CHECKS`. All problems are raised together in one
:class:`PreflightError`, each naming its node and the fix.

A new check is one function ``check_<what>(spec, nodes, expected) -> list[str]`` added to
:data:`CHECKS`; what it needs from each node goes into :class:`Expected` (the request) and
``describe_node`` (the answer). For example a data path every node must read: the path in
``Expected``, ``describe_node`` tries to open it, ``check_data_path`` words the problems (it does
exactly that for a data set streamed from disk).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, Callable

from nasforge.errors import NasforgeError

if TYPE_CHECKING:
    from nasforge.spec.arguments import SearchSpec

# Seconds for every node to answer (a worker process starts on each); a runtime_env that installs
# packages (pip, uv, conda) is set up on each node first, once, and may take minutes.
PROBE_TIMEOUT_S = 60.0
INSTALLING_TIMEOUT_S = 900.0
INSTALLING_FIELDS = ("pip", "uv", "conda", "container", "image_uri")
# Ray's own resources; any other resource a node has was given by `ray start --resources`.
STANDARD = ("CPU", "GPU", "memory", "object_store_memory")
RUN_TIME = "(registered at run time)"
FIX_VERSIONS = ("install the same versions on every node (in the environment its `ray start` runs, then restart that "
                "node's Ray), or carry the plugin with runtime_env (docs/ray.md, 'Plugins on the nodes')")


class PreflightError(NasforgeError):
    """The Ray cluster cannot run this search; the message names each node and what it lacks."""


@dataclass(frozen=True, kw_only=True)
class Node:
    """One alive Ray node: what Ray says about it, and its answer to the probe."""

    node_id: str
    ip: str
    resources: dict[str, float]
    answer: dict[str, Any] | None = None   # describe_node's answer
    failure: str | None = None             # why there is no answer

    @property
    def label(self) -> str:
        custom = sorted(k for k in self.resources if k not in STANDARD and not k.startswith(("node:", "accelerator")))
        host = (self.answer or {}).get("hostname")
        extra = "".join(f", {part}" for part in ([host] if host else []) + custom)
        return f"node {self.node_id[:8]} ({self.ip}{extra})"

    def holds(self, need: dict[str, float]) -> bool:
        return all(self.resources.get(k, 0.0) >= v - 1e-9 for k, v in need.items())


@dataclass(frozen=True, kw_only=True)
class Expected:
    """What every node must have, as the driver has it."""

    distributions: dict[str, str]                       # distribution -> the driver's version
    lookups: list[tuple[str, str, str]] = field(default_factory=list)   # (kind, name, distribution)
    plugins: bytes | None = None                        # run-time plugins' payload (ray_plugins)
    plugin_names: tuple[str, ...] = ()
    data_paths: dict[str, int] = field(default_factory=dict)   # a streamed data set's files -> their size

    def request(self) -> dict[str, Any]:
        return {"distributions": list(self.distributions), "lookups": [(k, n) for k, n, _ in self.lookups],
                "plugins": self.plugins, "data_paths": list(self.data_paths)}


def run_preflight(spec: "SearchSpec", *, registry, plugins: bytes | None, probe: bool) -> list[Node]:
    """Check the alive nodes for ``spec``; return them (with their answers) or raise :class:`PreflightError`.

    ``probe=False`` (a local Ray this search started: its workers run this Python) checks resources only.
    """
    nodes = alive_nodes()
    need = trial_resources(spec)
    expected = expectations(spec, registry, plugins)
    candidates = [n for n in nodes if n.holds(need)]
    if probe and candidates:
        answered = {n.node_id: n for n in ask(candidates, expected, timeout=probe_timeout(spec))}
        nodes = [answered.get(n.node_id, n) for n in nodes]
    problems = [p for check in CHECKS for p in check(spec, nodes, expected)]
    if problems:
        raise PreflightError(f"the Ray cluster cannot run this search ({len(nodes)} node(s) checked before the first "
                             "trial):\n" + "\n".join(f"  - {p}" for p in problems))
    return nodes


def trial_resources(spec: "SearchSpec") -> dict[str, float]:
    need = {"CPU": spec.cpus_per_trial}
    if spec.gpus_per_trial:
        need["GPU"] = spec.gpus_per_trial
    return need


def probe_timeout(spec: "SearchSpec") -> float:
    installs = any(key in (spec.runtime_env or {}) for key in INSTALLING_FIELDS)
    return INSTALLING_TIMEOUT_S if installs else PROBE_TIMEOUT_S


def alive_nodes() -> list[Node]:
    import ray

    return [Node(node_id=n["NodeID"], ip=n.get("NodeManagerAddress", "?"), resources=dict(n.get("Resources") or {}))
            for n in ray.nodes() if n.get("Alive")]


def expectations(spec: "SearchSpec", registry, plugins: bytes | None) -> Expected:
    """nasforge's version, and the distribution and version of the plugin behind the family and the task."""
    distributions = {"nasforge": installed_version("nasforge")}
    lookups = []
    for kind, name in (("family", spec.family),) + ((("task", spec.task),) if spec.data is None else ()):
        info = registry.plugin_info(registry.origin(kind, name))
        if info.distribution == RUN_TIME:
            continue   # pickled and sent with the trials: the payload is checked instead
        lookups.append((kind, name, info.distribution))
        distributions.setdefault(info.distribution, info.version)
    names = tuple(i.name for i in registry.plugin_infos() if i.distribution == RUN_TIME) if plugins else ()
    return Expected(distributions=distributions, lookups=lookups, plugins=plugins, plugin_names=names,
                    data_paths=data_files(spec))


def data_files(spec: "SearchSpec", *, images: int = 3) -> dict[str, int]:
    """The files a streamed data set's trials read on the workers (a few of an image folder's), with
    their size here. In-memory data travels through Ray's object store instead: nothing to check."""
    import os

    from nasforge.data.streams import is_stream

    paths: list[str] = []
    if spec.data is not None:
        for split in ("train", "val", "test"):
            x = spec.data.task.split(split)[0]
            if not is_stream(x):
                continue
            if hasattr(x, "path"):
                paths.append(x.path)
            elif hasattr(x, "files") and x.files:
                paths += list(x.files[:images]) + [x.files[-1]]
    return {p: os.path.getsize(p) for p in dict.fromkeys(paths)}


def installed_version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def ask(nodes: list[Node], expected: Expected, *, timeout: float) -> list[Node]:
    """Run ``describe_node`` once on each of ``nodes`` (pinned to it, no CPU reserved)."""
    import ray
    from ray import cloudpickle
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from nasforge.executors import ray_node_probe

    request = expected.request()
    # By value: the probe must answer where nasforge cannot be imported.
    cloudpickle.register_pickle_by_value(ray_node_probe)
    try:
        remote = ray.remote(ray_node_probe.describe_node)
        refs = {remote.options(num_cpus=0, max_retries=0, name="nasforge-preflight",
                               scheduling_strategy=NodeAffinitySchedulingStrategy(n.node_id, soft=False))
                .remote(request): n for n in nodes}
    finally:
        cloudpickle.unregister_pickle_by_value(ray_node_probe)
    ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
    out = []
    for ref in ready:
        try:
            out.append(dataclasses.replace(refs[ref], answer=ray.get(ref)))
        except Exception as exc:  # noqa: BLE001 - a runtime_env that cannot be set up, a node that died
            out.append(dataclasses.replace(refs[ref], failure=last_line(exc)))
    for ref in late:
        ray.cancel(ref, force=True)
        out.append(dataclasses.replace(refs[ref], failure=(
            f"no answer within {timeout:g} s: no worker process could start there (see the node's "
            "logs, /tmp/ray/session_latest/logs/raylet.out and python-core-worker-*.log on that machine)")))
    return out


def last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1][:400] if lines else ''}"


# -- the checks --------------------------------------------------------------------------------------
def check_trial_fits(spec: "SearchSpec", nodes: list[Node], expected: Expected) -> list[str]:
    """Some node holds one trial's CPUs and GPUs (else Ray would keep the trials pending forever)."""
    need = trial_resources(spec)
    if any(n.holds(need) for n in nodes):
        return []
    have = "; ".join(f"{n.label}: {n.resources.get('CPU', 0):g} CPUs, {n.resources.get('GPU', 0):g} GPUs"
                     for n in nodes)
    if spec.gpus_per_trial and not any(n.resources.get("GPU") for n in nodes):
        return [f"gpus_per_trial={spec.gpus_per_trial:g}, but no node has a GPU ({have}). Start the GPU machines' "
                "Ray with the GPUs visible (`ray start ... --num-gpus N`), or search on CPUs (gpus_per_trial=0)"]
    return [f"no node can hold one trial of cpus_per_trial={spec.cpus_per_trial:g}, gpus_per_trial="
            f"{spec.gpus_per_trial:g} ({have}): lower them (fractions are allowed) or add a bigger node"]


def check_answered(spec: "SearchSpec", nodes: list[Node], expected: Expected) -> list[str]:
    """Each node that was asked answered (a worker process started there, with the runtime_env)."""
    out = []
    for n in nodes:
        if n.failure is None:
            continue
        if "RuntimeEnvSetupError" in n.failure:
            out.append(f"{n.label}: the runtime_env could not be set up there: {n.failure}")
        else:
            out.append(f"{n.label}: could not run the pre-flight check there: {n.failure}")
    return out


def check_nasforge(spec: "SearchSpec", nodes: list[Node], expected: Expected) -> list[str]:
    """nasforge imports on each node, at the driver's version."""
    out = []
    want = expected.distributions["nasforge"]
    for n in nodes:
        if n.answer is None:
            continue
        python = n.answer.get("executable")
        if n.answer["nasforge_error"]:
            out.append(f"{n.label}: nasforge cannot be imported there ({n.answer['nasforge_error']}; Python {python}): "
                       f"install nasforge {want} in the environment that node's `ray start` runs")
            continue
        there = n.answer["versions"].get("nasforge")
        if there and want != "unknown" and there != want:
            out.append(f"{n.label}: nasforge {there} there, {want} on the driver: {FIX_VERSIONS}")
    return out


def check_plugins(spec: "SearchSpec", nodes: list[Node], expected: Expected) -> list[str]:
    """The family's and the task's plugins load on each node, at the driver's versions; run-time plugins unpickle."""
    out = []
    for n in nodes:
        if n.answer is None or n.answer["nasforge_error"]:
            continue
        if n.answer["registry_error"]:
            out.append(f"{n.label}: nasforge's plugins fail to load there ({n.answer['registry_error']}): "
                       f"{FIX_VERSIONS}")
            continue
        for kind, name, dist in expected.lookups:
            found = n.answer["lookups"].get(f"{kind}:{name}") or {}
            want, there = expected.distributions.get(dist, ""), n.answer["versions"].get(dist)
            if found.get("error"):
                if there is None:
                    out.append(f"{n.label}: {kind} {name!r} is unknown there: its plugin's distribution {dist} "
                               f"({want} on the driver) is not installed there; {FIX_VERSIONS}")
                else:
                    out.append(f"{n.label}: {kind} {name!r} fails to load there ({found['error']}); {FIX_VERSIONS}")
            elif there and want and there != want:
                out.append(f"{n.label}: {kind} {name!r} comes from {dist} {there} there, {want} on the driver; "
                           f"{FIX_VERSIONS}")
        if n.answer.get("plugins_error"):
            names = ", ".join(expected.plugin_names) or "registered with nasforge.register"
            out.append(f"{n.label}: the plugins registered at run time ({names}) cannot be loaded there "
                       f"({n.answer['plugins_error']}): install what their modules import on every node, or ship it "
                       "with runtime_env (py_modules)")
    return out


def check_data_path(spec: "SearchSpec", nodes: list[Node], expected: Expected) -> list[str]:
    """Every node reads a streamed data set's files, the same size as on the driver."""
    out = []
    for n in nodes:
        if n.answer is None:
            continue
        for path, size in expected.data_paths.items():
            there = n.answer.get("data_paths", {}).get(path)
            if isinstance(there, int) and there == size:
                continue
            why = there if isinstance(there, str) else f"{there} bytes there, {size} on the driver"
            out.append(f"{n.label}: cannot read the data file {path} ({why}); a data set streamed from disk is read "
                       "on the workers: the same files must be at the same path on every node (a shared filesystem, "
                       "or copies), or load it (data_options={'stream': False}) to send it through Ray's object store")
    return out


CHECKS: tuple[Callable[["SearchSpec", list[Node], Expected], list[str]], ...] = (
    check_trial_fits, check_answered, check_nasforge, check_plugins, check_data_path)
