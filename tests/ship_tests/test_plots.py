"""Summary plots on the parent run: real searches on a real sqlite MLflow store, read back as PNGs."""

import json
import warnings

import optuna
import pytest
from mlflow import MlflowClient

import nasforge
from nasforge.results import plots
from nasforge.results.result import SearchResult
from nasforge.spec.arguments import build_spec
from conftest import stores_in, toy_registered
from toy_family import TOY_SPACE

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _plots(result, tmp_path):
    """{file name: bytes} of the parent run's ``plots/`` artifacts."""
    client = MlflowClient(result.tracking_uri)
    names = [a.path for a in client.list_artifacts(result.parent_run_id, "plots")]
    out = {}
    for name in names:
        local = client.download_artifacts(result.parent_run_id, name, str(tmp_path))
        with open(local, "rb") as f:
            out[name.split("/", 1)[1]] = f.read()
    return out


def _image_size(data: bytes) -> tuple[int, int]:
    import io

    from matplotlib.image import imread

    image = imread(io.BytesIO(data), format="png")
    return image.shape[1], image.shape[0]


@pytest.fixture(scope="module")
def toy():
    """The toy family for this whole module (overrides conftest's per-test registration)."""
    with toy_registered() as plugin:
        yield plugin


@pytest.fixture(scope="module")
def toy_search(toy, tmp_path_factory):
    """One small random search of the toy family, shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("plots_search")
    return nasforge.search("toy", task="digits", space=TOY_SPACE, strategy="random", trials=5, seed=1,
                           tracking_uri=f"sqlite:///{root / 'mlflow.db'}", storage=f"sqlite:///{root / 'o.db'}")


def test_single_objective_search_logs_history_importances_and_parallel_coordinates(toy_search, tmp_path):
    result = toy_search
    files = _plots(result, tmp_path / "dl")
    assert {"optimization_history.png", "param_importances.png", "parallel_coordinates.png",
            "param_importances.json", "notes.txt"} == set(files)
    for name in ("optimization_history.png", "param_importances.png", "parallel_coordinates.png"):
        assert files[name].startswith(PNG_MAGIC)
        width, height = _image_size(files[name])
        assert width >= 300 and height >= 150, (name, width, height)
    importances = json.loads(files["param_importances.json"])
    assert set(importances) == {"val_accuracy"}
    assert set(importances["val_accuracy"]) == {"lr", "width"}  # `mode` is fixed: not a parameter
    assert sum(importances["val_accuracy"].values()) == pytest.approx(1.0)
    notes = files["notes.txt"].decode()
    assert "pareto_front: skipped: single-objective search" in notes
    assert "controller: skipped" in notes
    assert MlflowClient(result.tracking_uri).get_run(result.parent_run_id).info.status == "FINISHED"


def test_multi_objective_search_adds_a_pareto_front(store, toy, tmp_path):
    result = nasforge.search("toy", task="digits", space=TOY_SPACE, strategy="nsga2", trials=4, seed=0,
                             objective=["val_accuracy", "val_loss"], **store)
    files = _plots(result, tmp_path / "dl")
    assert files["pareto_front.png"].startswith(PNG_MAGIC)
    assert set(json.loads(files["param_importances.json"])) == {"val_accuracy", "val_loss"}
    _, height = _image_size(files["optimization_history.png"])
    assert height > _image_size(files["parallel_coordinates.png"])[1] * 1.2  # one panel per objective


def test_controller_search_adds_its_reward_and_entropy_curves(store, toy, tmp_path):
    result = nasforge.search("toy", task="digits", space=TOY_SPACE, strategy="controller", trials=4, seed=0,
                             **store)
    history = plots.controller_history(result.study)
    assert len(history) >= 3 and {"mean_reward", "entropy", "baseline"} <= set(history[0])
    files = _plots(result, tmp_path / "dl")
    assert files["controller.png"].startswith(PNG_MAGIC)
    assert "controller" not in files.get("notes.txt", b"").decode()


def test_one_completed_trial_skips_importances_with_a_note(store, toy, tmp_path):
    result = nasforge.search("toy", task="digits", space=TOY_SPACE, trials=1, seed=0, **store)
    files = _plots(result, tmp_path / "dl")
    assert "optimization_history.png" in files
    assert "param_importances.png" not in files and "parallel_coordinates.png" not in files
    notes = files["notes.txt"].decode()
    assert "param_importances: skipped: importances need at least 2 completed trials, the search has 1" in notes


def _result_with_values(values, *, params=None, space=TOY_SPACE):
    """A SearchResult over an in-memory Optuna study holding the given finished trials."""
    spec = build_spec("toy", task="digits", space=space, trials=len(values))
    study = optuna.create_study(direction="maximize")
    dist = {"lr": optuna.distributions.FloatDistribution(0.01, 1.0, log=True),
            "width": optuna.distributions.CategoricalDistribution([4, 8, 16])}
    for i, value in enumerate(values):
        p = params[i] if params else {"lr": 0.01 * (i + 1), "width": [4, 8, 16][i % 3]}
        study.add_trial(optuna.trial.create_trial(params=p, distributions={k: dist[k] for k in p}, value=value))
    return SearchResult(spec=spec, study=study, parent_run_id="none", experiment_id="0")


def test_importances_skip_a_single_distinct_value_and_unvaried_parameters(toy):
    with pytest.raises(plots.Skip, match="every completed trial has the same objective value"):
        plots.compute_importances(_result_with_values([0.5, 0.5, 0.5]))
    same = [{"lr": 0.1, "width": 8}] * 3
    with pytest.raises(plots.Skip, match="no parameter took more than one value"):
        plots.compute_importances(_result_with_values([0.1, 0.2, 0.3], params=same))
    scores = plots.compute_importances(_result_with_values([0.1, 0.2, 0.3, 0.4]))["val_accuracy"]
    assert set(scores) == {"lr", "width"} and sum(scores.values()) == pytest.approx(1.0)


def test_a_failing_plot_is_a_warning_and_a_note_and_the_others_are_logged(toy_search, tmp_path, monkeypatch):
    """Plotting the finished search again onto a fresh run of the same store, with one plot broken."""
    import dataclasses

    from nasforge.stores.mlflow_runs import Tracker

    def broken(result, importances=None):
        raise RuntimeError("boom on purpose")

    monkeypatch.setattr(plots, "parallel_coordinates", broken)
    tracker = Tracker(tracking_uri=toy_search.tracking_uri, experiment_id=toy_search.experiment_id)
    run_id = tracker.start_run(name="replot", tags={})
    result = dataclasses.replace(toy_search, parent_run_id=run_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logged = plots.log_summary_plots(result, tracker)
    assert any("parallel_coordinates: failed: RuntimeError: boom on purpose" in str(w.message) for w in caught)
    files = _plots(result, tmp_path / "dl")
    assert set(logged) == {f"plots/{name}" for name in files}
    assert "parallel_coordinates: failed: RuntimeError: boom on purpose" in files["notes.txt"].decode()
    assert "optimization_history.png" in files and "param_importances.png" in files
    assert "parallel_coordinates.png" not in files


def test_logging_that_fails_entirely_is_only_a_warning(toy):
    """Even a tracker that cannot write anything does not raise out of log_summary_plots."""

    class NoStore:
        def log_artifacts(self, run_id, folder, artifact_path=None):
            raise OSError("store is gone")

    result = _result_with_values([0.1, 0.2, 0.3])
    with pytest.warns(UserWarning, match="could not log the search's summary plots: OSError: store is gone"):
        assert plots.log_summary_plots(result, NoStore()) == []


def test_strategies_side_by_side_get_a_curve_each_and_the_controller_its_curves(store, toy, tmp_path):
    result = nasforge.search("toy", task="digits", space=TOY_SPACE, strategy=["controller", "random"], trials=4,
                             seed=0, **store)
    files = _plots(result, tmp_path / "dl")
    assert files["optimization_history.png"].startswith(PNG_MAGIC)
    figure = plots.optimization_history(result)
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert labels == ["controller", "best so far (controller)", "random", "best so far (random)"]
    assert files["controller.png"].startswith(PNG_MAGIC)


def test_plots_false_logs_no_plots(store, tmp_path):
    import mlflow

    result = nasforge.search("mlp", task="digits", space="mlp_small", strategy="random", trials=2, budget=1, seed=0,
                             plots=False, save_models=False, **store)
    client = mlflow.MlflowClient(store["tracking_uri"])
    assert "plots" not in [a.path for a in client.list_artifacts(result.parent_run_id)]
    fresh = stores_in(tmp_path / "refused")
    with pytest.raises(nasforge.SpecError, match="plots must be True or False, got 'no'"):
        nasforge.search("mlp", task="digits", plots="no", **fresh)
    assert not (tmp_path / "refused").exists()   # refused before either store was touched
