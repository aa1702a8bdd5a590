"""Contract tests for model families, to subclass in a family's own test suite.

In the style of ``optuna.testing.pytest_samplers``: subclass :class:`FamilyContract`
and supply two class-scoped fixtures, ``family`` (a :class:`nasforge.family.Family`
instance) and ``task_name`` (a registered task the family supports)::

    import pytest
    from nasforge.testing import FamilyContract
    from my_plugin import MyFamily

    class TestMyFamily(FamilyContract):
        @pytest.fixture(scope="class")
        @classmethod
        def family(cls):
            return MyFamily()

        @pytest.fixture(scope="class")
        @classmethod
        def task_name(cls):
            return "digits"

Families with a supernet (``supports_weight_sharing = True``) are also checked on it, with
their ``supernet_space``: a path gives the stand-alone model's output shape, uniform draws reach
every choice, every choice changes some path, and a varied training setting is refused. Families
whose supernet has DARTS's mixed forward (``supports_darts = True``) are checked on their
``darts_space`` (else ``supernet_space``): one-hot weights give each sampled path's output, and
softmax weights give finite outputs whose gradient reaches the architecture parameters.

Override ``config_params`` (default ``{}``: every config default) or ``small_budget``
(default ``{family.budget_unit: 2}``) when the defaults are too slow for a test. Define
fixtures as class-scoped classmethods, as above (pytest deprecates class-scoped fixtures
that are instance methods).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from nasforge.data.tasks import TASK_KINDS
from nasforge.errors import ConfigError
from nasforge.testing.fitting import fit_once

N_SAMPLED_CONFIGS = 5
N_COVERAGE_DRAWS = 500


def _first_output(output):
    """The tensor to check a batch size on: the output, or its first element."""
    return output[0] if isinstance(output, (tuple, list)) else output


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class FamilyContract:
    """What every family must do. Subclasses supply the ``family`` and ``task_name`` fixtures."""

    # -- fixtures --------------------------------------------------------------------
    @pytest.fixture(scope="class")
    @classmethod
    def task(cls, task_name):
        from nasforge.plugins import get_registry

        return get_registry().get("task", task_name).load(0)

    @pytest.fixture(scope="class")
    @classmethod
    def config_params(cls) -> dict[str, Any]:
        return {}

    @pytest.fixture(scope="class")
    @classmethod
    def small_budget(cls, family) -> dict[str, Any]:
        return {family.budget_unit: 2}

    @pytest.fixture(scope="class")
    @classmethod
    def space(cls, family):
        from nasforge.spec.space import SearchSpace

        return SearchSpace.load(family.default_space)

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, family, task, config_params, small_budget):
        """``(model, reporter, final_metrics)`` of one seeded fit, shared by several tests."""
        return cls._fit(family, task, config_params, small_budget, seed=0)

    @staticmethod
    def _fit(family, task, config_params, budget, *, seed):
        model, metrics, reporter = fit_once(family, task, config_params, budget, seed=seed)
        return model, reporter, metrics

    # -- metadata --------------------------------------------------------------------
    def test_metadata(self, family, task) -> None:
        assert isinstance(family.name, str) and family.name
        assert task.kind in family.task_kinds
        metrics = family.metrics(task)
        assert metrics, "metrics(task) must name at least one metric"
        assert set(metrics.values()) <= {"maximize", "minimize"}
        assert family.default_objective(task) in metrics
        assert isinstance(family.default_budget, (int, float)) and family.default_budget > 0

    def test_default_space_loads(self, family, space) -> None:
        assert space.family in (None, family.name)
        assert set(space.budget) <= {family.budget_unit}

    # -- configs and models ----------------------------------------------------------
    def test_sampled_configs_build_and_run_forward(self, family, task, space) -> None:
        import optuna
        import torch

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        example = torch.as_tensor(family.example_input(task))
        for seed in range(N_SAMPLED_CONFIGS):
            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
            params = space.sample(study.ask())
            config = family.make_config(params)
            torch.manual_seed(seed)
            model = family.build(config, task)
            assert isinstance(model, torch.nn.Module)
            model.eval()
            with torch.no_grad():
                output = _first_output(model(example))
            assert output.shape[0] == example.shape[0], f"batch size changed for {params}"

    def test_make_config_rejects_unknown_field(self, family) -> None:
        with pytest.raises(ConfigError, match="no_such_field"):
            family.make_config({"no_such_field": 1})

    def test_check_task_rejects_unsupported_kind(self, family) -> None:
        kinds = [kind for kind in TASK_KINDS if kind not in family.task_kinds]
        if not kinds:
            pytest.skip(f"family {family.name!r} supports every task kind")
        with pytest.raises(ConfigError) as info:
            family.check_task("contract_task", kinds[0])
        assert family.name in str(info.value) and "contract_task" in str(info.value)

    # -- training --------------------------------------------------------------------
    def test_fit_reports_increasing_steps(self, fitted) -> None:
        _, reporter, _ = fitted
        steps = [step for step, _ in reporter.history]
        assert steps, "fit must call reporter.report at least once"
        assert all(isinstance(step, int) for step in steps)
        assert steps == sorted(set(steps)), f"steps must strictly increase, got {steps}"

    def test_fit_returns_every_metric(self, family, task, fitted) -> None:
        _, reporter, metrics = fitted
        for name in family.metrics(task):
            assert name in metrics, f"fit did not return {name!r}"
            assert _is_finite_number(metrics[name]), f"{name} = {metrics[name]!r}"
        for _, reported in reporter.history:
            assert all(isinstance(v, (int, float)) for v in reported.values())

    def test_fit_is_deterministic(self, family, task, config_params, small_budget, fitted) -> None:
        import torch

        _, _, first = fitted
        _, _, second = self._fit(family, task, config_params, small_budget, seed=0)
        if torch.cuda.is_available():  # some CUDA kernels are not bitwise reproducible
            assert second == pytest.approx(first, rel=1e-3, abs=1e-5)
        else:
            assert second == first

    def test_evaluate_returns_finite_numbers(self, family, task, fitted) -> None:
        model, _, _ = fitted
        metrics = family.evaluate(model, task, split="test")
        assert metrics
        for name, value in metrics.items():
            assert name.startswith("test_"), f"{name!r} should be prefixed with the split"
            assert _is_finite_number(value), f"{name} = {value!r}"

    # -- weight sharing (families with supports_weight_sharing) ------------------------------
    @pytest.fixture(scope="class")
    @classmethod
    def supernet_space(cls, family):
        """The space a weight-sharing search uses by default (skips families without a supernet)."""
        if not getattr(family, "supports_weight_sharing", False):
            pytest.skip(f"family {family.name!r} has no supernet (supports_weight_sharing = False)")
        from nasforge.spec.space import SearchSpace

        return SearchSpace.load(family.supernet_space or family.default_space)

    @pytest.fixture(scope="class")
    @classmethod
    def supernet(cls, family, task, supernet_space):
        import torch

        torch.manual_seed(0)
        return family.supernet(supernet_space, task)

    def test_supernet_path_has_the_standalone_output_shape(self, family, task, supernet_space, supernet) -> None:
        import optuna
        import torch

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        assert isinstance(supernet, torch.nn.Module)
        example = torch.as_tensor(family.example_input(task))
        for seed in range(N_SAMPLED_CONFIGS):
            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
            params = supernet_space.sample(study.ask())
            config = family.make_config(params)
            torch.manual_seed(seed)
            alone = family.build(config, task).eval()
            for mode in (True, False):
                supernet.train(mode)
                with torch.no_grad():
                    path, model = _first_output(supernet(example, config)), _first_output(alone(example))
                assert path.shape == model.shape, f"the path of {params} gives {tuple(path.shape)}, the model " \
                                                  f"built from it {tuple(model.shape)}"
                assert torch.isfinite(path).all(), f"the path of {params} gives non-finite outputs"

    def test_sampled_paths_cover_the_space(self, family, task, supernet_space, supernet) -> None:
        """Uniform draws (those of strategy="rsws") reach every choice of every decision, and each
        path they reach runs through the supernet."""
        import numpy as np
        import torch

        from nasforge.strategies.oneshot.paths import UniformPaths

        paths = UniformPaths(space=supernet_space)
        missing = {(d.name, i) for d in paths.decisions.values() for i in range(len(d.values))}
        rng, example = np.random.default_rng(0), torch.as_tensor(family.example_input(task))
        for _ in range(N_COVERAGE_DRAWS):
            (flat, tokens), = paths.draw(rng)
            new = missing & set(tokens)
            if new:
                with torch.no_grad():
                    out = _first_output(supernet(example, family.make_config(supernet_space.config_from_flat(flat))))
                assert torch.isfinite(out).all(), f"the path of {flat} gives non-finite outputs"
                missing -= new
            if not missing:
                break
        assert not missing, f"{N_COVERAGE_DRAWS} draws never reached: {sorted(missing)[:5]}"

    def test_every_choice_changes_some_path(self, family, task, supernet_space, supernet) -> None:
        """For each decision, switching its value in a path changes the supernet's output for at least
        one path: the supernet reads every choice rather than ignoring it. (A switch that gives an
        equal configuration -- ``make_config`` normalises it away -- is no switch.)"""
        import numpy as np
        import torch

        from nasforge.errors import SpaceError
        from nasforge.strategies.oneshot.paths import UniformPaths

        paths = UniformPaths(space=supernet_space)
        example = torch.as_tensor(family.example_input(task))
        supernet.train()   # dropout and the like count as a choice too: same seed, same masks

        def config(flat):
            return family.make_config(supernet_space.config_from_flat(flat))

        def output(flat):
            torch.manual_seed(0)
            with torch.no_grad():
                return _first_output(supernet(example, config(flat)))

        draws = [flat for flat, _ in paths.draw(np.random.default_rng(1), 60)]
        for decision in paths.decisions.values():
            if len(decision.values) < 2:
                continue
            changed = tried = False
            for flat in [f for f in draws if decision.name in f][:10]:
                base = output(flat)
                for value in decision.values:
                    if value == flat[decision.name]:
                        continue
                    switched = {**flat, decision.name: value}
                    try:
                        if config(switched) == config(flat):
                            continue
                        other = output(switched)
                    except SpaceError:   # a longer repeat count: the new copies have no values here
                        continue
                    tried = True
                    changed = changed or not torch.equal(base, other)
                if changed:
                    break
            assert changed or not tried, f"changing {decision.name!r} never changed a path's output"

    def test_supernet_refuses_a_varied_training_setting(self, family, task, supernet_space) -> None:
        """A space that varies a training setting (the first of ``training_hyperparameters``) is refused,
        naming the parameter: one set of shared weights trains every path with the same settings."""
        from nasforge.spec.space import SearchSpace

        names = [n for n in family.training_hyperparameters
                 if isinstance(getattr(family.config_class(), n, None), (int, float))]
        if not names:
            pytest.skip(f"family {family.name!r} names no numeric training_hyperparameters")
        name = names[0]
        default = getattr(family.config_class(), name)
        raw = dict(supernet_space.raw)
        raw["params"] = {**raw["params"], name: {"choice": [default, default * 2 + 1]}}
        with pytest.raises(ConfigError, match=name):
            family.supernet(SearchSpace.from_dict(raw), task)

    # -- DARTS (families with supports_darts) ------------------------------------------------
    @pytest.fixture(scope="class")
    @classmethod
    def darts_space(cls, family):
        """The space a darts search uses by default (skips families without a mixed forward)."""
        if not getattr(family, "supports_darts", False):
            pytest.skip(f"family {family.name!r} has no mixed forward (supports_darts = False)")
        from nasforge.spec.space import SearchSpace

        return SearchSpace.load(family.darts_space or family.supernet_space or family.default_space)

    def test_mixed_forward_with_one_hot_weights_is_the_path(self, family, task, darts_space) -> None:
        """DARTS's relaxation reduces to the path when each choice's weights are one-hot at its value."""
        import numpy as np
        import torch

        from nasforge.strategies.controller.decisions import to_controller
        from nasforge.strategies.oneshot.paths import UniformPaths

        torch.manual_seed(0)
        supernet = family.supernet(darts_space, task).eval()
        example = torch.as_tensor(family.example_input(task))
        decisions = to_controller(darts_space)
        for flat, _ in UniformPaths(space=darts_space).draw(np.random.default_rng(0), N_SAMPLED_CONFIGS * 2):
            config = family.make_config(darts_space.config_from_flat(flat))
            weights = {d.name: {v: torch.tensor(float(v == flat.get(d.name, d.values[0]))) for v in d.values}
                       for d in decisions}
            with torch.no_grad():
                path, mixed = _first_output(supernet(example, config)), _first_output(supernet.mixed(example, weights))
            assert mixed.shape == path.shape, f"{flat}: mixed {tuple(mixed.shape)}, path {tuple(path.shape)}"
            assert torch.allclose(mixed, path, rtol=1e-4, atol=1e-5), \
                f"{flat}: one-hot weights differ from the path by {float((mixed - path).abs().max()):.3g}"

    def test_mixed_forward_gives_gradients_to_the_architecture(self, family, task, darts_space) -> None:
        import torch

        from nasforge.strategies.oneshot.relaxation import ArchitectureWeights

        torch.manual_seed(0)
        supernet = family.supernet(darts_space, task).train()
        architecture = ArchitectureWeights(space=darts_space, seed=0)
        output = _first_output(supernet.mixed(torch.as_tensor(family.example_input(task)), architecture.weights()))
        assert torch.isfinite(output).all()
        output.float().pow(2).mean().backward()
        grads = [a.grad for a in architecture.alpha]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        moved = [name for name, g in zip(architecture.decisions, grads) if float(g.abs().sum()) > 0]
        assert len(moved) >= len(grads) / 2, f"only {moved} of {list(architecture.decisions)} get a gradient"
