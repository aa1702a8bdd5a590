"""Every registered family passes the family contract (tests generated from the registry)."""

from __future__ import annotations

import pytest

from nasforge.plugins import get_registry
from nasforge.testing import FamilyContract

BUILTIN_FAMILIES = ("mlp", "cnn", "rnn", "autoencoder", "gan", "evidential", "rl", "nasbench201")


def _task_for(family) -> str:
    """The family's default task, else the first registered task (by name) of a kind it supports."""
    registry = get_registry()
    default = getattr(family, "default_task", None)
    if default in registry.names("task"):
        return default
    for name in registry.names("task"):
        if registry.get("task", name).kind in family.task_kinds:
            return name
    pytest.fail(f"no registered task of a kind family {family.name!r} supports ({', '.join(family.task_kinds)})")


def test_builtin_families_are_registered() -> None:
    missing = [name for name in BUILTIN_FAMILIES if name not in get_registry().names("family")]
    assert not missing, f"families {missing} are not registered; run `pip install -e .` to install the entry points"


class TestRegisteredFamily(FamilyContract):
    @pytest.fixture(scope="class", params=get_registry().names("family"))
    @classmethod
    def family(cls, request):
        return get_registry().get("family", request.param)

    @pytest.fixture(scope="class")
    @classmethod
    def task_name(cls, family) -> str:
        return _task_for(family)
