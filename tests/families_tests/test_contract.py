"""Every registered family passes the family contract (tests generated from the registry)."""

from __future__ import annotations

import pytest

from conftest import task_for
from nasforge.plugins import get_registry
from nasforge.testing import FamilyContract

BUILTIN_FAMILIES = ("mlp", "cnn", "rnn", "autoencoder", "gan", "evidential", "rl", "nasbench201")


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
        return task_for(family)
