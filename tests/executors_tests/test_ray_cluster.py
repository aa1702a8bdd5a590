"""The Ray executor on a simulated two-node cluster (ray.cluster_utils.Cluster, one CPU per node)."""

import os

import pytest
import ray

import nasforge
from conftest import runs_of, stores_in
from toy_family import TOY_SPACE, ToyPlugin



@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    saved = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"   # set before the nodes start: they inherit it
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        if saved is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved


def test_trials_run_on_both_nodes_and_log_to_one_parent_run(cluster, tmp_path):
    store = stores_in(tmp_path)
    plugin = ToyPlugin()
    nasforge.register(plugin, name="toy-plugin")
    try:
        # address= joins the running cluster as a driver would on a cluster node (address="auto")
        result = nasforge.search("toy", space=TOY_SPACE, strategy="random", trials=4, budget=3, seed=1,
                                 backend="ray", address=cluster.address, **store)
    finally:
        nasforge.unregister(plugin)
    assert not ray.is_initialized()   # the search connected, so it disconnected too
    nodes = {node.node_id for node in cluster.list_all_nodes()}
    assert len(nodes) == 2

    runs = runs_of(store["tracking_uri"], "toy-digits")
    children = runs[runs["tags.mlflow.parentRunId"] == result.parent_run_id]
    assert len(children) == 4 and set(children["status"]) == {"FINISHED"}
    assert set(children["tags.worker_node"]) == nodes   # both nodes ran trials
    assert sorted(children["run_id"]) == sorted(t.user_attrs["mlflow_run_id"] for t in result.trials)
    assert [t.state.name for t in result.trials] == ["COMPLETE"] * 4
