"""Export of a search's best model: every format loaded back and compared on real test inputs."""

import json

import mlflow
import pytest
import torch
from mlflow import MlflowClient

import nasforge
from conftest import stores_in
from nasforge.cli import main
from nasforge.errors import ExportError
from nasforge.results.export_stored import export_run
from nasforge.data.tasks import load_task
from conftest import toy_registered
from toy_family import TOY_SPACE

ALL = ("mlflow", "pt2", "torchscript")


@pytest.fixture(scope="module")
def toy():
    """The toy family for this whole module (overrides conftest's per-test registration)."""
    with toy_registered() as plugin:
        yield plugin


@pytest.fixture(scope="module")
def searches(toy, tmp_path_factory):
    """One search that saved its models and, in the same store, a later one that did not."""
    root = tmp_path_factory.mktemp("export_store")
    store = stores_in(root)
    saved = nasforge.search("toy", task="digits", space=TOY_SPACE, strategy="random", trials=3, seed=2,
                            experiment="saved", **store)
    unsaved = nasforge.search("toy", task="digits", space=TOY_SPACE, strategy="random", trials=1, seed=2,
                              experiment="unsaved", save_models=False, **store)
    return saved, unsaved, store


def _inputs():
    return torch.as_tensor(load_task("digits", 2).x_test)


def _predict(model):
    with torch.no_grad():
        return model(_inputs())


def _assert_same_predictions(model, reference):
    expected = _predict(reference)
    got = _predict(model)
    assert got.shape == expected.shape == (len(_inputs()), 10)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_result_export_writes_every_format_and_registers_it(searches, tmp_path):
    result, _, store = searches
    exported = result.export(tmp_path / "out", formats=ALL, register_as="toy-best")
    best = result.best_model()
    assert exported.registered == "models:/toy-best/1"
    assert set(exported.files) == set(ALL)
    _assert_same_predictions(mlflow.pytorch.load_model(str(exported.files["mlflow"])), best)
    _assert_same_predictions(torch.export.load(str(exported.files["pt2"])).module(), best)
    _assert_same_predictions(torch.jit.load(str(exported.files["torchscript"])), best)
    mlflow.set_tracking_uri(store["tracking_uri"])
    _assert_same_predictions(mlflow.pytorch.load_model("models:/toy-best/1"), best)
    manifest = json.loads((tmp_path / "out" / "export.json").read_text())
    assert manifest["search_run_id"] == result.parent_run_id
    assert manifest["trial"] == result.best_trial.number and manifest["params"] == result.best_params
    assert manifest["formats"] == {"mlflow": "mlflow_model", "pt2": "model.pt2", "torchscript": "model.torchscript.pt"}
    version = MlflowClient(store["tracking_uri"]).get_model_version("toy-best", "1")
    assert version.run_id == result.parent_run_id


def test_cli_exports_the_latest_search_of_an_experiment_and_by_run_id(searches, tmp_path, capsys):
    result, _, store = searches
    base = ["export", "--tracking-uri", store["tracking_uri"]]
    assert main(base + [str(tmp_path / "latest"), "--experiment", "saved", "--format", "pt2",
                        "--register", "toy-cli"]) == 0
    out = capsys.readouterr().out
    assert f"search run {result.parent_run_id}" in out and "registered as models:/toy-cli/1" in out
    assert sorted(p.name for p in (tmp_path / "latest").iterdir()) == ["export.json", "model.pt2"]
    _assert_same_predictions(torch.export.load(str(tmp_path / "latest" / "model.pt2")).module(), result.best_model())
    mlflow.set_tracking_uri(store["tracking_uri"])
    _assert_same_predictions(mlflow.pytorch.load_model("models:/toy-cli/1"), result.best_model())

    assert main(base + [str(tmp_path / "by_id"), "--run-id", result.parent_run_id, "--format", "mlflow"]) == 0
    _assert_same_predictions(mlflow.pytorch.load_model(str(tmp_path / "by_id" / "mlflow_model")),
                             result.best_model())
    # --overwrite replaces an earlier export
    assert main(base + [str(tmp_path / "by_id"), "--run-id", result.parent_run_id, "--format", "torchscript",
                        "--overwrite"]) == 0
    assert (tmp_path / "by_id" / "model.torchscript.pt").is_file()


def test_export_run_without_an_id_takes_the_latest_finished_search(searches, tmp_path):
    _, unsaved, store = searches
    with pytest.raises(ExportError, match="ran with save_models=False"):  # the latest search saved no weights
        export_run(tmp_path / "x", tracking_uri=store["tracking_uri"])


@pytest.mark.parametrize("kwargs, message", [
    ({"formats": ("mlflow", "onnx")}, "unknown export format 'onnx'; valid: mlflow, pt2, torchscript"),
    ({"formats": ()}, "no export format given"),
    ({"run_id": "0123456789abcdef"}, "no MLflow run '0123456789abcdef' in sqlite:///"),
    ({"experiment": "nope"}, "no experiment 'nope' in sqlite:///"),
    ({"register_as": "a/b"}, "register_as must be a model name without '/' or ':', got 'a/b'"),
])
def test_bad_export_requests_name_the_value(searches, tmp_path, kwargs, message):
    _, _, store = searches
    with pytest.raises(ExportError, match=message.replace("(", r"\(")):
        export_run(tmp_path / "out", tracking_uri=store["tracking_uri"], **kwargs)
    assert not (tmp_path / "out").exists()


def test_a_trial_run_id_points_to_its_search(searches, tmp_path):
    result, _, store = searches
    trial_run = result.best_trial.user_attrs["mlflow_run_id"]
    with pytest.raises(ExportError, match=f"run '{trial_run}' is not a nasforge search run; it is a trial of "
                                          f"search '{result.parent_run_id}'"):
        export_run(tmp_path / "out", tracking_uri=store["tracking_uri"], run_id=trial_run)


def test_occupied_path_and_unsaved_models_are_refused(searches, tmp_path, capsys):
    result, unsaved, store = searches
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="exists and is not empty; .* overwrite=True"):
        result.export(occupied)
    assert (occupied / "keep.txt").read_text() == "mine"
    with pytest.raises(ExportError, match=f"search '{unsaved.parent_run_id}' ran with save_models=False"):
        unsaved.export(tmp_path / "unsaved")
    assert main(["export", str(tmp_path / "unsaved"), "--tracking-uri", store["tracking_uri"],
                 "--experiment", "unsaved"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nasforge: error: ") and "save_models=False" in err and "Traceback" not in err


def test_a_search_whose_family_is_not_installed_says_so(searches, toy, tmp_path):
    result, _, store = searches
    nasforge.unregister(toy)
    try:
        with pytest.raises(ExportError, match="used family 'toy', which no loaded plugin registers .* install its plugin"):
            export_run(tmp_path / "out", tracking_uri=store["tracking_uri"], run_id=result.parent_run_id)
    finally:
        nasforge.register(toy, name="toy-plugin")


def test_an_interrupted_search_must_be_finished_first(searches, tmp_path):
    _, _, store = searches
    from nasforge.stores.mlflow_runs import Tracker

    tracker = Tracker.for_experiment(tracking_uri=store["tracking_uri"], experiment="saved")
    run_id = tracker.start_run(name="cut-off", tags={"nasforge_role": "search", "family": "toy", "task": "digits"})
    tracker.end_run(run_id, "KILLED")
    with pytest.raises(ExportError, match=f"search run '{run_id}' is KILLED .*resume=True"):
        export_run(tmp_path / "out", tracking_uri=store["tracking_uri"], run_id=run_id)
