"""Random argv for ``nasforge``: exit 0, or exit 2 with ONE line naming what is wrong; no traceback.

The search itself is replaced by a stand-in that stops right after validation (so no trial
runs), and ``nasforge ui`` by one that stops before it would exec the MLflow server (``cli._exec_mlflow``).
"""

import contextlib
import io

import pytest
from hypothesis import given

from fuzz_tests import generators as g
from fuzz_tests.generators import fuzz_settings, tried
from nasforge import cli


class Validated(Exception):
    """Raised by the stand-ins: the arguments passed every check."""


@pytest.fixture(scope="module")
def validation_only(tmp_path_factory):
    import nasforge.api

    def stop(*args, **kwargs):
        raise Validated

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path_factory.mktemp("cli-fuzz"))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setattr(nasforge.api, "run_search", stop)
        mp.setattr(cli, "_exec_mlflow", stop)   # ui and serve exec MLflow through it
        yield


def run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main(argv)
        except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
            status = exc.code
        except Validated:
            status = None
    return status, err.getvalue()


def assert_clean(status, err):
    assert status in (0, 2, None), status
    if status == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("nasforge") and ": error: " in lines[0], err
    assert "Traceback" not in err


@fuzz_settings(800)
@given(argv=g.argv)
def test_random_argv_exits_cleanly(validation_only, argv):
    tried("CLI argv")
    assert_clean(*run_cli(argv))


@pytest.mark.parametrize("argv, message", [
    (["search", "mlp", "--pruner-option", "k=!!python/object:os.system"], "--pruner-option 'k=!!python/object"),
    (["search", "mlp", "--strategy-option", "a=[1"], "--strategy-option 'a=[1': the value is not a plain YAML"),
    (["search", "mlp", "--trials", "x"], "argument --trials: invalid int value: 'x'"),
    (["search", "mlp", "--bogus"], "unrecognized arguments: --bogus"),
    (["spaces", "a\x85b"], "search-space file not found"),
    (["ui", "--tracking-uri", "mlflow.db"], "--tracking-uri: tracking URI 'mlflow.db' is not a URI"),
    (["ui", "--port", "70000"], "--port must be in 1-65535, got 70000"),
])
def test_found_bugs_now_exit_2_with_one_line(validation_only, argv, message):
    status, err = run_cli(argv)
    assert status == 2 and message in err
    assert_clean(status, err)
