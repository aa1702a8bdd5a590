"""The Ray pre-flight's data check: a streamed data set's files must be readable on every node."""

import dataclasses

import numpy as np

import nasforge
from nasforge.executors.ray_node_probe import describe_node
from nasforge.executors.ray_preflight import Node, check_data_path, expectations
from nasforge.spec.arguments import build_spec


def test_a_node_that_cannot_read_the_streamed_files_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32))
    np.save(tmp_path / "y.npy", np.arange(60) % 2)
    spec = build_spec("mlp", data=(str(tmp_path / "x.npy"), str(tmp_path / "y.npy")), data_options={"stream": True},
                      trials=1, backend="ray")
    expected = expectations(spec, nasforge.get_registry(), None)
    assert list(expected.data_paths) == [str(tmp_path / "x.npy")]          # one file, read by every split

    here = Node(node_id="a" * 32, ip="10.0.0.1", resources={"CPU": 2.0}, answer=describe_node(expected.request()))
    assert check_data_path(spec, [here], expected) == []                   # this node reads it
    (tmp_path / "x.npy").rename(tmp_path / "moved.npy")                    # as on a node without the file
    there = dataclasses.replace(here, node_id="b" * 32, ip="10.0.0.2", answer=describe_node(expected.request()))
    problems = check_data_path(spec, [here, there], expected)
    assert len(problems) == 1 and problems[0].startswith("node bbbbbbbb (10.0.0.2")   # the node that cannot
    assert f"cannot read the data file {tmp_path / 'x.npy'} (FileNotFoundError" in problems[0]
    assert "the same path on every node" in problems[0]


def test_in_memory_data_needs_no_file_on_the_nodes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = build_spec("mlp", data=(np.zeros((60, 3)), np.arange(60) % 2), trials=1, backend="ray")
    assert expectations(spec, nasforge.get_registry(), None).data_paths == {}
