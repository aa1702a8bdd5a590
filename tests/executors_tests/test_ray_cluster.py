"""The Ray executor on a real cluster made with `ray start`: a head and a worker node, token auth on.

The nodes are `ray start` processes on this machine (tests/executors_tests/ray_nodes.py), each
with its own custom resource, as a user would start them; the head's environment has a plugin
(``nasforge-fancy``, installed in a folder on its PYTHONPATH) that the worker's lacks.
"""

import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import nasforge
from conftest import runs_of
from toy_family import SLOW_TOY_SPACE, ToyPlugin

import ray  # noqa: E402  (a dev dependency: a broken import fails loudly)

from executors_tests.ray_nodes import RayCluster, free_port  # noqa: E402
from nasforge.executors.ray_connect import RayConnectError, refresh_auth_settings  # noqa: E402
from nasforge.executors.ray_preflight import PreflightError  # noqa: E402

NASFORGE = str(Path(sys.executable).with_name("nasforge"))
FANCY_VERSION = "0.3"
FANCY = '''
"""nasforge-fancy: a one-layer family, installed on some nodes only."""
from dataclasses import dataclass

import nasforge


@dataclass(kw_only=True)
class FancyConfig:
    lr: float = 0.1


class FancyFamily(nasforge.Family):
    name = "fancy"
    task_kinds = ("classification",)
    config_class = FancyConfig
    default_space = "<fancy>"
    default_task = "digits"
    budget_unit = "epochs"
    default_budget = 2

    def metrics(self, task):
        return {"val_accuracy": "maximize"}

    def build(self, config, task):
        import torch.nn as nn

        return nn.Linear(task.input_shape[0], task.n_classes)

    def fit(self, model, task, config, budget, reporter):
        import torch

        x, y = torch.as_tensor(task.x_train), torch.as_tensor(task.y_train)
        opt = torch.optim.SGD(model.parameters(), lr=config.lr)
        for epoch in range(1, budget["epochs"] + 1):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            metrics = self.evaluate(model, task, "val")
            reporter.report(epoch, metrics)
        return metrics

    def evaluate(self, model, task, split="test"):
        import torch

        xs, ys = task.split(split)
        with torch.no_grad():
            acc = (model(torch.as_tensor(xs)).argmax(1) == torch.as_tensor(ys)).float().mean().item()
        return {f"{split}_accuracy": acc}


@nasforge.hookimpl
def register_families(register):
    register(FancyFamily())
'''


def install_fancy(site: Path) -> Path:
    """``nasforge-fancy`` installed into ``site`` as pip would (package + dist-info with the entry point)."""
    (site / "nasforge_fancy").mkdir(parents=True)
    (site / "nasforge_fancy" / "__init__.py").write_text(FANCY)
    info = site / f"nasforge_fancy-{FANCY_VERSION}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: nasforge-fancy\nVersion: {FANCY_VERSION}\n")
    (info / "entry_points.txt").write_text("[nasforge]\nfancy = nasforge_fancy\n")
    return site


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Head (1 CPU, resource head_node, nasforge-fancy installed) + worker (1 CPU, resource worker_node)."""
    root = tmp_path_factory.mktemp("ray_cluster")
    site = install_fancy(root / "site")
    nodes = RayCluster()
    try:
        nodes.start_head(resources={"head_node": 1}, env={"PYTHONPATH": str(site)})
        nodes.add_node("worker", resources={"worker_node": 1})
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("RAY_AUTH_MODE", "token")
            mp.setenv("RAY_AUTH_TOKEN", nodes.token)
            refresh_auth_settings()
            ray.init(address=nodes.address)
            ids = {name: n["NodeID"] for n in ray.nodes() if n["Alive"] for name in n["Resources"]
                   if name in ("head_node", "worker_node")}
            ray.shutdown()
        nodes.site, nodes.ids = site, ids
        yield nodes
    finally:
        if ray.is_initialized():
            ray.shutdown()
        nodes.stop()
        refresh_auth_settings()   # the next test's Ray reads the restored environment


@pytest.fixture
def token(cluster, monkeypatch):
    """This process sends the cluster's token (as a user who exported RAY_AUTH_MODE and RAY_AUTH_TOKEN)."""
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", cluster.token)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


@pytest.fixture(scope="module")
def plugins():
    from executors_tests.ray_families import RayTestPlugin

    registered = {"toy-plugin": ToyPlugin(), "ray-test-plugin": RayTestPlugin()}
    for name, plugin in registered.items():
        nasforge.register(plugin, name=name)
    try:
        yield
    finally:
        for plugin in registered.values():
            nasforge.unregister(plugin)


def children(store, result):
    runs = runs_of(store["tracking_uri"], result.spec.experiment)
    return runs[runs["tags.mlflow.parentRunId"] == result.parent_run_id]


def assert_nothing_stored(store):
    assert not Path(store["tracking_uri"].removeprefix("sqlite:///")).exists()
    assert not Path(store["storage"].removeprefix("sqlite:///")).exists()
    assert not ray.is_initialized()


# -- joining ---------------------------------------------------------------------------------------
def test_trials_run_on_both_nodes_and_log_to_one_parent_run(cluster, token, plugins, store):
    result = nasforge.search("toy", space=SLOW_TOY_SPACE, strategy="random", trials=4, budget=3, seed=1,
                             backend="ray", address=cluster.address, **store)
    assert not ray.is_initialized()   # the search connected, so it disconnected too

    runs = children(store, result)
    assert len(runs) == 4 and set(runs["status"]) == {"FINISHED"}
    assert set(runs["tags.worker_node"]) == set(cluster.ids.values())   # both nodes ran trials
    assert sorted(runs["run_id"]) == sorted(t.user_attrs["mlflow_run_id"] for t in result.trials)
    assert [t.state.name for t in result.trials] == ["COMPLETE"] * 4


@pytest.mark.parametrize("address", ["auto", None])
def test_auto_and_no_address_join_the_cluster_in_RAY_ADDRESS(cluster, token, plugins, store, monkeypatch, address):
    monkeypatch.setenv("RAY_ADDRESS", cluster.address)   # what `ray job submit` sets for its job
    result = nasforge.search("toy", space=SLOW_TOY_SPACE, strategy="random", trials=2, budget=2, seed=2,
                             backend="ray", address=address, max_concurrent=1, **store)
    runs = children(store, result)
    assert len(runs) == 2 and set(runs["status"]) == {"FINISHED"}
    assert set(runs["tags.worker_node"]) <= set(cluster.ids.values())


# -- what fails how: before anything is stored -------------------------------------------------------
def test_no_token_says_how_to_send_one(cluster, plugins, store, monkeypatch, tmp_path):
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))   # no ~/.ray/auth_token either
    with pytest.raises(RayConnectError) as info:
        nasforge.search("toy", space=SLOW_TOY_SPACE, trials=2, budget=2, backend="ray", address=cluster.address,
                        **store)
    message = str(info.value)
    assert f"address={cluster.address!r}" in message
    assert "requires a token and this process sends none (RAY_AUTH_MODE is not set here)" in message
    assert "RAY_AUTH_MODE=token" in message and "RAY_AUTH_TOKEN" in message and "docs/ray.md" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__   # no Ray traceback attached
    assert_nothing_stored(store)


def test_a_wrong_token_is_named_as_refused(cluster, plugins, store, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "0" * 32)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(RayConnectError, match=r"the cluster refused this process's token \(from RAY_AUTH_TOKEN\)"):
        nasforge.search("toy", space=SLOW_TOY_SPACE, trials=2, budget=2, backend="ray", address=cluster.address,
                        **store)
    assert_nothing_stored(store)


@pytest.fixture
def http_port():
    """An HTTP server that serves nothing, where Ray would look for 127.0.0.1 (it swaps in this node's IP)."""
    from ray._private.services import resolve_ip_for_localhost

    server = http.server.ThreadingHTTPServer((resolve_ip_for_localhost("127.0.0.1"), 0),
                                             http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("kind", ["closed", "http"])
def test_a_wrong_port_is_named(cluster, token, plugins, store, kind, request):
    port = free_port() if kind == "closed" else request.getfixturevalue("http_port")
    with pytest.raises(RayConnectError) as info:
        nasforge.search("toy", space=SLOW_TOY_SPACE, trials=2, budget=2, backend="ray", address=f"127.0.0.1:{port}",
                        **store)
    message = str(info.value)
    assert f":{port}" in message and "the head's --port (default 6379" in message
    assert ("nothing listens" in message) if kind == "closed" else ("an HTTP server" in message)
    assert_nothing_stored(store)


def test_gpus_per_trial_that_no_node_has_names_every_node(cluster, token, plugins, store):
    with pytest.raises(PreflightError) as info:
        nasforge.search("toy", space=SLOW_TOY_SPACE, trials=2, budget=2, backend="ray", address=cluster.address,
                        gpus_per_trial=1, **store)
    message = str(info.value)
    assert "gpus_per_trial=1, but no node has a GPU" in message and "--num-gpus" in message
    for name, node_id in cluster.ids.items():
        assert f"node {node_id[:8]} (" in message and name in message
    assert_nothing_stored(store)


# -- a plugin on some nodes only ------------------------------------------------------------------------
def test_a_plugin_missing_on_a_node_stops_before_the_first_trial_and_runtime_env_carries_it(cluster, tmp_path):
    space = tmp_path / "fancy.yaml"
    space.write_text("params:\n  lr: {float: [0.01, 1.0], log: true}\n")
    command = [NASFORGE, "search", "fancy", "--task", "digits", "--space", str(space), "--trials", "4",
               "--budget", "2", "--backend", "ray", "--address", cluster.address, "--no-plots", "-q",
               "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--storage", f"sqlite:///{tmp_path / 'optuna.db'}"]
    # The driver has the plugin (as on the head); the worker node's environment lacks it.
    env = cluster.env({"PYTHONPATH": str(cluster.site)})
    run = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)

    assert run.returncode == 2, run.stderr[-3000:]
    error = run.stderr
    assert "nasforge: error: the Ray cluster cannot run this search" in error and "Traceback" not in error
    worker, head = cluster.ids["worker_node"], cluster.ids["head_node"]
    assert f"node {worker[:8]} (" in error and "worker_node" in error
    assert f"node {head[:8]} (" not in error   # the head has it
    assert (f"family 'fancy' is unknown there: its plugin's distribution nasforge-fancy ({FANCY_VERSION} on the "
            "driver) is not installed there") in error
    assert "runtime_env" in error
    assert not (tmp_path / "mlflow.db").exists()   # stopped before any store was written

    # The same search, the plugin carried to every node by Ray (package + dist-info, as installed).
    runtime_env = {"py_modules": [str(cluster.site / "nasforge_fancy"),
                                  str(cluster.site / f"nasforge_fancy-{FANCY_VERSION}.dist-info")]}
    run = subprocess.run(command + ["--runtime-env", json.dumps(runtime_env)], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    runs = runs_of(f"sqlite:///{tmp_path / 'mlflow.db'}", "fancy-digits")
    trials = runs[runs["tags.mlflow.parentRunId"].notna()]
    assert len(trials) == 4 and set(trials["status"]) == {"FINISHED"}
    assert set(trials["tags.worker_node"]) == {worker, head}


# -- a node lost mid-search ----------------------------------------------------------------------------
def test_trials_of_a_lost_node_are_retried_on_the_others(cluster, token, plugins, store):
    # A third node whose processes have NASFORGE_TEST_DOOMED: the first trial there kills its raylet.
    doomed = cluster.add_node("doomed", resources={"doomed_node": 1}, env={"NASFORGE_TEST_DOOMED": "1"})
    space = {"params": {**SLOW_TOY_SPACE["params"], "doom_env": "NASFORGE_TEST_DOOMED"}}
    try:
        # 3 nodes x 1 CPU: the first three trials start one per node
        result = nasforge.search("doomed", space=space, strategy="random", trials=6, budget=3, seed=3,
                                 backend="ray", address=cluster.address, max_failures=2, **store)
    finally:
        doomed.stop()
        cluster.nodes.remove(doomed)

    assert [t.state.name for t in result.trials] == ["COMPLETE"] * 6
    runs = children(store, result)
    finished, killed = runs[runs["status"] == "FINISHED"], runs[runs["status"] == "KILLED"]
    assert len(finished) + len(killed) == len(runs)
    # each trial finished exactly once, on the nodes that are left, in the run the study points to
    assert sorted(finished["tags.trial_number"].astype(int)) == list(range(6))
    assert set(finished["tags.worker_node"]) <= set(cluster.ids.values())
    assert set(finished["run_id"]) == {t.user_attrs["mlflow_run_id"] for t in result.trials}
    # the attempt that ran on the lost node is closed, not left RUNNING
    assert len(killed) >= 1
    assert not set(killed["tags.worker_node"]) & set(cluster.ids.values())
    assert set(killed["tags.nasforge_status"]) == {"interrupted"}
