"""SearchResult: what a search returns (best trial(s), Pareto front, best model)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nasforge.errors import SpecError
from nasforge.plugins import get_registry
from nasforge.results.by_strategy import by_strategy
from nasforge.results.models import model_task, rebuild_model
from nasforge.results.predictor import Predictor
from nasforge.stores.mlflow_runs import ui_link
from nasforge.spec.arguments import SearchSpec


@dataclass(kw_only=True)
class SearchResult:
    """The outcome of :func:`nasforge.search`.

    Attributes:
        spec: the validated request.
        study: the Optuna study (every trial, its params, values and user attributes).
        parent_run_id: the search's MLflow run; each trial is a nested child run.
        test_metrics: the chosen best model's metrics on the task's test split.
        model_uri: the model to serve, logged on the parent run (``models:/m-<id>``): for a family
            that predicts its target (mlp, cnn, rnn, evidential) the pyfunc model with the
            preprocessing and label decoding (``mlflow.pyfunc.load_model(uri).predict(df)``), else
            the network itself.
        network_uri: the bare network as an MLflow PyTorch model (``torch.export`` format;
            ``mlflow.pytorch.load_model(uri)``); inputs already preprocessed.
    """

    spec: SearchSpec
    study: Any
    parent_run_id: str
    experiment_id: str
    test_metrics: dict[str, float] = field(default_factory=dict)
    model_uri: str | None = None
    network_uri: str | None = None
    _model: Any = field(default=None, repr=False)
    _predictors: dict = field(default_factory=dict, repr=False)

    # -- trials ----------------------------------------------------------------------
    @property
    def trials(self) -> list:
        return self.study.get_trials(deepcopy=False)

    @property
    def completed_trials(self) -> list:
        import optuna

        return self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))

    @property
    def best_trials(self) -> list:
        """The Pareto front (one trial for a single objective)."""
        if not self.completed_trials:
            return []
        return self.study.best_trials if self.spec.multi_objective else [self.study.best_trial]

    @property
    def pareto_front(self) -> list:
        """The trials no other trial beats on every objective (for one objective: the best trial)."""
        return self.best_trials

    @property
    def best_trial(self):
        """The best trial; for several objectives, the Pareto trial best on the first one."""
        front = self.best_trials
        if not front:
            raise SpecError(f"no trial of study {self.study.study_name!r} completed; see the failed runs in MLflow")
        sign = 1 if self.spec.objectives[0].direction == "maximize" else -1
        return max(front, key=lambda t: (sign * t.values[0], -t.number))

    @property
    def best_params(self) -> dict[str, Any]:
        """The best configuration, nested as the family receives it."""
        best = self.best_trial   # under PBT its config may have changed while it trained: final_params
        return self.spec.space.config_from_flat(best.user_attrs.get("final_params", best.params))

    @property
    def best_value(self) -> float:
        return self.best_trial.values[0]

    @property
    def best_values(self) -> list[float]:
        return list(self.best_trial.values)

    def trials_dataframe(self):
        """Every trial as a pandas DataFrame (Optuna's columns)."""
        return self.study.trials_dataframe()

    def leaderboard(self, data=None, *, target: str | None = None):
        """One row per trial, best first (pandas DataFrame): number, strategy, state, the objective(s)
        under their metric names, the parameters (flattened: ``layers.0.units``), ``n_params``
        (and ``flops`` under ``max_flops``), ``train_time_s`` and the trial's MLflow run id. Failed
        and pruned trials come last. A weight-sharing search's trials also say which supernet pick
        they retrained: ``shared_rank``, ``shared_score`` (its score with the shared weights) and
        ``finetuned_score`` where fine-tuned.

        With labelled ``data`` (any form :meth:`evaluate` takes), every completed trial's network is
        scored on it too: ``eval_accuracy``, ``eval_balanced_accuracy``, ``eval_log_loss`` (or
        ``eval_rmse``, ``eval_mae``, ``eval_r2``) -- AutoGluon's ``leaderboard(test_data)``."""
        from nasforge.results.leaderboard import leaderboard

        return leaderboard(self, data=data, target=target)

    # -- strategies side by side -------------------------------------------------------
    @property
    def by_strategy(self) -> dict:
        """strategy -> its part of the search (trials, best trial, summary row); one entry for
        a single strategy. See :class:`nasforge.results.by_strategy.StrategyResult`."""
        return by_strategy(self)

    def strategy_summary(self):
        """One row per strategy (pandas DataFrame): trials, complete/pruned/failed, best value, best
        trial, ``best_at`` (its best was the k-th of its ``trials``) and ``time_to_best_s`` (wall time
        from the search's first trial to the end of that best trial)."""
        import pandas as pd

        return pd.DataFrame([part.summary for part in self.by_strategy.values()])

    # -- the model -------------------------------------------------------------------
    def best_model(self):
        """The best trial's trained ``torch.nn.Module`` (weights loaded with ``weights_only=True``)."""
        if self._model is None:
            self._model = rebuild_model(self.spec, self.best_trial)
        return self._model

    def predictor(self, trial: int | None = None):
        """The best model (or trial number ``trial``'s) with the search's preprocessing: see
        :class:`nasforge.results.predictor.Predictor`."""
        if trial not in self._predictors:
            if trial is not None:   # the best and one other trial's network at a time (a leaderboard visits all)
                self._predictors = {k: v for k, v in self._predictors.items() if k is None}
            family = get_registry().get("family", self.spec.family)
            network = self.best_model() if trial is None else rebuild_model(self.spec, self._completed(trial))
            preprocessing = self.spec.data.preprocessing if self.spec.data is not None else None
            self._predictors[trial] = Predictor(family=family, network=network, task=model_task(self.spec),
                                                preprocessing=preprocessing)
        return self._predictors[trial]

    def _completed(self, number: int):
        done = {t.number: t for t in self.completed_trials}
        if number not in done:
            listed = ", ".join(map(str, sorted(done)[:30])) + (" ..." if len(done) > 30 else "")
            raise SpecError(f"trial {number!r} did not complete, so it has no trained network; "
                             f"the completed trials: {listed or '(none)'}")
        return done[number]

    def predict(self, data, *, trial: int | None = None):
        """Predictions for raw inputs in any form ``data=`` takes (a DataFrame with the training columns,
        arrays, a .csv/.parquet path, image files or a folder of them, ...), preprocessed as in training:
        the original class labels, or regression values in the target's units. The same as the served
        MLflow model's. ``trial``: another completed trial's network instead of the best."""
        return self.predictor(trial).predict(data)

    def predict_proba(self, data, *, trial: int | None = None):
        """Class probabilities for raw inputs (a DataFrame, one column per class label)."""
        return self.predictor(trial).predict_proba(data)

    def evaluate(self, data, *, target: str | None = None, trial: int | None = None) -> dict[str, float]:
        """The best model's metrics on labelled data it never saw, like AutoGluon's ``predictor.evaluate``:
        a table holding the target column (``target``: default the search's), ``(inputs, targets)``, a
        .npz with x and y, a Dataset of (x, y) or a folder of class subfolders of images, the targets in
        their own terms. Classification: ``accuracy``, ``balanced_accuracy``, ``log_loss``; regression:
        ``rmse``, ``mae``, ``r2`` (target units); and ``n_rows``. ``trial``: another completed trial's
        network. Reads and writes no store."""
        return self.predictor(trial).evaluate(data, target=target)

    def export(self, path, *, formats=("mlflow", "pt2"), register_as: str | None = None,
               overwrite: bool = False):
        """Write the best model to the directory ``path``; see :mod:`nasforge.results.export`.

        ``formats``: any of ``"mlflow"`` (an MLflow model directory), ``"pt2"`` (``torch.export``)
        and ``"torchscript"``. ``register_as="NAME"`` also registers the search's logged model in
        the store's model registry (``models:/NAME/<version>``). Returns an ``ExportedModel``.
        """
        from nasforge.results.export import export_result  # imports mlflow and torch

        return export_result(self, path, formats=formats, register_as=register_as, overwrite=overwrite)

    # -- where to look ---------------------------------------------------------------
    @property
    def tracking_uri(self) -> str:
        return self.spec.tracking_uri

    @property
    def ui_command(self) -> str:
        """The command that opens the MLflow UI on this search's store."""
        return f"nasforge ui --tracking-uri {self.spec.tracking_uri}"

    def ui_url(self, base: str = "http://127.0.0.1:5000") -> str:
        """This search's parent run in the MLflow UI that :attr:`ui_command` starts (``base``: its address)."""
        return ui_link(base, self.experiment_id, self.parent_run_id)

    def experiment_url(self, base: str = "http://127.0.0.1:5000") -> str:
        """The search's experiment in the MLflow UI: its runs table."""
        return ui_link(base, self.experiment_id)

    def __repr__(self) -> str:
        n = len(self.trials)
        best = f"best_value={self.best_value:.4g}" if self.completed_trials else "no completed trial"
        return f"<SearchResult {self.spec.family}/{self.spec.task} {self.spec.strategy} trials={n} {best}>"
