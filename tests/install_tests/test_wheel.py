"""The built wheel works from outside the checkout: spaces and plugins come from the wheel.

A fresh virtual environment gets the nasforge wheel and the example plugin's wheel; the heavy
dependencies (torch, optuna, mlflow, ...) are borrowed from the running environment through a
``.pth`` file instead of being downloaded again.
"""

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def _run(args, **kwargs):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # MLflow's default store
    proc = subprocess.run(args, capture_output=True, text=True, env=env, **kwargs)
    assert proc.returncode == 0, f"{args}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    # Built with the running environment's setuptools: build isolation would fetch it from an index.
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(dist), str(ROOT), str(ROOT / "examples" / "plugin_example")])
    wheels = sorted(dist.glob("*.whl"))
    assert [w.name.split("-")[0] for w in wheels] == ["nasforge", "nasforge_linear"]
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
          *map(str, wheels)])
    work = root / "elsewhere"
    work.mkdir()
    return {"python": python, "bin": venv / "bin", "cwd": work, "site": site}


def test_wheel_ships_the_spaces_and_registers_builtins_by_entry_point(wheel_env):
    code = ("import json, nasforge, nasforge.spec.space as s; "
            "r = nasforge.get_registry(); "
            "print(json.dumps({'file': nasforge.__file__, 'spaces': s.shipped_space_names(), "
            "'families': {n: r.plugin_info(r.origin('family', n)).distribution for n in r.names('family')}}))")
    out = json.loads(_run([str(wheel_env["python"]), "-c", code], cwd=wheel_env["cwd"]))
    assert out["file"].startswith(str(wheel_env["site"])), "nasforge was imported from the checkout"
    assert "mlp" in out["spaces"] and "mlp_small" in out["spaces"]
    families = out["families"]
    assert families.pop("linear") == "nasforge-linear"
    assert {"mlp", "cnn", "rnn"} <= set(families) and set(families.values()) == {"nasforge"}


def test_cli_lists_plugins_and_runs_searches_from_the_wheel(wheel_env):
    nasforge = str(wheel_env["bin"] / "nasforge")
    listing = _run([nasforge, "plugins"], cwd=wheel_env["cwd"])
    assert "linear  (from nasforge-linear 0.1.0)" in listing and "mlp  (from nasforge " in listing
    out = _run([nasforge, "search", "linear", "--task", "digits", "--trials", "3", "--budget", "3", "-q"],
               cwd=wheel_env["cwd"])
    assert "3 complete" in out and "nasforge ui --tracking-uri sqlite:///" in out
    out = _run([nasforge, "search", "mlp", "--task", "digits", "--space", "mlp_small", "--trials", "2",
                "--budget", "2", "-q"], cwd=wheel_env["cwd"])
    assert "2 complete" in out and "test_accuracy=" in out
    assert (wheel_env["cwd"] / "mlflow.db").exists() and (wheel_env["cwd"] / "nasforge_runs" / "optuna.db").exists()
