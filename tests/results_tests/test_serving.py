"""The served model over HTTP, and reopening searches that did not finish or ran on Ray."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import nasforge
from conftest import CTRL_C_REACHES_PYTHON, completed_trials, local_ray
from results_tests.test_results import SPACE, _wine
from served_model import predict_without_nasforge

TESTS = Path(__file__).parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nasforge_serve_answers_raw_rows_as_result_predict_does(tmp_path):
    """`nasforge serve` runs `mlflow models serve -m <result.model_uri> --env-manager local` on 127.0.0.1
    with the search's store, from a venv that is not activated (MLflow starts uvicorn by name)."""
    store = {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "storage": f"sqlite:///{tmp_path / 'optuna.db'}"}
    wine = _wine()
    result = nasforge.search("mlp", data=wine, target="label", space=SPACE, trials=1, budget=25, seed=0, plots=False,
                             **store)
    port = _free_port()
    venv_bin = os.path.dirname(sys.executable)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin)
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    server = subprocess.Popen([sys.executable, "-m", "nasforge.cli", "serve", "--run-id", result.parent_run_id,
                               "--tracking-uri", store["tracking_uri"], "--port", str(port)],
                              env={**environment, "PATH": path}, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, server.stderr.read()
            try:
                if urllib.request.urlopen(f"{base}/ping", timeout=2).status == 200:
                    break
            except OSError:
                assert time.monotonic() < deadline, "nasforge serve did not answer in 180 s"
                time.sleep(0.5)
        rows = wine.drop(columns=["label"]).iloc[::9].copy()
        rows.loc[rows.index[0], "hue"] = None                      # a missing value, filled as in training
        body = json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}).encode()
        request = urllib.request.Request(f"{base}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=60).read())
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    with pytest.warns(UserWarning, match="missing values in hue"):
        expected = result.predict(rows)
    assert answer["predictions"] == list(expected)
    assert set(expected) <= {"barolo", "grignolino", "barbera"}


def test_the_served_model_carries_its_code_and_loads_where_nasforge_is_not_installed(tmp_path):
    """An environment built from the model's requirements.txt (``mlflow models serve`` with a
    virtualenv, ``build-docker``) has no nasforge: the model brings nasforge's and the family's code.
    Here: an interpreter without site processing (no editable install, no .pth files) that sees this
    environment's packages, and no entry points loaded (they come from nasforge's installed metadata)."""
    import mlflow

    store = {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "storage": f"sqlite:///{tmp_path / 'optuna.db'}"}
    wine = _wine()
    result = nasforge.search("mlp", data=wine, target="label", space=SPACE, trials=1, budget=5, seed=0, plots=False,
                             **store)
    mlflow.set_tracking_uri(store["tracking_uri"])
    model = Path(mlflow.artifacts.download_artifacts(result.model_uri, dst_path=str(tmp_path / "model")))
    requirements = (model / "requirements.txt").read_text().split()
    assert not [r for r in requirements if r.startswith("nasforge")], requirements
    assert {r.split("==")[0] for r in requirements} >= {"mlflow", "torch", "numpy", "pluggy", "pyyaml"}
    assert sorted(p.name for p in (model / "code").iterdir()) == ["nasforge", "nasforge_mlp"]

    rows = wine.drop(columns=["label"]).iloc[::7]
    rows.to_parquet(tmp_path / "rows.parquet")
    answer = predict_without_nasforge(model, tmp_path / "rows.parquet", cwd=tmp_path)
    assert Path(answer["nasforge"]).is_relative_to(model / "code")   # the model's copy, not an installed one
    assert answer["predictions"] == list(result.predict(rows))


SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import nasforge
    from toy_family import ToyPlugin, SLOW_TOY_SPACE
    nasforge.register(ToyPlugin(), name="toy-plugin")
    nasforge.search("toy", space=SLOW_TOY_SPACE, strategy="random", trials=30, budget=20, seed=0,
                    study_name="cut-short", tracking_uri={uri!r}, storage={storage!r})
""")


def test_an_interrupted_search_loads_with_what_finished(store, toy):
    script = CTRL_C_REACHES_PYTHON + SCRIPT.format(tests=str(TESTS), uri=store["tracking_uri"],
                                                   storage=store["storage"])
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while completed_trials(store["storage"], "cut-short") < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stdout.read().decode()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    done = completed_trials(store["storage"], "cut-short")
    loaded = nasforge.load("cut-short", tracking_uri=store["tracking_uri"])
    assert 2 <= len(loaded.completed_trials) == done < 30
    assert loaded.best_value == max(t.value for t in loaded.completed_trials)
    assert loaded.best_model() is not None and len(loaded.leaderboard()) >= done
    assert loaded.test_metrics == {}                            # it never reached its end


def test_a_ray_search_loads_like_a_local_one(store):
    with local_ray():
        result = nasforge.search("mlp", data=(np.random.default_rng(0).normal(size=(120, 4)),
                                              np.arange(120) % 2), space=SPACE, trials=2, budget=2, seed=0,
                                 plots=False, backend="ray", **store)
    loaded = nasforge.load(run_id=result.parent_run_id, tracking_uri=store["tracking_uri"])
    assert loaded.spec.backend == "ray" and loaded.best_params == result.best_params
    assert list(loaded.predict(np.zeros((3, 4)))) == list(result.predict(np.zeros((3, 4))))


def test_the_model_copies_a_plugin_package_s_directory_but_a_lone_module_s_file_alone():
    """A plugin that is one top-level .py file must not take the folder it sits in (site-packages)."""
    import nasforge_mlp
    import toy_family

    from nasforge.results.finish import code_path

    assert code_path(nasforge_mlp) == os.path.dirname(nasforge_mlp.__file__)
    assert code_path(toy_family) == toy_family.__file__ and code_path(toy_family).endswith("toy_family.py")
