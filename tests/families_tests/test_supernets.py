"""The cnn, mlp and rnn supernets: a path computes its stand-alone network's function with the shared weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nasforge.data.tasks import load_task
from nasforge.errors import ConfigError
from nasforge.plugins import get_registry
from nasforge.spec.space import SearchSpace
from nasforge.strategies.oneshot.paths import UniformPaths
from nasforge_cnn.cnn_supernet import head_key
from nasforge_cnn.shapes import plan_blocks

CNN_SPACE = {  # everything the cnn supernet holds, varied (the shipped cnn_enas space fixes some)
    "family": "cnn",
    "params": {
        "n_blocks": {"int": [1, 3]},
        "blocks": {"repeat": "n_blocks", "params": {
            "filters": {"choice": [4, 8, 12]}, "kernel_size": {"choice": [3, 5]}, "stride": {"choice": [1, 2]},
            "padding": {"choice": ["same", "valid"]}, "activation": {"choice": ["relu", "tanh"]},
            "pool": {"choice": ["max", "avg", "none"]}, "batch_norm": {"choice": [True, False]},
            "dropout": {"float": [0.0, 0.3]}}},
        "head": {"choice": ["linear", "dense"]},
        "dense_units": {"choice": [8, 16], "when": {"head": "dense"}},
        "dense_activation": {"choice": ["relu", "gelu"], "when": {"head": "dense"}},
        "lr": 0.01,
    },
}


def _paths(space, n, seed=0):
    return [space.config_from_flat(flat) for flat, _ in UniformPaths(space=space).draw(np.random.default_rng(seed), n)]


def _cnn_copy(supernet, model, config, task):
    """The path's slices of the shared weights, copied into the stand-alone network."""
    layout = supernet.layout
    plans = plan_blocks(config.blocks, layout)
    width = layout[0]
    with torch.no_grad():
        for i, (block, plan) in enumerate(zip(config.blocks, plans)):
            part = getattr(model, f"block{i}")
            conv = supernet.convs[i]
            part.conv.weight.copy_(_centre(conv.weight[:block.filters, :width], part.conv.weight.shape[2:]))
            if block.batch_norm:
                part.norm.weight.copy_(supernet.norms[i].weight[:block.filters])
                part.norm.bias.copy_(supernet.norms[i].bias[:block.filters])
            else:
                part.conv.bias.copy_(conv.bias[:block.filters])
            width = block.filters
        key = head_key(len(plans), plans[-1].out_shape[1:])
        features = block.filters * math.prod(plans[-1].out_shape[1:])
        if config.head == "linear":
            model.logits.weight.copy_(supernet.linear[key].weight[:, :features])
            model.logits.bias.copy_(supernet.linear[key].bias)
        else:
            model.dense.weight.copy_(supernet.dense[key].weight[:config.dense_units, :features])
            model.dense.bias.copy_(supernet.dense[key].bias[:config.dense_units])
            model.logits.weight.copy_(supernet.dense_out.weight[:, :config.dense_units])
            model.logits.bias.copy_(supernet.dense_out.bias)


def _centre(weight, kernel):
    """The centre ``kernel`` taps of a larger kernel (how a path uses a smaller kernel size)."""
    return weight[(..., *(slice((k - c) // 2, (k - c) // 2 + c) for k, c in zip(weight.shape[2:], kernel)))]


@pytest.mark.parametrize("task_name", ["mnist1d", "digits"])
def test_a_cnn_path_is_its_standalone_network(task_name):
    family, task = get_registry().get("family", "cnn"), load_task(task_name, 0)
    space = SearchSpace.from_dict(CNN_SPACE)
    torch.manual_seed(0)
    supernet = family.supernet(space, task)
    x = torch.as_tensor(task.x_val[:32])
    compared = 0
    for params in _paths(space, 25):
        config = family.make_config(params)
        model = family.build(config, task)
        _cnn_copy(supernet, model, config, task)
        for mode in (False, True):   # train mode: batch norm on the minibatch in both
            if not mode and any(b.batch_norm for b in config.blocks):
                continue              # eval mode: the network's running averages, never the supernet's
            supernet.train(mode), model.train(mode)
            torch.manual_seed(1)
            path = supernet(x, config)
            torch.manual_seed(1)
            assert torch.allclose(path, model(x), atol=1e-5), params
        compared += 1
    assert compared == 25


@pytest.mark.parametrize("kernel, other", [(3, 5), (5, 3)])
def test_kernel_sizes_share_one_kernel(kernel, other):
    """A step through a kernel-3 path changes only the centre 3 taps of the block's 5-tap kernel,
    and a kernel-5 path all 5; either way the other size's path computes something new."""
    family, task = get_registry().get("family", "cnn"), load_task("mnist1d", 0)
    space = SearchSpace.from_dict(CNN_SPACE)
    torch.manual_seed(0)
    supernet = family.supernet(space, task)
    block = {"filters": 12, "stride": 1, "padding": "same", "pool": "none", "batch_norm": True}
    path = family.make_config({"n_blocks": 1, "blocks": [{**block, "kernel_size": kernel}], "lr": 0.01})
    seen = family.make_config({"n_blocks": 1, "blocks": [{**block, "kernel_size": other}], "lr": 0.01})
    x, y = torch.as_tensor(task.x_train[:64]), torch.as_tensor(task.y_train[:64])
    before, seen_before = supernet.convs[0].weight.detach().clone(), supernet(x, seen).detach()
    torch.nn.functional.cross_entropy(supernet(x, path), y).backward()
    torch.optim.SGD(supernet.parameters(), lr=0.5).step()
    moved = (supernet.convs[0].weight.detach() != before).any(dim=(0, 1))
    assert moved.tolist() == [kernel == 5, True, True, True, kernel == 5]
    assert not torch.allclose(supernet(x, seen), seen_before)


def test_an_mlp_path_is_its_standalone_network():
    family, task = get_registry().get("family", "mlp"), load_task("digits", 0)
    space = SearchSpace.load("mlp_enas")
    torch.manual_seed(0)
    supernet = family.supernet(space, task)
    x = torch.as_tensor(task.x_val[:32])
    for params in _paths(space, 10):
        config = family.make_config(params)
        model = family.build(config, task).eval()
        linears = [m for m in model if isinstance(m, torch.nn.Linear)]
        width = x.shape[1]
        with torch.no_grad():
            for layer, linear, shared in zip(config.layers, linears, supernet.hidden):
                linear.weight.copy_(shared.weight[:layer.units, :width])
                linear.bias.copy_(shared.bias[:layer.units])
                width = layer.units
            out = supernet.outputs[str(len(config.layers))]
            linears[-1].weight.copy_(out.weight[:, :width])
            linears[-1].bias.copy_(out.bias)
        supernet.eval()
        assert torch.allclose(supernet(x, config), model(x), atol=1e-5), params


def test_narrow_paths_share_the_wide_paths_weights():
    """Widths are slices: a step through a 16-unit path changes the first 16 rows of the 256-unit weights."""
    family, task = get_registry().get("family", "mlp"), load_task("digits", 0)
    space = SearchSpace.load("mlp_enas")
    supernet = family.supernet(space, task)
    config = family.make_config({"n_layers": 1, "layers": [{"units": 16, "activation": "tanh"}]})
    before = supernet.hidden[0].weight.detach().clone()
    loss = torch.nn.functional.cross_entropy(supernet(torch.as_tensor(task.x_train[:64]), config),
                                             torch.as_tensor(task.y_train[:64]))
    loss.backward()
    torch.optim.SGD(supernet.parameters(), lr=0.5).step()
    moved = (supernet.hidden[0].weight.detach() != before).any(dim=1)
    assert moved[:16].all() and not moved[16:].any()


@pytest.mark.parametrize("family_name, space, message", [
    ("cnn", {"params": {"n_blocks": 2, "blocks": {"repeat": "n_blocks", "params": {"filters": 8}},
                        "lr": {"float": [1e-4, 1e-2], "log": True}}}, "'lr'"),
    ("cnn", {"params": {"n_blocks": 2, "blocks": {"repeat": "n_blocks", "params": {"kernel_size": {"int": [1, 99]}}},
                        "lr": 0.01}}, "blocks.0.kernel_size"),
    ("cnn", {"params": {"head": "linear", "lr": 0.01}}, "repeated block"),
    ("mlp", {"params": {"n_layers": {"int": [1, 2]}, "layers": {"repeat": "n_layers", "params": {"units": 8}},
                        "batch_size": {"choice": [32, 64]}}}, "'batch_size'"),
    ("mlp", {"params": {"n_layers": 1, "layers": {"repeat": "n_layers", "params": {"units": {"int": [8, 9]}}},
                        "optimizer": {"choice": ["adam", "sgd"]}}}, "'optimizer'"),
])
def test_a_space_the_supernet_cannot_hold_names_the_parameter(family_name, space, message):
    family, task = get_registry().get("family", family_name), load_task("digits", 0)
    with pytest.raises(ConfigError, match=message):
        family.supernet(SearchSpace.from_dict(space), task)


@pytest.mark.parametrize("task_name", ["digits", "majority_tokens"])
def test_an_enas_cell_path_is_its_standalone_cell(task_name):
    """ENAS's sharing: node k reading node j uses the (k, j) matrix of the supernet, whatever the rest."""
    from nasforge_rnn.enas_cell import predecessor

    family, task = get_registry().get("family", "rnn"), load_task(task_name, 0)
    space = SearchSpace.load("rnn_enas")
    torch.manual_seed(0)
    supernet = family.supernet(space, task).eval()
    x = torch.as_tensor(task.x_val[:16])
    for params in _paths(space, 10):
        config = family.make_config(params)
        model = family.build(config, task).eval()
        with torch.no_grad():
            shared = dict(supernet.named_parameters())
            for name, param in model.named_parameters():
                if name.startswith("node_proj."):
                    k = int(name.split(".")[1]) + 1
                    name = f"pairs.{k}_{predecessor(k, config.nodes[k - 1].input)}.weight"
                param.copy_(shared[name])
            assert torch.allclose(supernet(x, config), model(x), atol=1e-5), params


def test_the_enas_cell_learns_digits_as_sequences():
    family, task = get_registry().get("family", "rnn"), load_task("digits", 0)
    config = family.make_config({"cell": "enas", "hidden_size": 32, "enas_activation": "tanh",
                                 "nodes": [{"input": 0, "activation": "relu"}, {"input": 1, "activation": "tanh"}],
                                 "lr": 3e-3})
    torch.manual_seed(0)
    model = family.build(config, task)
    from nasforge.family import NullReporter

    metrics = family.fit(model, task, config, {"epochs": 8}, NullReporter())
    assert metrics["val_accuracy"] > 0.8   # chance is 0.1


def test_enas_cell_inputs_wrap_onto_the_earlier_nodes():
    family = get_registry().get("family", "rnn")
    config = family.make_config({"cell": "enas", "nodes": [{"input": 3}, {"input": 3}, {"input": 3}]})
    assert [n.input for n in config.nodes] == [0, 1, 0]   # node k reads input mod k
    same = family.make_config({"cell": "enas", "nodes": [{"input": 0}, {"input": 1}, {"input": 3}]})
    assert same == config
    with pytest.raises(ConfigError, match="n_layers=1"):
        family.make_config({"cell": "enas", "n_layers": 2})


# -- DARTS's mixed forward ------------------------------------------------------------------------
CNN_MIXABLE = {  # every choice whose values keep the output size varied, incl. the dense head
    **CNN_SPACE,
    "params": {**CNN_SPACE["params"], "blocks": {"repeat": "n_blocks", "params": {
        **CNN_SPACE["params"]["blocks"]["params"], "stride": 1, "padding": "same", "pool": {"choice": ["max", "avg"]},
        "dropout": {"choice": [0.0, 0.2]}}}},
}


def _one_hot(decisions, flat):
    return {d.name: {v: torch.tensor(float(v == flat.get(d.name, d.values[0]))) for v in d.values}
            for d in decisions}


@pytest.mark.parametrize("task_name", ["mnist1d", "digits"])
def test_the_cnn_mixed_forward_reduces_to_every_path(task_name):
    from nasforge.strategies.controller.decisions import to_controller

    family, task = get_registry().get("family", "cnn"), load_task(task_name, 0)
    space = SearchSpace.from_dict(CNN_MIXABLE)
    torch.manual_seed(0)
    supernet = family.supernet(space, task).eval()
    x = torch.as_tensor(task.x_val[:16])
    decisions = to_controller(space)
    for flat, _ in UniformPaths(space=space).draw(np.random.default_rng(0), 30):
        config = family.make_config(space.config_from_flat(flat))
        with torch.no_grad():
            expected, mixed = supernet(x, config), supernet.mixed(x, _one_hot(decisions, flat))
        assert torch.allclose(mixed, expected, rtol=1e-4, atol=1e-5), flat
    uniform = {d.name: {v: torch.tensor(1 / len(d.values)) for v in d.values} for d in decisions}
    with torch.no_grad():   # a mixture is none of the paths
        assert not torch.allclose(supernet.mixed(x, uniform), expected, atol=1e-3)


@pytest.mark.parametrize("change, message", [
    ({"pool": {"choice": ["max", "none"]}}, "parameter 'blocks.0.pool': its values give outputs of different shapes"),
    ({"stride": {"choice": [1, 2]}}, "blocks.0.stride takes 1, 2"),
    ({"padding": {"choice": ["same", "valid"]}}, "blocks.0.padding takes same, valid"),
])
def test_choices_darts_cannot_sum_are_named(change, message):
    from nasforge.strategies.oneshot.relaxation import ArchitectureWeights

    raw = {**CNN_MIXABLE, "params": {**CNN_MIXABLE["params"], "blocks": {"repeat": "n_blocks", "params": {
        **CNN_MIXABLE["params"]["blocks"]["params"], **change}}}}
    space, task = SearchSpace.from_dict(raw), load_task("mnist1d", 0)
    supernet = get_registry().get("family", "cnn").supernet(space, task)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        supernet.mixed(torch.as_tensor(task.x_val[:4]), ArchitectureWeights(space=space, seed=0).weights())
