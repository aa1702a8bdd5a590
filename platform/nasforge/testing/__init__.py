"""Test utilities for plugin authors (needs pytest): contract tests to subclass."""

from nasforge.testing.family_contract import FamilyContract

__all__ = ["FamilyContract"]
