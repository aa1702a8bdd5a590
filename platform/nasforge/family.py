"""The contract every model family implements (built-in or third-party)."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar, Mapping

from nasforge.errors import ConfigError
from nasforge.data.tasks import Task


class Reporter(abc.ABC):
    """What a family's ``fit`` talks to while it trains."""

    @abc.abstractmethod
    def report(self, step: int, metrics: Mapping[str, float]) -> None:
        """Log metrics at ``step`` (an epoch, or env steps); raises TrialPruned to stop early."""

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        """Attach a file (a plot, a sample grid) to the trial's run."""

    def log_figure(self, figure: Any, name: str) -> None:
        """Attach a matplotlib figure as a PNG."""

    # -- checkpoints (used by schedulers that pause or copy trials: scheduler="pbt") ----
    def checkpoint_due(self, step: int) -> bool:
        """True when the trial should call :meth:`save_checkpoint` before reporting ``step``."""
        return False

    def save_checkpoint(self, state: Mapping[str, Any]) -> None:
        """Keep ``state`` (tensors, numbers, strings, nested dicts: loadable with ``weights_only=True``)
        as the trial's latest checkpoint; it travels with the next :meth:`report`."""

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The state to resume from (this trial's own, or under PBT a stronger trial's), or None."""
        return None


class NullReporter(Reporter):
    """Keeps what was reported in memory; for tests and for fitting outside a search."""

    def __init__(self):
        self.history: list[tuple[int, dict[str, float]]] = []

    def report(self, step: int, metrics: Mapping[str, float]) -> None:
        self.history.append((step, dict(metrics)))


class Family(abc.ABC):
    """A model family: builds a ``torch.nn.Module`` from a configuration and trains it.

    Subclasses set the class attributes and implement :meth:`build`, :meth:`fit` and
    :meth:`evaluate`. Configurations are dataclasses (``config_class``) built from the
    sampled nested dict by :meth:`make_config`, which rejects unknown fields.
    """

    name: ClassVar[str]
    task_kinds: ClassVar[tuple[str, ...]]
    config_class: ClassVar[type]
    default_space: ClassVar[str]          # name of a YAML file in ``search_spaces/`` or a path
    budget_unit: ClassVar[str] = "epochs"
    default_budget: ClassVar[int] = 20
    # ``fit`` resumes from ``reporter.load_checkpoint()`` and saves when ``reporter.checkpoint_due``
    # (needed by scheduler="pbt"); families on ``training.fit_epochs(optimizer=...)`` get it free.
    supports_checkpoints: ClassVar[bool] = False
    # Config fields that may change between two epochs of a built model (PBT mutates only these):
    # optimizer settings, never a field that shapes the module (units, dropout, layers...).
    training_hyperparameters: ClassVar[tuple[str, ...]] = ()
    # How the family reads a user's own data (``data=``, see :mod:`nasforge.data.prepare`): "tabular"
    # (rows of features), "image" ((C, H, W)), "signal" ((C, L)), "sequence" ((T, F) steps of
    # features) or "tokens" ((T,) integer ids); () takes no user data (a table, an environment).
    data_layouts: ClassVar[tuple[str, ...]] = ("tabular",)
    # ``fit`` reads inputs that stay on disk (:mod:`nasforge.data.streams`) through
    # ``training.load_split``; families that move whole splits to tensors leave it False.
    supports_streaming: ClassVar[bool] = False
    # ``forward`` maps inputs to the task's target (logits or scores for classification, the value
    # for regression), so a search's result can predict and serve it (``SearchResult.predict``, the
    # MLflow pyfunc model); :meth:`predictions` reads the outputs. False for families whose forward
    # is something else (a reconstruction, a discriminator, a policy).
    predicts_target: ClassVar[bool] = False
    # Weight-sharing NAS (strategy="enas" / "rsws", docs/weight_sharing.md): True when :meth:`supernet`
    # builds one module holding every architecture of a space. ``supernet_space`` is the space such a
    # search uses when none is given (architecture choices only, training settings fixed).
    supports_weight_sharing: ClassVar[bool] = False
    supernet_space: ClassVar[str | None] = None
    # strategy="darts": True when the supernet also has ``mixed(x, weights)``, the continuous
    # relaxation of its choices (see :meth:`supernet`); ``darts_space`` replaces ``supernet_space``
    # for darts when that one has choices whose values cannot be summed.
    supports_darts: ClassVar[bool] = False
    darts_space: ClassVar[str | None] = None

    # -- metadata --------------------------------------------------------------------
    @abc.abstractmethod
    def metrics(self, task: Task) -> dict[str, str]:
        """Metrics ``fit`` returns for this task, name -> ``"maximize"`` / ``"minimize"``."""

    def default_objective(self, task: Task) -> str:
        """The metric searched by default: the first of :meth:`metrics`."""
        return next(iter(self.metrics(task)))

    def check_task(self, task_name: str, task_kind: str) -> None:
        """Raise :class:`ConfigError` if this family cannot handle the task."""
        if task_kind not in self.task_kinds:
            raise ConfigError(
                f"family {self.name!r} cannot handle task {task_name!r} of kind {task_kind!r}; "
                f"it supports: {', '.join(self.task_kinds)}"
            )

    def check_space(self, space, task: Task) -> None:
        """Raise :class:`ConfigError` if ``space`` cannot work on ``task`` (called before any trial)."""

    def budget_amount(self, budget: Mapping[str, Any]) -> int:
        """``budget[budget_unit]`` (default ``default_budget``) as a checked integer >= 1.

        A budget naming another unit is refused: ``{"steps": 5}`` for an epochs family is a
        mistake, not a request to train for the default.
        """
        from nasforge.checks import check_int

        unknown = sorted(set(budget) - {self.budget_unit})
        if unknown:
            raise ConfigError(f"family {self.name!r} has no budget {unknown[0]!r}; its budget is "
                              f"{{{self.budget_unit}: N}}")
        amount = budget.get(self.budget_unit, self.default_budget)
        if isinstance(amount, float) and amount.is_integer():
            amount = int(amount)
        check_int(f"budget.{self.budget_unit}", amount, low=1)
        return amount

    def make_config(self, params: Mapping[str, Any]):
        """Nested params -> ``config_class`` instance, naming any unknown field."""
        fields = {f.name for f in dataclasses.fields(self.config_class)}
        unknown = sorted(set(params) - fields)
        if unknown:
            raise ConfigError(
                f"family {self.name!r} has no config field {unknown[0]!r}; "
                f"valid fields: {', '.join(sorted(fields))}"
            )
        try:
            config = self.config_class(**params)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"family {self.name!r}: {exc}") from None
        return config

    # -- the work --------------------------------------------------------------------
    @abc.abstractmethod
    def build(self, config, task: Task):
        """Return an untrained ``torch.nn.Module`` for ``config`` and ``task``."""

    @abc.abstractmethod
    def fit(self, model, task: Task, config, budget: Mapping[str, Any], reporter: Reporter) -> dict[str, float]:
        """Train ``model``; call ``reporter.report(step, metrics)`` along the way; return final metrics."""

    @abc.abstractmethod
    def evaluate(self, model, task: Task, split: str = "test") -> dict[str, float]:
        """Metrics of a trained model on a split (``"test"`` for the final report)."""

    def supernet(self, space, task: Task):
        """A ``torch.nn.Module`` holding every architecture of ``space`` in one set of shared weights.

        ``forward(x, config)`` runs the one path of ``config`` (a :attr:`config_class` instance that
        :meth:`make_config` made from a configuration sampled from ``space``): for the same ``x`` it
        returns what ``build(config, task)(x)`` returns, in the same shape (logits for
        classification, the value for regression). Paths that share a layer share its weights
        (Pham et al. 2018, "Efficient Neural Architecture Search via Parameter Sharing").

        For ``strategy="darts"`` (``supports_darts = True``) the module also has ``mixed(x, weights)``:
        DARTS's continuous relaxation (Liu et al. 2019, eq. 2). ``weights`` maps the flat name of each
        parameter the space varies to ``{value: weight}`` (a softmax over its values; a value left
        out weighs 0), and every operation a parameter chooses becomes the weighted sum of its
        values' operations (:func:`nasforge.weight_sharing.mixture`). With one-hot weights at a
        configuration's values (any value for an inactive parameter) it returns ``forward(x,
        config)`` in eval mode; values whose operations cannot be summed (outputs of different
        shapes) raise :class:`ConfigError` naming the parameter.

        Raise :class:`ConfigError` naming the parameter when ``space`` varies something one set of
        weights cannot hold -- a training setting such as ``lr`` (fix it in the space: the supernet
        and the retrained architectures train with it). Families that set
        ``supports_weight_sharing = True`` implement this; :mod:`nasforge.weight_sharing` has helpers.
        """
        raise ConfigError(f"family {self.name!r} has no supernet (weight sharing); it sets "
                          "supports_weight_sharing = False")

    def example_input(self, task: Task):
        """A small batch of inputs (numpy) used to log the model with a signature."""
        return task.x_test[:2]

    def predictions(self, outputs, task: Task):
        """``forward``'s outputs as predictions: class probabilities ``(N, K)`` for classification
        (softmax of logits), values ``(N, 1)`` for regression (in the task's own units)."""
        import torch

        if task.kind == "classification":
            return torch.softmax(outputs, dim=1)
        return outputs.reshape(len(outputs), -1)[:, :1]
