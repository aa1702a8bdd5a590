"""``nasforge new-plugin NAME``: a pip-installable plugin package with a new model family.

The package it writes (``nasforge-NAME/`` by default)::

    pyproject.toml                 entry point ``NAME = "nasforge_NAME"`` in the group ``nasforge``
    README.md
    nasforge_NAME/__init__.py      the family (a one-hidden-layer network; edit it) + register_families
    nasforge_NAME/space.yaml       its default search space, shipped in the wheel as package data
    tests/test_NAME.py             nasforge's family contract (nasforge.testing.FamilyContract)

The templates are strings in this module, so they ship inside nasforge's own wheel.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path
from string import Template

from nasforge.errors import ScaffoldError

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


PYPROJECT = Template('''\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "A nasforge plugin: the $name model family"
requires-python = ">=3.10"
dependencies = ["nasforge>=$nasforge_version"]

[project.optional-dependencies]
test = ["pytest>=8"]

# This is the whole registration: nasforge loads every entry point in the group "nasforge".
[project.entry-points.nasforge]
$name = "$package"

[tool.setuptools]
packages = ["$package"]

[tool.setuptools.package-data]
$package = ["*.yaml"]          # the default search space ships in the wheel

[tool.pytest.ini_options]
testpaths = ["tests"]
''')

README = Template('''\
# $dist

A nasforge plugin with the model family `$name`
(created by `nasforge new-plugin $name`).

```bash
pip install -e .                      # registers the family through its entry point
nasforge plugins                      # lists "$name  (from $dist 0.1.0)"
python -m pytest tests                # nasforge's family contract on this family
nasforge search $name --task digits --trials 10
```

Edit `$package/__init__.py` (the config dataclass, `build`, `fit`, `evaluate`) and
`$package/space.yaml` (what the search samples; every parameter is a config field).
''')

FAMILY = Template('''\
"""The $name model family, a nasforge plugin (created by `nasforge new-plugin $name`).

`pip install -e .` registers it through the entry point in pyproject.toml; then
`nasforge search $name --task digits` searches its space (space.yaml). It starts as a network
with one hidden layer for classification and regression tasks: change build, fit and evaluate,
keep the contract (tests/test_$name.py runs it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import nasforge

__version__ = "0.1.0"

ACTIVATIONS = ("relu", "tanh", "gelu")


@dataclass(kw_only=True)
class ${cls}Config:
    """One configuration; each field can be a parameter in space.yaml (else it keeps its default)."""

    hidden: int = 64            # units of the hidden layer
    activation: str = "relu"    # one of ACTIVATIONS
    lr: float = 1.0e-2          # Adam learning rate
    batch_size: int = 64

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise nasforge.ConfigError(f"activation {self.activation!r} is not one of {', '.join(ACTIVATIONS)}")
        if self.hidden < 1 or self.batch_size < 1:
            raise nasforge.ConfigError(f"hidden ({self.hidden}) and batch_size ({self.batch_size}) must be >= 1")


class ${cls}Family(nasforge.Family):
    name = "$name"
    task_kinds = ("classification", "regression")
    config_class = ${cls}Config
    default_space = str(Path(__file__).with_name("space.yaml"))
    budget_unit = "epochs"
    default_budget = 10
    predicts_target = True   # forward() gives logits / the value: results predict with it and MLflow serves it

    def metrics(self, task):
        """What fit returns for this task, and which way is better (the first is the default objective)."""
        if task.kind == "classification":
            return {"val_accuracy": "maximize", "val_loss": "minimize"}
        return {"val_rmse": "minimize", "val_loss": "minimize"}

    def build(self, config, task):
        import torch.nn as nn

        activation = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}[config.activation]
        outputs = task.n_classes if task.kind == "classification" else 1
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(task.input_shape), config.hidden), activation(),
                             nn.Linear(config.hidden, outputs))

    def fit(self, model, task, config, budget, reporter):
        import torch

        x, y = (torch.as_tensor(a) for a in task.split("train"))
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        metrics = {}
        for epoch in range(1, int(budget[self.budget_unit]) + 1):
            model.train()
            for idx in torch.randperm(len(x)).split(config.batch_size):
                loss = self._loss(model(x[idx]), y[idx], task)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            metrics = self.evaluate(model, task, "val")
            reporter.report(epoch, metrics)  # an MLflow curve point; a pruner may stop the trial here
        return metrics

    def evaluate(self, model, task, split="test"):
        import torch

        x, y = (torch.as_tensor(a) for a in task.split(split))
        model.eval()
        with torch.no_grad():
            output = model(x)
            loss = self._loss(output, y, task).item()
        if task.kind == "classification":
            accuracy = (output.argmax(1) == y).float().mean().item()
            return {f"{split}_accuracy": accuracy, f"{split}_loss": loss}
        return {f"{split}_rmse": math.sqrt(loss), f"{split}_loss": loss}

    @staticmethod
    def _loss(output, y, task):
        import torch.nn.functional as F

        if task.kind == "classification":
            return F.cross_entropy(output, y)
        return F.mse_loss(output, y.reshape(output.shape))


@nasforge.hookimpl
def register_families(register):
    register(${cls}Family())
''')

SPACE = Template('''\
family: $name
budget: {epochs: 10}              # max epochs per trial (--budget overrides it)
params:
  hidden: {int: [16, 256], log: true}
  activation: {choice: [relu, tanh, gelu]}
  lr: {float: [1.0e-3, 1.0e-1], log: true}
  batch_size: {choice: [32, 64, 128]}
''')

TEST = Template('''\
"""nasforge's family contract on the $name family (run after `pip install -e .`)."""

import pytest

import nasforge
from nasforge.testing import FamilyContract
from $package import ${cls}Family


class Test${cls}Classification(FamilyContract):
    @pytest.fixture(scope="class")
    @classmethod
    def family(cls):
        return ${cls}Family()

    @pytest.fixture(scope="class")
    @classmethod
    def task_name(cls):
        return "digits"


class Test${cls}Regression(Test${cls}Classification):
    @pytest.fixture(scope="class")
    @classmethod
    def task_name(cls):
        return "diabetes"


def test_registered_through_its_entry_point():
    registry = nasforge.get_registry()
    assert "$name" in registry.names("family")
    assert registry.plugin_info(registry.origin("family", "$name")).distribution == "$dist"
''')


def check_name(name: str) -> str:
    """A family name that can also be a package name and is not taken by a loaded plugin."""
    import importlib.util

    from nasforge.plugins import get_registry

    if not isinstance(name, str) or not NAME_PATTERN.match(name) or keyword.iskeyword(name):
        raise ScaffoldError(f"plugin name {name!r} is not valid: use lowercase letters, digits and _, "
                            "starting with a letter (at most 40 characters), e.g. 'tiny_mlp'")
    registry = get_registry()
    if name in registry.names("family"):
        info = registry.plugin_info(registry.origin("family", name))
        raise ScaffoldError(f"family {name!r} is already registered by plugin {info.name!r} "
                            f"(from {info.distribution}); choose another name")
    package = f"nasforge_{name}"
    if importlib.util.find_spec(package) is not None:
        raise ScaffoldError(f"a package {package!r} is already importable here; choose another name")
    return name


def new_plugin(name: str, *, directory: str | Path | None = None) -> Path:
    """Create the plugin package for family ``name`` in ``directory`` (default ``./nasforge-NAME``)
    and return its path. Refuses an invalid or taken name and an existing non-empty directory."""
    from importlib.metadata import PackageNotFoundError, version

    name = check_name(name)
    dist = "nasforge-" + name.replace("_", "-")
    root = Path(directory if directory is not None else dist).expanduser().resolve()
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ScaffoldError(f"{str(root)!r} already exists; choose another --dir or remove it")
    try:
        nasforge_version = version("nasforge")
    except PackageNotFoundError:  # running from a checkout that is not installed
        from nasforge import __version__ as nasforge_version
    values = {"name": name, "package": f"nasforge_{name}", "dist": dist,
              "cls": "".join(part.capitalize() for part in name.split("_")), "nasforge_version": nasforge_version}
    files = {
        "pyproject.toml": PYPROJECT, "README.md": README, f"nasforge_{name}/__init__.py": FAMILY,
        f"nasforge_{name}/space.yaml": SPACE, f"tests/test_{name}.py": TEST,
    }
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.substitute(values))
    return root
