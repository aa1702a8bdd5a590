"""YAML is read with safe_load and weights with torch.load(weights_only=True), everywhere."""

import re
from pathlib import Path

import pytest

from nasforge.cli import main
from nasforge.errors import SpaceError
from nasforge.spec.space import SearchSpace

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for folder in ("platform", "plugins", "examples", "benchmarks") for p in (ROOT / folder).rglob("*.py"))


def calls(pattern: str):
    """(file, line) of every source line matching ``pattern`` outside comments."""
    found = []
    for path in SOURCES:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(pattern, code):
                found.append((f"{path.relative_to(ROOT)}:{number}", code.strip()))
    return found


def test_the_audit_sees_the_sources():
    assert len(SOURCES) > 50 and calls(r"yaml\.safe_load\(") and calls(r"torch\.load\(")


def test_yaml_is_only_read_with_safe_load():
    unsafe = calls(r"yaml\.(load|unsafe_load|full_load|load_all|unsafe_load_all|full_load_all)\(|yaml\.(Unsafe|Full)?Loader\b")
    assert unsafe == []


def test_torch_load_always_takes_weights_only_true():
    lines = calls(r"torch\.load\(")
    assert lines and [x for x in lines if "weights_only=True" not in x[1]] == []


@pytest.mark.parametrize("text", [
    "params:\n  lr: !!python/object/apply:os.system ['echo pwned > pwned.txt']\n",
    "!!python/object/new:os.system [echo pwned > pwned.txt]\n",
    "params:\n  x: !!python/name:os.system\n",
])
def test_python_tags_in_a_space_are_refused(tmp_path, monkeypatch, capsys, text):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.yaml"
    path.write_text(text)
    with pytest.raises(SpaceError, match=r"evil\.yaml: invalid YAML: .*could not determine a constructor"):
        SearchSpace.load(path)
    assert main(["spaces", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nasforge: error: ") and "python/" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "pwned.txt").exists()
