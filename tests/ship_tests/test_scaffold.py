"""``nasforge new-plugin``: the package it writes builds with pip, passes the family contract and
searches through the ``nasforge`` CLI.

The plugin is pip-installed (a real wheel build) into a ``--target`` folder put on ``PYTHONPATH``
of the subprocesses, not into the running virtual environment: other test sessions share that
environment, and the wheel test borrows it, so a stray entry point there would leak into them.
"""

import os
import subprocess
import sys

import mlflow
import numpy as np
import pytest
from sklearn.datasets import load_digits

from nasforge.cli import main
from nasforge.scaffold import ScaffoldError, new_plugin
from served_model import predict_without_nasforge

NAME = "ship_tiny"
DIST = "nasforge-ship-tiny"


def _run(args, **kwargs):
    proc = subprocess.run(args, capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, f"{args}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    return proc.stdout


def test_scaffolded_plugin_installs_passes_the_contract_and_searches(tmp_path):
    root = new_plugin(NAME, directory=tmp_path / DIST)
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == [
        "README.md", f"nasforge_{NAME}/__init__.py", f"nasforge_{NAME}/space.yaml", "pyproject.toml",
        f"tests/test_{NAME}.py"]
    target = tmp_path / "site"
    _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
          "--target", str(target), str(root)])
    assert (target / f"nasforge_{NAME}" / "space.yaml").is_file(), "the default space must ship in the wheel"
    entry_points = next(target.glob("nasforge_ship_tiny-*.dist-info")) / "entry_points.txt"
    assert f"[nasforge]\n{NAME} = nasforge_{NAME}" in entry_points.read_text()

    elsewhere = tmp_path / "elsewhere"  # not the plugin folder: the installed copy is imported
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = os.pathsep.join([str(target)] + [p for p in [env.get("PYTHONPATH")] if p])
    out = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
               cwd=elsewhere, env=env)
    assert " passed" in out and "failed" not in out

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = _run([sys.executable, "-m", "nasforge.cli", "search", NAME, "--task", "digits", "--trials", "2",
                "--budget", "2", "-q", "--tracking-uri", uri, "--storage", f"sqlite:///{tmp_path / 'optuna.db'}"],
               cwd=elsewhere, env=env)
    assert "2 complete, 0 pruned, 0 failed" in out and "test_accuracy=" in out

    from conftest import runs_of

    runs = runs_of(uri, f"{NAME}-digits")
    parent = runs[runs["tags.nasforge_role"] == "search"]
    children = runs[runs["tags.mlflow.parentRunId"] == parent["run_id"].iloc[0]]
    assert len(parent) == 1 and parent["status"].iloc[0] == "FINISHED"
    assert len(children) == 2 and set(children["status"]) == {"FINISHED"}
    assert set(children["tags.family"]) == {NAME} and set(children["tags.plugin"]) == {NAME}
    assert set(parent["tags.plugin_version"]) == {"0.1.0"}
    assert children["metrics.val_accuracy"].min() > 0.3  # it learned something in 2 epochs

    # its served model carries the plugin's code as nasforge's (neither is on a package index) and
    # loads with neither installed: no --target folder, no editable nasforge, no entry points
    mlflow.set_tracking_uri(uri)
    model_uri = mlflow.search_logged_models(experiment_ids=[parent["experiment_id"].iloc[0]],
                                            output_format="list")[0].model_uri
    model = tmp_path / "model"
    mlflow.artifacts.download_artifacts(model_uri, dst_path=str(model))
    requirements = (model / "requirements.txt").read_text().split()
    assert not [r for r in requirements if r.startswith("nasforge")], requirements
    assert sorted(p.name for p in (model / "code").iterdir()) == ["nasforge", f"nasforge_{NAME}"]
    np_rows = tmp_path / "rows.npy"
    np.save(np_rows, (load_digits().data[:20] / 16.0).astype("float32"))
    predictions = predict_without_nasforge(model, np_rows, cwd=elsewhere)["predictions"]
    assert len(predictions) == 20 and set(predictions) <= set(range(10))


@pytest.mark.parametrize("name, message", [
    ("9lives", "plugin name '9lives' is not valid"),
    ("My-Net", "plugin name 'My-Net' is not valid"),
    ("class", "plugin name 'class' is not valid"),
    ("mlp", "family 'mlp' is already registered by plugin 'mlp' (from nasforge); choose another name"),
    ("nasbench", "a package 'nasforge_nasbench' is already importable here"),
])
def test_bad_or_taken_names_are_refused(tmp_path, name, message):
    with pytest.raises(ScaffoldError) as info:
        new_plugin(name, directory=tmp_path / "p")
    assert message in str(info.value)
    assert not (tmp_path / "p").exists()


def test_an_existing_directory_is_refused_and_left_alone(tmp_path, capsys, monkeypatch):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(ScaffoldError, match="already exists"):
        new_plugin(NAME, directory=target)
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    monkeypatch.chdir(tmp_path)
    assert main(["new-plugin", NAME, "--dir", "taken"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nasforge: error: ") and "already exists" in err
    assert main(["new-plugin", NAME]) == 0  # default folder: ./nasforge-ship-tiny
    assert (tmp_path / DIST / "pyproject.toml").is_file()
    assert f"created {tmp_path / DIST}" in capsys.readouterr().out
