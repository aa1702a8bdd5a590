"""strategy="darts" (Liu et al. 2019, first and second order): the relaxed supernet, what alpha learns, MLflow,
resume, bad input."""

from __future__ import annotations

import copy
import io
import json
import math
import os

import numpy as np
import pytest
import torch

import nasforge
from conftest import runs_of
from nasforge.cli import main, print_summary
from nasforge.data.tasks import load_task
from nasforge.errors import NasforgeError
from nasforge.family import NullReporter
from nasforge.size_limit import SizeLimit
from nasforge.spec.space import SearchSpace
from nasforge.stores.mlflow_runs import Tracker
from nasforge.strategies.oneshot.darts_phase import DartsPhase
from nasforge.strategies.oneshot.darts_unrolled import unrolled_alpha_grads
from nasforge.strategies.oneshot.phase_options import TOP_ATTR, PhaseJob, check_options
from nasforge.strategies.oneshot.relaxation import ArchitectureWeights
from nasforge_mlp import MLPFamily

# A DARTS phase of a few seconds on digits (1257 train rows: 40 alpha steps and 40 weight steps per epoch).
TINY = {"supernet_epochs": 2, "candidates": 12}
CURVES = ("curve/shared_train_loss", "curve/arch_val_loss", "curve/arch_entropy", "curve/mixed_val_accuracy")


def test_darts_trains_a_relaxed_supernet_then_retrains_the_most_likely_architectures(store, tmp_path):
    result = nasforge.search("mlp", task="digits", strategy="darts", trials=3, budget=2, seed=0,
                             strategy_options=TINY, **store)

    top = result.study._storage.get_study_system_attrs(result.study._study_id)[TOP_ATTR]
    assert len(top) == 3 and [p["source"] for p in top] == ["argmax", "sample", "sample"]
    assert top[1]["score"] >= top[2]["score"]   # the picks after the argmax by alpha's log-likelihood ratio
    trials = sorted(result.trials, key=lambda t: t.number)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    for trial, pick in zip(trials, top):
        assert {k: trial.params[k] for k in pick["params"]} == pick["params"]
    assert result.best_value > 0.5 and result.test_metrics["test_accuracy"] > 0.5   # chance is 0.1
    summary = io.StringIO()
    print_summary(result, file=summary)   # its "shared" column is what DARTS ranked by, and says so
    assert "(shared: the pick's log-likelihood ratio, DARTS's architecture weights against a uniform draw" \
        in summary.getvalue()

    runs = runs_of(store["tracking_uri"], "mlp-digits")
    children = runs[runs["tags.mlflow.parentRunId"] == result.parent_run_id]
    supernet = children[children["tags.phase"] == "supernet"].iloc[0]
    assert supernet["status"] == "FINISHED" and supernet["tags.strategy"] == "darts"
    assert supernet["params.arch_lr"] == "0.003" and len(children[children["tags.phase"] == "retrain"]) == 3
    client = Tracker(tracking_uri=store["tracking_uri"], experiment_id=result.experiment_id).client
    steps = {key: [m.step for m in client.get_metric_history(supernet["run_id"], key)] for key in CURVES}
    per_epoch = math.ceil(len(load_task("digits", 0).x_train) / 32)
    assert steps["curve/shared_train_loss"] == steps["curve/arch_val_loss"] == list(range(1, 2 * per_epoch + 1))
    assert steps["curve/arch_entropy"] == steps["curve/mixed_val_accuracy"] == [1, 2]
    entropy = [m.value for m in client.get_metric_history(supernet["run_id"], "curve/arch_entropy")]
    assert entropy[-1] < entropy[0]   # alpha moved away from uniform
    with open(client.download_artifacts(supernet["run_id"], "top_architectures.json", str(tmp_path)),
              encoding="utf-8") as f:
        artifact = json.load(f)
    assert artifact["metric"] == "log_prob_ratio" and artifact["top"] == top
    argmax = {name: artifact["probabilities"][name] for name in artifact["probabilities"]}
    assert top[0]["params"]["n_layers"] == 1 + int(np.argmax(argmax["n_layers"]))   # the most likely depth


def test_darts_from_the_cli_on_the_rnn_cell(store, capsys):
    argv = ["search", "rnn", "--task", "digits", "--strategy", "darts", "--trials", "1", "--budget", "1", "-q",
            "--tracking-uri", store["tracking_uri"], "--storage", store["storage"], "--study-name", "darts-rnn",
            "--strategy-option", "supernet_epochs=1", "--strategy-option", "candidates=4"]
    assert main(argv) == 0
    assert "1 complete" in capsys.readouterr().out
    runs = runs_of(store["tracking_uri"], "rnn-digits")
    phase = runs[runs["tags.phase"] == "supernet"].iloc[0]
    assert phase["status"] == "FINISHED" and phase["tags.strategy"] == "darts"


# -- bad input: a clear error before anything is trained or written -------------------------------
@pytest.mark.parametrize("kwargs, message", [
    ({"family": "autoencoder"}, "family 'autoencoder' has none (Family.supernet); families with one: cnn, mlp, rnn"),
    ({"family": "cnn", "space": "cnn_enas"}, "cannot search cnn_enas.yaml (shipped): parameter 'blocks.0.pool'"),
    ({"objective": ["val_accuracy", "n_params"]}, "'darts' handles a single objective"),
    ({"strategy_options": {"controller_lr": 0.1}}, "strategy 'darts' has no option 'controller_lr': it learns"),
    ({"strategy_options": {"eval_batch_size": 64}}, "no option 'eval_batch_size'"),
    ({"strategy_options": {"finalists": 3}}, "ranks its picks by those parameters"),
    ({"strategy_options": {"arch_lr": 0}}, "arch_lr must be a positive number"),
    ({"strategy_options": {"warmup_epochs": 40}}, "the architecture parameters needs epochs"),
    ({"strategy": "enas", "strategy_options": {"arch_lr": 0.1}}, "strategy 'enas' has no option 'arch_lr'"),
    ({"strategy_options": {"arch_order": 3}}, "arch_order=3 is not valid; choose 1 (first-order DARTS) or 2"),
    ({"strategy_options": {"arch_order": "2"}}, "arch_order must be an integer >= 1, got '2'"),
    ({"strategy": "rsws", "strategy_options": {"arch_order": 2}}, "strategy 'rsws' has no option 'arch_order'"),
    ({"strategy": ["darts", "tpe"]}, "'darts' cannot run side by side with 'tpe'"),
    ({"strategy_options": {"arch_perturbation": 1.5}}, "arch_perturbation must be a number >= 0 and <= 1"),
    ({"strategy": "enas", "strategy_options": {"arch_perturbation": 0.3}},
     "strategy 'enas' has no option 'arch_perturbation'"),
])
def test_bad_darts_input_is_refused_up_front(store, kwargs, message):
    family = kwargs.pop("family", "mlp")
    kwargs.setdefault("strategy", "darts")
    with pytest.raises(NasforgeError) as info:
        nasforge.search(family, task="digits", trials=2, **kwargs, **store)
    assert message in str(info.value)
    assert not os.path.exists(store["tracking_uri"][len("sqlite:///"):])   # nothing written
    assert not os.path.exists(store["storage"][len("sqlite:///"):])


def test_a_family_without_a_mixed_forward_names_those_with_one(store):
    class NoMixMLP(MLPFamily):
        name = "mlp_nomix"
        supports_darts = False

    class Plugin:
        @nasforge.hookimpl
        def register_families(self, register):
            register(NoMixMLP())

    plugin = Plugin()
    nasforge.register(plugin)
    try:
        with pytest.raises(NasforgeError, match="family 'mlp_nomix'.s supernet has no mixed forward .*families with "
                                                "one: cnn, mlp, rnn; strategy='enas' or 'rsws' search 'mlp_nomix'"):
            nasforge.search("mlp_nomix", task="digits", strategy="darts", **store)
    finally:
        nasforge.unregister(plugin)


# -- what alpha learns --------------------------------------------------------------------------
TOY = {"params": {  # 6 networks, from hopeless (1 unit) to good (32 units)
    "n_layers": 1,
    "layers": {"repeat": "n_layers",
               "params": {"units": {"choice": [1, 4, 32]}, "activation": {"choice": ["relu", "tanh"]}}},
    "lr": 3e-3,
}}


def _phase(store, space, options, *, seed=0, run_id=None, cls=DartsPhase, on_epoch=None, limit=SizeLimit()):
    tracker = Tracker.for_experiment(tracking_uri=store["tracking_uri"], experiment="phase")
    run_id = run_id or tracker.start_run(name="phase", tags={})
    job = PhaseJob(strategy="darts", family="mlp", task="digits", data_digest=None, space=space, seed=seed,
                   options=check_options("darts", options), top=3, tracking_uri=store["tracking_uri"],
                   experiment_id=tracker.experiment_id, run_id=run_id, size_limit=limit)
    return cls(job=job, tracker=tracker, on_epoch=on_epoch)


@pytest.mark.parametrize("options", [{"arch_order": 1}, {"arch_order": 2}, {"arch_perturbation": 0}],
                         ids=["first-order", "second-order", "no-sdarts-noise"])
def test_alpha_puts_its_weight_on_architectures_that_are_better_stand_alone(store, options):
    """After the phase, the softmax of alpha puts its probability on networks that train better on their
    own than a uniform draw does (each of the 6 trained stand-alone once to know), in either order, with
    SDARTS's noise on the weight steps (the default) and without."""
    space = SearchSpace.from_dict(TOY)
    phase = _phase(store, space, {"supernet_epochs": 6, **options})
    phase.run()
    family, task = MLPFamily(), load_task("digits", 0)
    grid = [{"layers.0.units": u, "layers.0.activation": a} for u in (1, 4, 32) for a in ("relu", "tanh")]
    alone = []
    for flat in grid:
        config = family.make_config(space.config_from_flat({"n_layers": 1, **flat}))
        torch.manual_seed(0)
        model = family.build(config, task)
        alone.append(family.fit(model, task, config, {"epochs": 5}, NullReporter())["val_accuracy"])
    probs = np.exp([phase.architecture.log_prob(flat) for flat in grid])
    assert probs.sum() == pytest.approx(1.0, abs=1e-4)
    darts, uniform = float(probs @ np.array(alone)), float(np.mean(alone))
    assert darts > uniform + 0.1, (darts, uniform, alone, probs)   # measured 0.72 vs 0.52
    assert phase.architecture.most_likely()["layers.0.units"] == 32


def test_sdarts_noise_keeps_each_choice_a_distribution_centred_on_alpha_s_softmax():
    """SDARTS-RS (Chen & Hsieh 2020): softmax + U(-eps, eps), clipped to [0, 1], renormalised; the noise is
    centred (where no clipping binds, the mean over draws is the softmax), seeded by its generator."""
    weights = ArchitectureWeights(space=SearchSpace.from_dict(TOY), seed=0)
    with torch.no_grad():
        weights.alpha[0].copy_(torch.tensor([0.0, 0.3, 0.6]))   # units: probabilities 0.26-0.46, > eps from 0 and 1
    softmax = {name: p.double() for name, p in weights.probabilities().items()}
    draws = [weights.perturbed_weights(0.2, torch.Generator().manual_seed(i)) for i in range(4000)]
    for name, p in softmax.items():
        q = torch.stack([torch.stack(list(d[name].values())) for d in draws]).double()
        assert torch.all(q >= 0) and torch.all(q <= 1)
        assert torch.allclose(q.sum(1), torch.ones(len(q), dtype=torch.float64))
        assert (q - p).abs().max() < 0.2 * 2 + 1e-6 and (q - p).abs().max() > 0.1   # perturbed, within ~eps
        assert torch.allclose(q.mean(0), p, atol=0.01), (name, q.mean(0), p)
    again = weights.perturbed_weights(0.2, torch.Generator().manual_seed(7))
    assert all(torch.equal(torch.stack(list(again[n].values())), torch.stack(list(draws[7][n].values())))
               for n in again)
    # noise that clips every value to 0 leaves the most likely value alone
    lopsided = ArchitectureWeights(space=SearchSpace.from_dict(TOY), seed=0)
    with torch.no_grad():
        lopsided.alpha[0].copy_(torch.tensor([0.0, 0.0, 0.0]))
    seen_one_hot = False
    for i in range(2000):
        q = torch.stack(list(lopsided.perturbed_weights(1.0, torch.Generator().manual_seed(i))["layers.0.units"].values()))
        assert torch.isfinite(q).all() and float(q.sum()) == pytest.approx(1.0)
        seen_one_hot |= bool((q == 1).any())
    assert seen_one_hot


# -- second order: the gradient through the virtual step ----------------------------------------
def _double_minibatches(task, rows=64):
    def take(x, y):
        return torch.as_tensor(x[:rows], dtype=torch.float64), torch.as_tensor(y[:rows]).long()
    return take(task.x_train, task.y_train), take(task.x_val, task.y_val)


def test_the_second_order_gradient_is_the_exact_gradient_through_the_virtual_step():
    """Eq. (7)-(8) by central differences against autograd's exact gradient of L_val(w - xi * grad_w
    L_train(w, alpha), alpha) with respect to alpha (double precision, a small difference step), and
    far from the first-order gradient (which would pass if the Hessian term were dropped)."""
    space = SearchSpace.from_dict({"params": {
        "n_layers": {"int": [1, 2]},
        "layers": {"repeat": "n_layers", "params": {"units": {"choice": [4, 16]},
                                                    "activation": {"choice": ["relu", "tanh"]}}},
        "lr": 3e-3}})
    task = load_task("digits", 0)
    torch.manual_seed(0)
    net = MLPFamily().supernet(space, task).double()
    architecture = ArchitectureWeights(space=space, seed=0).double()
    with torch.no_grad():
        for a in architecture.alpha:
            a.normal_()
    (x, y), (xv, yv) = _double_minibatches(task)
    loss_fn, xi, weight_decay = torch.nn.functional.cross_entropy, 0.5, 1e-4
    before = copy.deepcopy(net.state_dict())
    unrolled_alpha_grads(supernet=net, virtual=copy.deepcopy(net), architecture=architecture, loss_fn=loss_fn,
                         train=(x, y), val=(xv, yv), xi=xi, weight_decay=weight_decay, r=1e-5)
    approx = [a.grad for a in architecture.alpha]
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key   # w put back exactly

    class Mixed(torch.nn.Module):   # functional_call needs a forward
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, inputs, weights):
            return self.net.mixed(inputs, weights)

    params = dict(net.named_parameters())
    grads = torch.autograd.grad(loss_fn(net.mixed(x, architecture.weights()), y), list(params.values()),
                                create_graph=True)
    w_prime = {f"net.{k}": p - xi * (g + weight_decay * p) for (k, p), g in zip(params.items(), grads)}
    exact = torch.autograd.grad(
        loss_fn(torch.func.functional_call(Mixed(), w_prime, (xv, architecture.weights())), yv),
        list(architecture.alpha))
    fixed = {k: v.detach() for k, v in w_prime.items()}
    first = torch.autograd.grad(
        loss_fn(torch.func.functional_call(Mixed(), fixed, (xv, architecture.weights())), yv),
        list(architecture.alpha))
    scale = max(float(e.abs().max()) for e in exact)
    assert max(float((a - e).abs().max()) for a, e in zip(approx, exact)) < 1e-6 * scale
    assert max(float((f - e).abs().max()) for f, e in zip(first, exact)) > 0.1 * scale


class _NormedSupernet(torch.nn.Module):
    """A third party's supernet with batch norm's running statistics and dropout: TOY's widths as slices."""

    def __init__(self):
        super().__init__()
        self.hidden, self.norm = torch.nn.Linear(64, 32), torch.nn.BatchNorm1d(32)
        self.heads = torch.nn.ModuleDict({str(units): torch.nn.Linear(units, 10) for units in (1, 4, 32)})

    def mixed(self, x, weights):
        h = torch.nn.functional.dropout(torch.relu(self.norm(self.hidden(x))), 0.5, self.training)
        return sum(w * self.heads[str(units)](h[:, :units]) for units, w in weights["layers.0.units"].items())


def test_the_second_order_step_leaves_weights_and_batch_norm_statistics_alone():
    """Only the real weight step moves the supernet: the virtual step and the passes at w+- put back every
    parameter and running statistic; with dropout on, the gradient is still finite and nonzero."""
    task = load_task("digits", 0)
    torch.manual_seed(0)
    net = _NormedSupernet().train()
    architecture = ArchitectureWeights(space=SearchSpace.from_dict(TOY), seed=0)
    train = torch.as_tensor(task.x_train[:32]), torch.as_tensor(task.y_train[:32]).long()
    val = torch.as_tensor(task.x_val[:32]), torch.as_tensor(task.y_val[:32]).long()
    before = copy.deepcopy(net.state_dict())
    outputs, loss = unrolled_alpha_grads(supernet=net, virtual=copy.deepcopy(net), architecture=architecture,
                                         loss_fn=torch.nn.functional.cross_entropy, train=train, val=val, xi=0.05,
                                         weight_decay=1e-4)
    assert outputs.shape == (32, 10) and math.isfinite(float(loss))
    assert int(before["norm.num_batches_tracked"]) == 0
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key
    units, activation = architecture.alpha   # TOY's decisions; this supernet has one activation
    assert torch.isfinite(units.grad).all() and units.grad.abs().sum() > 0
    assert torch.equal(activation.grad, torch.zeros(2))


def test_the_passes_at_w_plus_and_minus_draw_the_same_dropout_masks():
    """With dropout on, the central difference is a derivative only if w+ and w- see the same masks: then
    it does not depend on the step (with different masks it would grow as 1 / step)."""
    task = load_task("digits", 0)
    torch.manual_seed(0)
    net = _NormedSupernet().double().train()
    architecture = ArchitectureWeights(space=SearchSpace.from_dict(TOY), seed=0).double()
    (x, y), (xv, yv) = _double_minibatches(task, rows=32)

    def second_order(r):
        torch.manual_seed(1)
        unrolled_alpha_grads(supernet=net, virtual=copy.deepcopy(net), architecture=architecture,
                             loss_fn=torch.nn.functional.cross_entropy, train=(x, y), val=(xv, yv), xi=0.5,
                             weight_decay=0.0, r=r)
        return architecture.alpha[0].grad.clone()

    coarse, fine = second_order(1e-5), second_order(1e-6)
    assert torch.allclose(coarse, fine, rtol=1e-3, atol=1e-3 * float(fine.abs().max())), (coarse, fine)


class _StopInSecondEpoch(DartsPhase):
    def train_shared(self):
        if self.epoch == 1:
            raise KeyboardInterrupt
        super().train_shared()


@pytest.mark.parametrize("order, limit, noise", [(1, SizeLimit(), 0), (2, SizeLimit(), 0),
                                                 (1, SizeLimit(max_params=6000), 0), (1, SizeLimit(), 0.3)])
def test_a_darts_phase_continued_from_its_checkpoint_ends_as_an_uninterrupted_one(store, order, limit, noise):
    space = SearchSpace.load("mlp_enas")
    options = {"supernet_epochs": 3, "candidates": 8, "arch_order": order, "arch_perturbation": noise}
    whole = _phase(store, space, options, seed=4, limit=limit)
    expected = whole.run()
    cut = _phase(store, space, options, seed=4, cls=_StopInSecondEpoch, limit=limit)
    with pytest.raises(KeyboardInterrupt):
        cut.run()
    reported = []
    resumed = _phase(store, space, options, seed=4, run_id=cut.job.run_id,
                     on_epoch=lambda *args: reported.append(args), limit=limit)
    got = resumed.run()
    assert got["top"] == expected["top"] and got["probabilities"] == expected["probabilities"]
    # progress: from the epoch the checkpoint holds, then each epoch with its curves' means
    assert [(done, total) for done, total, _ in reported] == [(1, 3), (2, 3), (3, 3)] and reported[0][2] == {}
    assert {"shared_train_loss", "arch_val_loss", "arch_entropy", "mixed_val_accuracy"} <= set(reported[-1][2])
    assert reported[-1][2]["arch_entropy"] == resumed.architecture.entropy()
    assert ("arch_size_penalty" in reported[-1][2]) == bool(limit)   # under a cap, its curves too
    assert reported[-1][2].get("arch_perturbation", 0) == pytest.approx(0.03 + 0.27 * 2 / 3 if noise else 0)
    for a, b in zip(resumed.architecture.alpha, whole.architecture.alpha):
        assert torch.equal(a, b)
