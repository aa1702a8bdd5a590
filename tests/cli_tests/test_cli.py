import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import free_port
from nasforge.cli import main


COMMANDS = ["search", "show", "predict", "evaluate", "list", "plugins", "spaces", "ui", "serve", "export", "new-plugin"]


def test_help_lists_the_commands(capsys):
    proc = subprocess.run([sys.executable, "-m", "nasforge.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == ""
    # the lines under COMMAND name one command each (indented 4; their help follows or wraps deeper)
    section = proc.stdout.split("\n  COMMAND\n", 1)[1].split("\n\n", 1)[0]
    assert re.findall(r"^    (\S+)", section, flags=re.MULTILINE) == COMMANDS
    for command in COMMANDS:                        # each one is a real command with its own help
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0 and capsys.readouterr().out.startswith(f"usage: nasforge {command} ")


def test_plugins_lists_what_each_plugin_registered(capsys):
    assert main(["plugins", "--json"]) == 0
    infos = {i["name"]: i for i in json.loads(capsys.readouterr().out)}
    assert infos["mlp"]["distribution"] == "nasforge" and infos["mlp"]["registered"] == {"family": ["mlp"]}
    assert "tpe" in infos["nasforge.strategies.samplers"]["registered"]["strategy"]
    assert main(["plugins"]) == 0
    assert "mlp  (from nasforge 0.1.0)" in capsys.readouterr().out


def test_spaces_lists_and_prints(capsys):
    assert main(["spaces"]) == 0
    assert "mlp" in capsys.readouterr().out.split()
    assert main(["spaces", "mlp"]) == 0
    assert "repeat: n_layers" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["search", "transformer"], "unknown family 'transformer'; known: "),
    (["search", "mlp", "--task", "imagenet"], "unknown task 'imagenet'"),
    (["search", "mlp", "--task", "digits", "--trials", "0"], "trials must be an integer >= 1"),
    (["search", "mlp", "--task", "digits", "--objective", "val_f1"], "never reports metric 'val_f1'"),
    (["search", "mlp", "--task", "digits", "--objective", "a", "--direction", "maximize",
      "--direction", "minimize"], "one --direction per --objective"),
    (["search", "mlp", "--task", "digits", "--strategy-option", "seed"], "--strategy-option expects key=value"),
])
def test_bad_arguments_exit_2_with_a_clear_message(store, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("nasforge: error: ") and message in err and "Traceback" not in err


def test_search_then_resume_from_the_cli(store, capsys):
    base = ["search", "mlp", "--task", "digits", "--space", "mlp_small", "--budget", "2", "-q",
            "--tracking-uri", store["tracking_uri"], "--storage", store["storage"], "--study-name", "cli"]
    assert main(base + ["--trials", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 complete, 0 pruned, 0 failed" in out and "best 2 trials:" in out
    assert f"nasforge ui --tracking-uri {store['tracking_uri']}" in out
    assert main(base + ["--trials", "3", "--resume"]) == 0
    assert "3 complete" in capsys.readouterr().out


def test_ui_serves_the_store_on_localhost(store):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "nasforge.cli", "ui", "--tracking-uri", store["tracking_uri"],
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline, body = time.time() + 120, None
        while time.time() < deadline and proc.poll() is None:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
                break
            except OSError:
                time.sleep(0.5)
        assert body == b"OK", proc.stderr.read() if proc.poll() is not None else "no answer"
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read().decode()
        assert "<html" in page.lower()
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
        local_addresses = {line.split()[3].rsplit(":", 1)[0] for line in listening.splitlines()}
        assert local_addresses == {"127.0.0.1"}  # bound to this machine only
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
